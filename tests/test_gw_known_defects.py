"""Reviewer's known defects of the ingest path, each against the real database (SQLite and
PostgreSQL through any_db) and, where the defect shows on the wire, the real broker:

1. a dead letter is stored once however often the same message comes (replay, redelivery);
2. a malformed event does not stall its panel's cumulative ack;
3. a resend of stored events moves the panel's last_seen;
4. panels committed before a failed one-by-one retry are still derived after the commit;
5. a multi-office report's date-only --from/--to mean each office's own calendar day.
"""

import hashlib
import json
import subprocess
import time

import pytest
from gw_ingest_support import RATING, REPO, T0, Fleet, Gateway, event_body
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import derive, ingest, schema, store
from protocol import messages

ROOT = "rating/v1"
GRACE = store.LOST_GRACE_MS


def ev_topic(device, site="s1", root=ROOT):
    return "%s/%s/%s/event" % (root, site, device)


def acks_of(acks):
    return {topic.split("/")[-2]: messages.decode_ack(payload) for topic, payload, retain, qos in acks}


def bad_event(seq):
    """A well-formed JSON event whose seq is fine but whose event name this gateway does not know
    (a newer firmware, say): protocol validation fails, the seq can be read."""
    return b'{"v":1,"seq":%d,"boot":1,"up":%d,"t":null,"ev":"maybe"}' % (seq, seq * 1000)


GARBAGE = b"\x00\x01 not an event"  # nothing to read a seq from


# ---- 1. dead letters are idempotent ----------------------------------------------------------


def test_gw_defect_same_dead_letter_is_stored_once_with_a_count(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    topic = "%s/s1/p1/event" % ROOT
    ing.handle(topic, GARBAGE, T0)
    ing.handle(topic, GARBAGE, T0 + 5)  # redelivered within the same batch
    ing.handle("%s/s1/p2/event" % ROOT, GARBAGE, T0 + 6)  # same bytes, other panel: another letter
    ing.flush()
    ing.handle(topic, GARBAGE, T0 + 90)  # and again in a later batch
    ing.flush()
    rows = any_db.query("SELECT topic, payload, seen, received_ms, last_seen_ms FROM dead_letters ORDER BY topic")
    assert [(r["topic"], bytes(r["payload"]), r["seen"], r["received_ms"], r["last_seen_ms"]) for r in rows] == [
        (topic, GARBAGE, 3, T0, T0 + 90),
        ("%s/s1/p2/event" % ROOT, GARBAGE, 1, T0 + 6, T0 + 6),
    ]
    # every refused message is still counted (the ingest stats and the count agree)
    assert ing.stats["dead_letters"] == 4 == store.dead_letter_count(any_db)
    assert store.dead_letter_count(any_db, distinct=True) == 2
    (newest, older) = store.dead_letters(any_db)
    assert newest["topic"] == topic and newest["seen"] == 3


def test_gw_defect_replay_twice_stores_the_dead_letter_once(tmp_path):
    rec = tmp_path / "r.jsonl"
    lines = [
        {"topic": "rating/v1/s1/p1/event", "payload": json.loads(event_body(1)), "received_ms": T0},
        {"topic": "rating/v1/s1/p1/event", "payload": "not json", "received_ms": T0 + 1},
    ]
    rec.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    url = "sqlite:///%s" % (tmp_path / "s.db")
    for _ in range(2):
        out = subprocess.run(
            [RATING, "replay", str(rec), "--db", url], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [RATING, "deadletter", "list", "--db", url, "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(out.stdout)
    (dl,) = data["dead_letters"]
    assert dl["seen"] == 2 and dl["payload_text"] == "not json"
    assert data["total"] == 1


def test_gw_defect_existing_dead_letters_migrate_and_merge(db_before_004):
    """A database made before dead letters had a key, holding the same letter twice: migrating
    merges them into one row with the count, and a new arrival of it joins that row."""
    d = db_before_004
    ins = "INSERT INTO dead_letters (topic, payload, reason, received_ms) VALUES (?, ?, ?, ?)"
    d.execute(ins, ("rating/v1/s1/p1/event", GARBAGE, "payload: not JSON", T0))
    d.execute(ins, ("rating/v1/s1/p1/event", GARBAGE, "payload: not JSON", T0 + 50))
    d.execute(ins, ("rating/v1/s1/p1/event", b"\xff other", "payload: not JSON", T0 + 60))
    assert schema.migrate(d) != []
    rows = d.query(
        "SELECT topic, payload, seen, received_ms, last_seen_ms, msg_key FROM dead_letters ORDER BY received_ms"
    )
    assert [(bytes(r["payload"]), r["seen"], r["received_ms"], r["last_seen_ms"]) for r in rows] == [
        (GARBAGE, 2, T0, T0 + 50),
        (b"\xff other", 1, T0 + 60, T0 + 60),
    ]
    want = hashlib.sha256(b"rating/v1/s1/p1/event\x00" + GARBAGE).hexdigest()
    assert rows[0]["msg_key"] == want == store.dead_letter_key("rating/v1/s1/p1/event", GARBAGE)
    ing = ingest.Ingestor(d, ROOT)
    ing.handle("rating/v1/s1/p1/event", GARBAGE, T0 + 100)
    ing.flush()
    assert d.scalar("SELECT COUNT(*) AS n FROM dead_letters") == 2
    assert d.scalar("SELECT seen FROM dead_letters WHERE msg_key = ?", (want,)) == 3


# ---- 2. a malformed event does not stall the panel ------------------------------------------


def test_gw_defect_malformed_event_with_readable_seq_is_acked_past(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    ing.handle(ev_topic("p1"), bad_event(3), T0 + 3)
    for seq in (4, 5):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 5}
    # the panel missed the ack and resends 3..5: still one dead letter, the ack stays
    for seq in (3, 4, 5):
        ing.handle(ev_topic("p1"), bad_event(3) if seq == 3 else event_body(seq), T0 + 100 + seq)
    assert acks_of(ing.flush()) == {"p1": 5}
    (dl,) = store.dead_letters(any_db)
    assert (dl["seen"], dl["site"], dl["device"], dl["seq"]) == (2, "s1", "p1", 3)
    assert store.last_ack(any_db, "s1", "p1") == 5
    assert store.contiguous_acked_seq(any_db, "s1", "p1", previous=0) == 5
    # status: seq 3 is lost (it will never be stored as an event), at once, and says why
    gaps = store.gaps(any_db, "s1", "p1", T0 + 200)
    assert gaps == [{"first": 3, "last": 3, "count": 1, "status": "lost", "why": "dead_letter"}]
    # a new gateway process (empty cache) computes the same
    ing2 = ingest.Ingestor(any_db, ROOT)
    ing2.handle(ev_topic("p1"), event_body(6), T0 + 300)
    assert acks_of(ing2.flush()) == {"p1": 6}


def test_gw_defect_unreadable_event_gap_is_passed_once_overdue_and_resent(any_db):
    ing = ingest.Ingestor(any_db, ROOT)

    def cycle(at, with_garbage=True):
        if with_garbage:
            ing.handle(ev_topic("p1"), GARBAGE, at)  # what the panel sends as seq 3
        for seq in (4, 5):
            ing.handle(ev_topic("p1"), event_body(seq), at + seq)
        return acks_of(ing.flush())

    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 2}
    assert cycle(T0 + 10) == {}
    assert cycle(T0 + 60000) == {"p1": 2}  # a resend: the ack again, not past the gap
    # overdue, but nothing unreadable came again: a gap is never passed on time alone
    assert cycle(T0 + GRACE + 1000, with_garbage=False) == {"p1": 2}
    # overdue and the panel still sends something unreadable where seq 3 should be
    assert cycle(T0 + GRACE + 2000) == {"p1": 5}
    (dl,) = store.dead_letters(any_db)
    assert dl["seen"] == 3 and dl["seq"] is None
    assert any_db.query("SELECT seq, inferred FROM dead_seqs") == [{"seq": 3, "inferred": 1}]
    assert store.gaps(any_db, "s1", "p1", T0 + GRACE + 3000) == [
        {"first": 3, "last": 3, "count": 1, "status": "lost", "why": "dead_letter"}
    ]
    assert store.contiguous_acked_seq(any_db, "s1", "p1", previous=0) == 5


def test_gw_defect_a_plain_gap_still_holds_the_ack(any_db):
    """Unchanged: without an unreadable message of that panel the ack waits for the gap."""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2, 4, 5):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    ing.handle(ev_topic("p2"), GARBAGE, T0 + 6)  # another panel's garbage changes nothing here
    assert acks_of(ing.flush()) == {"p1": 2}
    for at in (T0 + GRACE + 10, T0 + 2 * GRACE):
        ing.handle(ev_topic("p2"), GARBAGE, at)
        for seq in (4, 5):
            ing.handle(ev_topic("p1"), event_body(seq), at + seq)
        assert acks_of(ing.flush()) == {"p1": 2}


# ---- 3. duplicates refresh last_seen ---------------------------------------------------------


def test_gw_defect_resent_duplicates_move_last_seen(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    ing.flush()
    ing.handle(ev_topic("p1"), event_body(1), T0 + 5000)  # the panel resends: it is alive
    ing.flush()
    assert store.panel_state(any_db, "s1", "p1")["last_seen_ms"] == T0 + 5000
    other = messages.encode_event(1, 2, 10, None, "no")  # a valid event re-using seq 1
    ing.handle(ev_topic("p1"), other, T0 + 9000)
    ing.flush()
    assert store.panel_state(any_db, "s1", "p1")["last_seen_ms"] == T0 + 9000
    ing.handle(ev_topic("p1"), event_body(1), T0 + 1000)  # an older redelivery never moves it back
    ing.flush()
    assert store.panel_state(any_db, "s1", "p1")["last_seen_ms"] == T0 + 9000


# ---- 1-3 on the wire -------------------------------------------------------------------------


def test_gw_defect_live_malformed_event_does_not_stall_and_resends_are_counted(broker, mqtt_root, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "live.db")
    gw = Gateway(broker.url, url, mqtt_root, "gw-" + mqtt_root.replace("/", "-")).start()
    fleet = Fleet(broker, mqtt_root, "s1", 1)
    topic = ev_topic("p0", root=mqtt_root)
    try:
        fleet.send("p0", [1, 2])
        fleet.publish(topic, bad_event(3))
        fleet.send("p0", [4, 5])
        assert fleet.wait_acked(5, timeout=15), fleet.acked
        resent_at = int(time.time() * 1000)
        fleet.publish(topic, bad_event(3))  # a resend of the whole unacked tail
        fleet.send("p0", [4, 5])
        assert fleet.drain()
        time.sleep(1.0)
    finally:
        fleet.close()
        assert gw.terminate() == 0, gw.output()
    d = schema.open_database(url)
    (dl,) = store.dead_letters(d)
    assert (dl["seen"], dl["seq"]) == (2, 3)
    assert store.panel_state(d, "s1", "p0")["last_seen_ms"] >= resent_at
    d.close()


# ---- 4. derivation after a partly committed retry --------------------------------------------


def _fail_inserts_of(db, device, times):
    """A real trigger that makes the next `times` inserts of `device`'s events fail with an error
    the ingest treats as transient (a lock timeout), then lets them through."""
    if db.dialect == "sqlite":
        left = [times]

        def fail():
            if left[0] > 0:
                left[0] -= 1
                raise RuntimeError("simulated lock timeout")
            return 0

        db.conn.create_function("fail_some", 0, fail)
        db.execute(
            "CREATE TEMP TRIGGER fail_dev BEFORE INSERT ON raw_events WHEN NEW.device = '%s'"
            " BEGIN SELECT fail_some(); END" % device
        )
    else:
        db.execute("CREATE SEQUENCE fail_seq")
        db.execute(
            "CREATE FUNCTION fail_some() RETURNS trigger AS $$ BEGIN"
            " IF nextval('fail_seq') <= %d THEN RAISE EXCEPTION 'simulated lock timeout'"
            " USING ERRCODE = '55P03'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql" % times
        )
        db.execute(
            "CREATE TRIGGER fail_dev BEFORE INSERT ON raw_events FOR EACH ROW"
            " WHEN (NEW.device = '%s') EXECUTE FUNCTION fail_some()" % device
        )


def test_gw_defect_panels_committed_before_a_failed_retry_are_derived(any_db):
    derived = []
    hook = ingest.derive_hook(any_db)

    def on_commit(devices, now_ms):
        derived.append(set(devices))
        hook(devices, now_ms)

    ing = ingest.Ingestor(any_db, ROOT, on_commit=on_commit)
    _fail_inserts_of(any_db, "p2", 2)  # the batch, then p2 alone in the one-by-one retry
    ing.handle(ev_topic("p1"), event_body(1), T0)
    ing.handle(ev_topic("p2"), event_body(1), T0 + 1)
    with pytest.raises(Exception):
        ing.flush()
    assert store.max_seq(any_db, "s1", "p1") == 1  # p1 is committed, p2 still buffered
    acks = acks_of(ing.flush())  # the database is back
    assert acks == {"p1": 1, "p2": 1}
    assert set().union(*derived) == {("s1", "p1"), ("s1", "p2")}
    fed = {(r["device"], r["fed_seq"]) for r in any_db.query("SELECT device, fed_seq FROM derive_state")}
    assert fed == {("p1", 1), ("p2", 1)}


# ---- 5. multi-office report dates ------------------------------------------------------------


def _two_offices(tmp_path, msk_polls, la_polls):
    """A Moscow and a Los Angeles office (t0 = 2025-01-06T08:00Z = 11:00 Moscow = 00:00 LA),
    their polls at t0 + hours (answer), derived; -> the database URL."""
    from gw_part2_support import MIN, SITE_TOML, Panel, apply_site, sqlite_db, store_events

    hour = 60 * MIN
    db = sqlite_db(tmp_path)
    text = SITE_TOML.replace(
        "[[questions]]", '[[sites]]\nid = "aaa"\nname = "LA"\ntimezone = "America/Los_Angeles"\n\n[[questions]]', 1
    )
    text += '\n[[panels]]\nsite = "aaa"\ndevice = "desk-9"\nquestion = "staff"\n'
    apply_site(db, text)
    msk = Panel("msk", "desk-1", booted_at=T_OFFICES - 48 * hour)
    for h, answer in msk_polls:
        msk.poll(T_OFFICES + h * hour, answer)
    la = Panel("aaa", "desk-9", booted_at=T_OFFICES - 48 * hour)
    for h, answer in la_polls:
        la.poll(T_OFFICES + h * hour, answer)
    store_events(db, msk.events + la.events)
    derive.rebuild(db, T_OFFICES + 72 * hour)
    db.close()
    return "sqlite:///%s" % (tmp_path / "rating.db")


T_OFFICES = 1736150400000  # 2025-01-06T08:00Z = 11:00 Moscow = 00:00 Los Angeles


def test_gw_defect_report_dates_are_each_offices_local_day(tmp_path, capsys):
    """Without --site, `--from 2025-01-06 --to 2025-01-06` is 6 January in each office's own
    timezone: Moscow's polls of that Moscow day, Los Angeles' of that LA day."""
    from gw_part2_support import MIN

    from rating import cli

    hour = 60 * MIN
    t0 = T_OFFICES
    url = _two_offices(
        tmp_path,
        [
            (-2, "no"),  # 09:00 Moscow on the 6th: in
            (-1, "yes"),  # 10:00 Moscow on the 6th: in
            (15, "no"),
        ],  # 02:00 Moscow on the 7th: out (still the 6th in LA)
        [
            (-1, "no"),  # 23:00 LA on the 5th: out (already the 6th in Moscow)
            (10, "yes"),
        ],
    )  # 10:00 LA on the 6th: in
    capsys.readouterr()
    assert cli.main(["report", "--db", url, "--from", "2025-01-06", "--to", "2025-01-06", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["key"]: r["polls"]["valid"] for r in data["rows"]} == {"aaa": 1, "msk": 2}
    assert data["total"]["polls"]["valid"] == 3
    assert (data["from_local"], data["to_local"]) == ("2025-01-06T00:00:00", "2025-01-07T00:00:00")
    assert data["from_ms"] is None and data["to_ms"] is None  # no single instant fits both offices
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["msk"]["period_start_ms"] == t0 - 11 * hour  # each row: its office's own day
    assert rows["aaa"]["period_start_ms"] == t0
    # one office chosen: its day, as absolute times, as before
    assert (
        cli.main(
            ["report", "--db", url, "--site", "msk", "--from", "2025-01-06", "--to", "2025-01-06", "--format", "json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert (data["from_ms"], data["to_ms"]) == (t0 - 11 * hour, t0 + 13 * hour)
    assert data["total"]["polls"]["valid"] == 2
    # an explicit offset is one instant for every office
    assert (
        cli.main(
            [
                "report",
                "--db",
                url,
                "--from",
                "2025-01-06T08:00:00+00:00",
                "--to",
                "2025-01-07T08:00:00+00:00",
                "--format",
                "json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["from_local"] is None and data["from_ms"] == t0
    assert {r["key"]: r["polls"]["valid"] for r in data["rows"]} == {"aaa": 1, "msk": 1}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 30))
def test_gw_defect_incremental_ack_with_dead_letters_equals_the_rule(data, n):
    """With some events malformed (seq readable), the cached incremental ack still equals
    store.contiguous_acked_seq from scratch after every batch, and ends at n: a bad event
    never holds its panel back."""
    bad = data.draw(st.sets(st.integers(1, n), max_size=n), label="malformed seqs")
    sent = list(range(1, n + 1))
    sent += data.draw(st.lists(st.sampled_from(sent), max_size=6), label="resends")
    order = data.draw(st.permutations(sent), label="order")
    cuts = set(data.draw(st.sets(st.integers(1, len(order)), max_size=6), label="cuts"))
    d = schema.open_database("sqlite:///:memory:")
    ing = ingest.Ingestor(d, ROOT)
    last = 0
    for i, seq in enumerate(order, 1):
        ing.handle(ev_topic("p1"), bad_event(seq) if seq in bad else event_body(seq), T0 + i)
        if i in cuts or i == len(order):
            for a in acks_of(ing.flush()).values():
                assert a >= last
                last = a
            assert (store.last_ack(d, "s1", "p1") or 0) == store.contiguous_acked_seq(d, "s1", "p1", previous=0)
    assert store.last_ack(d, "s1", "p1") == n
    assert store.dead_letter_count(d, distinct=True) == len(bad)
    lost = store.lost_summary(store.gaps(d, "s1", "p1", T0))[0]
    assert lost == len(bad)
    d.close()


def test_gw_defect_review_list_dates_are_each_offices_local_day(tmp_path, capsys):
    """`rating review list` without --site reads a date like `rating report` does: each office's
    own day (it used the first office's timezone for all)."""
    from rating import cli

    url = _two_offices(
        tmp_path,
        [
            (-2, "no"),  # 09:00 Moscow on the 6th: in
            (15, "no"),
        ],  # 02:00 Moscow on the 7th: out (still the 6th in LA)
        [
            (-1, "no"),  # 23:00 LA on the 5th: out (already the 6th in Moscow)
            (10, "no"),
        ],
    )  # 10:00 LA on the 6th: in
    capsys.readouterr()
    # every No answer is in the review sample: the listed ones are the polls in range
    assert cli.main(["review", "list", "--db", url, "--from", "2025-01-06", "--to", "2025-01-06", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith(("msk/", "aaa/"))]
    assert sorted(x.split("/")[0] for x in listed) == ["aaa", "msk"], out
    assert "2025-01-06 09:00" in out and "2025-01-06 10:00" in out, out  # each in its local time
    assert "2025-01-07 02:00" not in out and "2025-01-05 23:00" not in out, out
