"""The Ingestor against real databases: resends move last_seen, panels committed before a failed
one-by-one retry are derived, a failed reconnect to the database is transient (nothing acked past)."""

import psycopg
import pytest
from gw_ingest_support import ROOT, T0, acks_of, ev_topic, event_body

from gateway import db as dbmod
from gateway import ingest, schema, store
from protocol import messages


def _refuse_and_stall(db):
    """Real triggers: the database refuses p2's events for their content (a constraint on the
    row: an integrity error, as for a NUL character), and fails p3's with an error about its
    own state (a lock timeout) while the table `stall` has a row."""
    db.execute("CREATE TABLE stall (x INTEGER)")
    db.execute("INSERT INTO stall VALUES (1)")
    if db.dialect == "sqlite":

        def fail():
            raise RuntimeError("simulated lock timeout")

        db.conn.create_function("fail_now", 0, fail)
        db.execute(
            "CREATE TEMP TRIGGER refuse_p2 BEFORE INSERT ON raw_events WHEN NEW.device = 'p2'"
            " BEGIN SELECT RAISE(ABORT, 'refused for its content'); END"
        )
        db.execute(
            "CREATE TEMP TRIGGER stall_p3 BEFORE INSERT ON raw_events"
            " WHEN NEW.device = 'p3' AND EXISTS (SELECT 1 FROM stall) BEGIN SELECT fail_now(); END"
        )
    else:
        db.execute(
            "CREATE FUNCTION refuse_or_stall() RETURNS trigger AS $$ BEGIN"
            " IF NEW.device = 'p2' THEN RAISE EXCEPTION 'refused for its content' USING ERRCODE = '23514'; END IF;"
            " IF NEW.device = 'p3' AND EXISTS (SELECT 1 FROM stall) THEN"
            " RAISE EXCEPTION 'simulated lock timeout' USING ERRCODE = '55P03'; END IF;"
            " RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        db.execute(
            "CREATE TRIGGER refuse_or_stall BEFORE INSERT ON raw_events FOR EACH ROW EXECUTE FUNCTION refuse_or_stall()"
        )


def test_resent_duplicates_move_last_seen(any_db):
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


def test_panels_committed_before_a_failed_retry_are_derived(any_db):
    """The batch fails for p2's content: retried one by one, p1 is committed, p2 becomes a dead
    letter, then p3 fails for the database's state (a lock timeout): flush raises, p3 waits.
    p1's ack and derivation are not lost: they come with the next successful flush."""
    derived = []
    hook = ingest.derive_hook(any_db)

    def on_commit(devices, now_ms):
        derived.append(set(devices))
        hook(devices, now_ms)

    ing = ingest.Ingestor(any_db, ROOT, on_commit=on_commit)
    _refuse_and_stall(any_db)
    for n, device in enumerate(("p1", "p2", "p3")):
        ing.handle(ev_topic(device), event_body(1), T0 + n)
    with pytest.raises(Exception):  # noqa: B017 - the trigger's error differs per database
        ing.flush()
    assert store.max_seq(any_db, "s1", "p1") == 1  # p1 is committed, p3 still buffered
    (dl,) = store.dead_letters(any_db)
    assert dl["device"] == "p2" and "database refused" in dl["reason"]
    any_db.execute("DELETE FROM stall")  # the lock is gone
    acks = acks_of(ing.flush())
    assert acks == {"p1": 1, "p3": 1}  # p2: a dead letter, not journaled per any state
    assert set().union(*derived) == {("s1", "p1"), ("s1", "p3")}
    fed = {(r["device"], r["fed_seq"]) for r in any_db.query("SELECT device, fed_seq FROM derive_state")}
    assert fed == {("p1", 1), ("p3", 1)}


def test_failed_reconnect_does_not_ack_a_valid_event_past(pg_store_url):
    """PostgreSQL restarts: the batch fails, the reconnect for the one-by-one retry is refused
    (the server is still starting), the next one succeeds. The event must wait for the next
    flush, not become a 'database refused' dead letter whose seq the panel is acked for."""
    name = pg_store_url.rsplit("/", 1)[1]
    d = schema.open_database(pg_store_url)
    ing = ingest.Ingestor(d, ROOT)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    assert acks_of(ing.flush()) == {"p1": 1}
    real_reopen = d._reopen
    with psycopg.connect(pg_store_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:

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
