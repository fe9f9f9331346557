"""Review of the dead-letter ack rule (dead_seqs, infer_unreadable_gap) against real databases,
and with the firmware's own journal where the panel's side matters:

1. an unreadable message never stands in for more seqs than the panel can have sent past its ack;
2. a failed reconnect to the database is transient, not a refusal that acks a valid event past;
3. a panel resending what the gateway already handled (a dead-lettered seq, a seq re-used with
   other content) gets the ack again, as for a duplicate - a wiped panel needs it to renumber;
4. `rating status` lists a panel known only through its dead-lettered events.
"""

import psycopg
from gw_ingest_support import T0, event_body

from firmware import journal as J
from firmware.memfs import unacked
from gateway import cli_gateway, ingest, schema, store
from gateway import db as dbmod
from protocol import messages, panel

ROOT = "rating/v1"
GRACE = store.LOST_GRACE_MS
GARBAGE = b"\x00\x01 not an event"


def ev_topic(device, site="s1"):
    return "%s/%s/%s/event" % (ROOT, site, device)


def acks_of(acks):
    return {topic.split("/")[-2]: messages.decode_ack(payload) for topic, payload, retain, qos in acks}


def bad_event(seq):
    return b'{"v":1,"seq":%d,"boot":1,"up":%d,"t":null,"ev":"maybe"}' % (seq, seq * 1000)


# ---- 0. migration 004 on a big database ----------------------------------------------------


def test_gw_review_dead_letter_merge_is_not_quadratic(db_before_004):
    """Before 004 a stalled panel's resent garbage was stored once per arrival: tens of
    thousands of copies of a letter. The merge ran a per-row MIN(id) that PostgreSQL answered
    by walking the primary key past every other letter's copies (16 000 rows: ~30 s; grows with
    the square), while the gateway cannot start."""
    import time

    d = db_before_004
    k = 8000
    rows = [("rating/v1/s1/p1/event", GARBAGE, "payload: not JSON", T0 + i) for i in range(k)]
    rows += [("rating/v1/s1/p2/event", b"other", "payload: not JSON", T0 + k + i) for i in range(k)]
    with d.transaction():
        d.executemany("INSERT INTO dead_letters (topic, payload, reason, received_ms) VALUES (?, ?, ?, ?)", rows)
    started = time.monotonic()
    assert schema.migrate(d) != []
    took = time.monotonic() - started
    got = d.query("SELECT topic, seen, received_ms, last_seen_ms FROM dead_letters ORDER BY id")
    assert got == [
        {"topic": "rating/v1/s1/p1/event", "seen": k, "received_ms": T0, "last_seen_ms": T0 + k - 1},
        {"topic": "rating/v1/s1/p2/event", "seen": k, "received_ms": T0 + k, "last_seen_ms": T0 + 2 * k - 1},
    ]
    assert took < 5, "migration took %.1f s" % took


# ---- 1. the inferred gap is bounded by the panel's send window ---------------------------------


def test_gw_review_unreadable_message_does_not_pass_a_gap_wider_than_the_send_window(any_db):
    """The panel sends at most 50 events past its ack, so one event 200 above the ack was not
    sent in the round the unreadable message belongs to: 3..201 are not that message's seqs.
    (With a seq near 2**53 the old rule built a list of every seq in between.)"""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 2}
    ing.handle(ev_topic("p1"), event_body(202), T0 + 10)
    ing.handle(ev_topic("p1"), GARBAGE, T0 + 20)
    ing.flush()
    ing.handle(ev_topic("p1"), GARBAGE, T0 + GRACE + 1000)
    ing.flush()
    assert store.last_ack(any_db, "s1", "p1") == 2
    assert any_db.scalar("SELECT COUNT(*) AS n FROM dead_seqs") == 0


def test_gw_review_unreadable_gap_within_the_send_window_is_still_passed(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    for at in (T0 + 10, T0 + GRACE + 1000):
        ing.handle(ev_topic("p1"), GARBAGE, at)
        ing.handle(ev_topic("p1"), event_body(51), at + 1)  # the panel's 50th event past ack 1
        ing.flush()
    assert store.last_ack(any_db, "s1", "p1") == 51


# ---- 2. a failed reconnect is transient ------------------------------------------------------


def test_gw_review_failed_reconnect_does_not_ack_a_valid_event_past(pg_url):
    """PostgreSQL restarts: the batch fails, the reconnect for the one-by-one retry is refused
    (the server is still starting), the next one succeeds. The event must wait for the next
    flush, not become a 'database refused' dead letter whose seq the panel is acked for."""
    name = pg_url.rsplit("/", 1)[1]
    d = schema.open_database(pg_url)
    ing = ingest.Ingestor(d, ROOT)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    assert acks_of(ing.flush()) == {"p1": 1}
    real_reopen = d._reopen
    with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:

        def reopen():
            try:
                return real_reopen()
            finally:  # the server is back right after this attempt
                admin.execute("ALTER DATABASE %s ALLOW_CONNECTIONS true" % name)

        d._reopen = reopen
        admin.execute("ALTER DATABASE %s ALLOW_CONNECTIONS false" % name)
        admin.execute("SELECT pg_terminate_backend(%s)", (d.scalar("SELECT pg_backend_pid() AS p"),))
        ing.handle(ev_topic("p1"), event_body(2), T0 + 1)
        try:
            acks = ing.flush()
        except dbmod.DatabaseError:
            acks = ing.flush()  # the service flushes again later
    assert acks_of(acks) == {"p1": 2}
    assert d.scalar("SELECT COUNT(*) AS n FROM raw_events WHERE seq = 2") == 1
    assert store.dead_letter_count(d) == 0
    d.close()


# ---- 3. the ack again for a panel resending what was handled ---------------------------------


def test_gw_review_resent_dead_lettered_event_gets_the_ack_again(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    ing.handle(ev_topic("p1"), bad_event(2), T0 + 1)
    assert acks_of(ing.flush()) == {"p1": 2}
    # the ack did not reach the panel: it resends its only unacked event, the bad one
    ing.handle(ev_topic("p1"), bad_event(2), T0 + 30000)
    assert acks_of(ing.flush()) == {"p1": 2}  # as for a resent stored event
    ing.handle(ev_topic("p1"), event_body(1), T0 + 30001)
    assert acks_of(ing.flush()) == {"p1": 2}


def test_gw_review_wiped_panel_gets_the_ack_on_a_conflict_and_renumbers(any_db):
    """A wiped panel that did not get the retained ack at connect sends its new presses under
    seqs the gateway already holds. The conflicts are dead letters; the ack sent back makes the
    panel's journal renumber them above it, and each press is stored once."""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in range(1, 6):  # the panel's previous life
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 5}
    j = J.Journal(J.MemFs(), capacity=100)
    j.next_boot()
    for i in range(3):
        j.append(J.pack_event(j.boot, 7000 + i, T0 + 100000 + i, "yes", None))

    def send(at):
        for seq, payload in unacked(j):
            boot, up, t, ev, hold = J.unpack_event(payload)
            ing.handle(ev_topic("p1"), panel.encode_event(seq, boot, up, t, ev, hold), at)
        for seq in acks_of(ing.flush()).values():
            j.ack(seq)

    send(T0 + 50000)
    assert [s for s, _ in unacked(j)] == [6, 7, 8]  # renumbered above the gateway's ack
    send(T0 + 60000)
    assert list(unacked(j)) == []
    rows = any_db.query("SELECT seq, t_ms FROM raw_events ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r["t_ms"] for r in rows].count(T0 + 100000) == 1  # each press once
    assert store.last_ack(any_db, "s1", "p1") == 8


def test_gw_review_wiped_panel_does_not_fill_a_dead_lettered_seq(any_db):
    """The previous life's seq 3 was dead-lettered and acked past. The wiped panel's third
    press, sent as seq 3 before it renumbers, is not that event (the panel deleted it once
    acked): stored there and again under its new seq it would count twice in the KPIs."""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2, 4, 5):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    ing.handle(ev_topic("p1"), bad_event(3), T0 + 3)
    assert acks_of(ing.flush()) == {"p1": 5}
    j = J.Journal(J.MemFs(), capacity=100)
    j.next_boot()
    for i in range(3):
        j.append(J.pack_event(j.boot, 7000 + i, T0 + 100000 + i, "yes", None))
    for at in (T0 + 50000, T0 + 60000):
        for seq, payload in unacked(j):
            ing.handle(ev_topic("p1"), panel.encode_event(seq, *J.unpack_event(payload)), at)
        for seq in acks_of(ing.flush()).values():
            j.ack(seq)
    assert list(unacked(j)) == []
    rows = any_db.query("SELECT seq, t_ms FROM raw_events ORDER BY seq")
    assert [r["t_ms"] for r in rows].count(T0 + 100002) == 1
    assert [r["seq"] for r in rows] == [1, 2, 4, 5, 6, 7, 8]
    # the previous life's seq 3 stays lost
    assert store.lost_summary(store.gaps(any_db, "s1", "p1", T0 + 70000)) == (1, "3")


# ---- 4. status ---------------------------------------------------------------------------------


def test_gw_review_status_lists_a_panel_known_only_by_dead_letters(any_db):
    """A panel whose events all fail validation (a protocol the gateway does not know) is acked
    past them; its losses must show in status even without a stored event or state."""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2):
        ing.handle(ev_topic("p9"), bad_event(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p9": 2}
    report = cli_gateway.status_report(any_db, T0 + 10, GRACE)
    (p,) = [p for p in report["panels"] if p["device"] == "p9"]
    assert (p["lost"], p["lost_ranges"], p["acked_seq"]) == (2, "1-2", 2)
