"""The ingest core against real databases: SQLite in tmp_path and PostgreSQL (pg_store_url)."""

import os

import pytest
from gw_ingest_support import T0, event_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import db as dbmod
from gateway import ingest, schema, store
from protocol import messages

ROOT = "rating/v1"


def ev_topic(device, site="s1"):
    return "%s/%s/%s/event" % (ROOT, site, device)


def state_body(seq, pending, dropped=0, t=None, up=5000, boot=1, **kw):
    s = dict(
        online=True,
        boot=boot,
        up=up,
        t=t,
        fw="1.0",
        seq=seq,
        pending=pending,
        dropped=dropped,
        heap=50000,
        rssi=-60,
        faults=[],
        cfg=None,
        cfg_err=None,
    )
    s.update(kw)
    return messages.encode_state(s)


def acks_of(acks):
    return {topic.split("/")[-2]: messages.decode_ack(payload) for topic, payload, retain, qos in acks}


def test_gw_ingest_duplicates_and_out_of_order_stored_once(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (3, 1, 2, 2, 5, 1):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    acks = acks_of(ing.flush())
    assert acks == {"p1": 3}  # 4 missing: the ack stops before the gap
    for seq in (5, 4, 3):  # resends in a later batch
        ing.handle(ev_topic("p1"), event_body(seq), T0 + 10)
    assert acks_of(ing.flush()) == {"p1": 5}
    rows = any_db.query("SELECT seq, payload FROM raw_events ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["payload"] == event_body(1).decode()
    assert ing.stats["duplicates"] == 4 and ing.stats["events"] == 5
    assert store.dead_letter_count(any_db) == 0


def test_gw_ingest_seq_reused_with_other_content_is_a_dead_letter(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    ing.flush()
    other = messages.encode_event(1, 2, 10, None, "no")  # a reset journal re-using seq 1
    ing.handle(ev_topic("p1"), other, T0 + 1)
    ing.flush()
    assert any_db.scalar("SELECT payload FROM raw_events WHERE seq = 1") == event_body(1).decode()
    (dl,) = store.dead_letters(any_db)
    assert dl["payload"] == other and "already stored with different content" in dl["reason"]


def test_gw_ingest_ack_passes_only_gaps_the_panel_dropped(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2, 5, 6):
        ing.handle(ev_topic("p1"), event_body(seq), T0)
    assert acks_of(ing.flush()) == {"p1": 2}
    # the panel still holds 3..6 (seq 6, pending 4): 3 and 4 may still come, the ack waits
    ing.handle("%s/s1/p1/state" % ROOT, state_body(6, 4), T0 + 1)
    assert ing.flush() == []
    assert store.last_ack(any_db, "s1", "p1") == 2
    gaps = store.gaps(any_db, "s1", "p1", T0 + 2)
    assert [(g["first"], g["last"], g["status"]) for g in gaps] == [(3, 4, "open")]
    # much later, still missing: reported lost (overdue) but NOT acked past
    gaps = store.gaps(any_db, "s1", "p1", T0 + store.LOST_GRACE_MS + 10)
    assert [(g["first"], g["last"], g["status"], g["why"]) for g in gaps] == [(3, 4, "lost", "overdue")]
    # the panel overflowed: it now holds only 5..8 (3, 4 dropped) -> ack passes them
    ing.handle("%s/s1/p1/state" % ROOT, state_body(8, 4, dropped=2), T0 + 3)
    assert acks_of(ing.flush()) == {"p1": 6}
    gaps = store.gaps(any_db, "s1", "p1", T0 + 4)
    assert [(g["first"], g["last"], g["status"], g["why"]) for g in gaps] == [(3, 4, "lost", "dropped")]
    assert store.lost_summary(gaps) == (2, "3-4")
    for seq in (7, 8):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + 5)
    assert acks_of(ing.flush()) == {"p1": 8}


def test_gw_ingest_ack_is_never_beyond_stored_or_dropped(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    # a panel that dropped everything up to 10 before the gateway ever saw it
    ing.handle("%s/s1/p2/state" % ROOT, state_body(12, 2, dropped=10), T0)
    assert acks_of(ing.flush()) == {"p2": 10}
    gaps = store.gaps(any_db, "s1", "p2", T0)
    assert store.lost_summary(gaps) == (10, "1-10")
    # an old retained state (lower floor) never moves the ack back
    ing.handle("%s/s1/p2/state" % ROOT, state_body(3, 3), T0 + 1)
    assert ing.flush() == []
    assert store.last_ack(any_db, "s1", "p2") == 10


def test_gw_ingest_resent_duplicates_get_the_ack_again(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0)
    assert acks_of(ing.flush()) == {"p1": 2}
    ing.handle(ev_topic("p1"), event_body(2), T0 + 5)  # the panel never saw the ack
    assert acks_of(ing.flush()) == {"p1": 2}
    assert ing.ack_messages() == [("%s/s1/p1/ack" % ROOT, messages.encode_ack(2), True, 1)]


def test_gw_ingest_bad_topics_and_payloads_are_dead_letters(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    cases = [
        ("%s/Shop/p1/event" % ROOT, event_body(1)),  # bad site id
        ("%s/s1/p1/event" % ROOT, b'{"v":1,"seq":-3,"boot":1,"up":1,"t":null,"ev":"yes"}'),
        ("%s/s1/p1/state" % ROOT, b"\xff\xfe"),
        ("%s/s1/counts" % ROOT, b'{"v":1,"from":1717000000000,"to":1717000000000,"visitors":1}'),
        ("%s/s1/p1/ack" % ROOT, messages.encode_ack(3)),  # ours, not to be ingested
        ("other/v1/s1/p1/event", event_body(1)),
    ]
    for n, (topic, body) in enumerate(cases):
        ing.handle(topic, body, T0 + n)
    assert ing.flush() == []
    letters = sorted(store.dead_letters(any_db, limit=0), key=lambda r: r["received_ms"])
    assert [(r["topic"], r["payload"]) for r in letters] == cases
    assert "site:" in letters[0]["reason"] and "seq: must be an integer >= 1" in letters[1]["reason"]
    assert any_db.scalar("SELECT COUNT(*) AS n FROM raw_events") == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bodies=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.builds(
                lambda d: __import__("json").dumps(d).encode(),
                st.dictionaries(
                    st.sampled_from(["v", "seq", "boot", "up", "t", "ev", "hold", "online"]),
                    st.one_of(st.integers(-5, 2**60), st.none(), st.text(max_size=5), st.booleans()),
                    max_size=8,
                ),
            ),
        ),
        min_size=1,
        max_size=12,
    ),
    kinds=st.lists(st.sampled_from(["event", "state", "counts", "zz"]), min_size=12, max_size=12),
)
def test_gw_ingest_random_payloads_never_crash_and_are_accounted(any_db, bodies, kinds):
    any_db.execute("DELETE FROM dead_letters")
    any_db.execute("DELETE FROM raw_events")
    ing = ingest.Ingestor(any_db, ROOT)
    for body, kind in zip(bodies, kinds, strict=False):  # hypothesis draws them apart
        topic = "%s/s1/counts" % ROOT if kind == "counts" else "%s/s1/p1/%s" % (ROOT, kind)
        ing.handle(topic, body, T0)
    ing.flush()
    st_ = ing.stats
    assert st_["messages"] == len(bodies)
    # every message is accounted for: stored (or a duplicate), a state, counts, or a dead letter
    assert st_["events"] + st_["duplicates"] + st_["states"] + st_["counts"] + st_["dead_letters"] == len(bodies)
    assert store.dead_letter_count(any_db) == st_["dead_letters"]


def test_gw_ingest_state_and_last_will(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle("%s/s1/p1/state" % ROOT, state_body(4, 1, t=T0 + 9000, up=9000, faults=["btn-yes"]), T0)
    ing.handle(ev_topic("p1"), event_body(1), T0 + 50)
    ing.flush()
    ing.handle("%s/s1/p1/state" % ROOT, messages.OFFLINE_WILL, T0 + 100)
    ing.flush()
    row = store.panel_state(any_db, "s1", "p1")
    assert row["online"] == 0 and row["last_seq"] == 4 and row["pending"] == 1
    assert row["last_seen_ms"] == T0 + 50 and row["faults"] == '["btn-yes"]'
    assert store.boot_offsets(any_db, "s1", "p1") == {1: T0}


def test_gw_ingest_counts_reimport_updates(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    body = messages.encode_counts({"from": T0, "to": T0 + 3600000, "transactions": 10})
    ing.handle("%s/s1/counts" % ROOT, body, T0)
    ing.flush()
    store.insert_counts(any_db, "s1", "", T0, T0 + 3600000, None, 40, "csv:a.csv", T0 + 1)
    store.insert_counts(any_db, "s1", "", T0, T0 + 3600000, 12, None, "csv:a.csv", T0 + 2)
    (row,) = store.counts(any_db, "s1")
    assert (row["transactions"], row["visitors"], row["source"]) == (12, 40, "csv:a.csv")


def test_gw_ingest_poison_message_does_not_block_the_batch(any_db):
    if any_db.dialect != "postgresql":
        pytest.skip("SQLite stores NUL characters; PostgreSQL text refuses them")
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    bad = state_body(1, 0, fw="a\u0000b")
    ing.handle("%s/s1/p1/state" % ROOT, bad, T0)
    ing.handle(ev_topic("p1"), event_body(2), T0)
    assert acks_of(ing.flush()) == {"p1": 2}
    (dl,) = store.dead_letters(any_db)
    assert dl["payload"] == bad and "database refused" in dl["reason"]


def test_gw_ingest_migrations_are_idempotent_and_pick_dialect(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "m.db")
    d = schema.open_database(url)
    assert schema.migrate(d) == []
    d.close()
    mig = tmp_path / "mig"
    mig.mkdir()
    (mig / "001_a.sql").write_text("CREATE TABLE a (id {{AUTO_ID}}, b {{BLOB}});")
    (mig / "002_b.sql").write_text("CREATE TABLE wrong (x INTEGER);")
    (mig / "002_b.sqlite.sql").write_text("-- sqlite only; a ; in a comment\nCREATE TABLE b (x TEXT DEFAULT 'a;b');")
    (mig / "002_b.postgresql.sql").write_text("CREATE TABLE b (x TEXT);")
    (mig / "notes.txt").write_text("ignored")
    d = dbmod.connect("sqlite:///%s" % (tmp_path / "m2.db"))
    assert d.migrate(str(mig)) == ["001_a", "002_b"]
    assert d.migrate(str(mig)) == []
    assert d.query("INSERT INTO a (b) VALUES (?) RETURNING id", (b"x",)) == [{"id": 1}]
    assert d.query("INSERT INTO b DEFAULT VALUES RETURNING x") == [{"x": "a;b"}]
    assert not d.query("SELECT name FROM sqlite_master WHERE name = 'wrong'")


def test_gw_ingest_placeholders_and_transactions(any_db):
    any_db.execute(
        "INSERT INTO dead_letters (topic, payload, reason, received_ms) VALUES (?, ?, '100%', ?)", ("t?%", b"\x00", 1)
    )
    assert any_db.query("SELECT topic, reason FROM dead_letters WHERE topic LIKE 't%'") == [
        {"topic": "t?%", "reason": "100%"}
    ]
    with pytest.raises(RuntimeError):
        with any_db.transaction():
            any_db.execute("DELETE FROM dead_letters")
            with any_db.transaction():  # nested joins the outer one
                pass
            raise RuntimeError
    assert any_db.scalar("SELECT COUNT(*) AS n FROM dead_letters") == 1


def test_gw_ingest_default_url(monkeypatch, tmp_path):
    monkeypatch.delenv("RATING_DB", raising=False)
    monkeypatch.setenv("RATING_DATA", str(tmp_path / "data"))
    assert dbmod.default_url() == "sqlite:///" + os.path.join(str(tmp_path / "data"), "rating.db")
    d = schema.open_database()
    d.close()
    assert (tmp_path / "data" / "rating.db").exists()
    with pytest.raises(dbmod.DatabaseError, match="sqlite:///"):
        dbmod.connect("mysql://x")


def test_gw_ingest_postgres_connection_loss_is_survived(pg_store_url):
    import psycopg
    from gw_ingest_support import event_body as body

    d = schema.open_database(pg_store_url)
    ing = ingest.Ingestor(d, ROOT)
    ing.handle(ev_topic("p1"), body(1), T0)
    ing.flush()
    pid = d.scalar("SELECT pg_backend_pid() AS pid")
    with psycopg.connect(pg_store_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    ing.handle(ev_topic("p1"), body(2), T0)
    assert acks_of(ing.flush()) == {"p1": 2}  # nothing lost, no dead letter
    assert d.scalar("SELECT pg_backend_pid() AS pid") != pid
    assert store.dead_letter_count(d) == 0
    d.close()


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(1, 40))
def test_gw_ingest_incremental_ack_equals_the_rule(data, n):
    """The Ingestor's cached, incremental ack equals store.contiguous_acked_seq from scratch, after
    every batch, for any delivery order, duplicates, batch split and journal overflow."""
    floor = data.draw(st.integers(1, n + 1), label="panel floor after overflow")
    lost_below = data.draw(st.sets(st.integers(1, max(1, floor - 1)), max_size=n), label="never sent")
    sent = [s for s in range(1, n + 1) if s >= floor or s not in lost_below]
    sent += data.draw(st.lists(st.sampled_from(sent), max_size=5), label="resends") if sent else []
    order = data.draw(st.permutations(sent), label="order")
    state_at = data.draw(st.integers(0, len(order)), label="state position")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(order))), max_size=6), label="cuts"))
    d = schema.open_database("sqlite:///:memory:")
    ing = ingest.Ingestor(d, ROOT)
    msgs = [(ev_topic("p1"), event_body(s)) for s in order]
    msgs.insert(state_at, ("%s/s1/p1/state" % ROOT, state_body(n, n - floor + 1, dropped=floor - 1)))
    last = 0
    for i, (topic, body) in enumerate(msgs, 1):
        ing.handle(topic, body, T0 + i)
        if i in cuts or i == len(msgs):
            for a in acks_of(ing.flush()).values():
                assert a > last or a == last  # cumulative, never back
                last = a
            recorded = store.last_ack(d, "s1", "p1") or 0
            assert recorded == store.contiguous_acked_seq(d, "s1", "p1", previous=0)
            stored = {r["seq"] for r in d.query("SELECT seq FROM raw_events")}
            fl = store.held_floor(store.panel_state(d, "s1", "p1"))
            assert all(s in stored or s < fl for s in range(1, recorded + 1))
    assert store.last_ack(d, "s1", "p1") == n
    d.close()
