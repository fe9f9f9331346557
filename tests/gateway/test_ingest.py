"""The Ingestor against real databases: resends move last_seen, panels committed before a failed
one-by-one retry are derived, a failed reconnect to the database is transient (nothing acked past)."""

import psycopg
import pytest
from gw_ingest_support import ROOT, T0, acks_of, ev_topic, event_body

from gateway import db as dbmod
from gateway import ingest, schema, store
from protocol import messages


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
    derived = []
    hook = ingest.derive_hook(any_db)

    def on_commit(devices, now_ms):
        derived.append(set(devices))
        hook(devices, now_ms)

    ing = ingest.Ingestor(any_db, ROOT, on_commit=on_commit)
    _fail_inserts_of(any_db, "p2", 2)  # the batch, then p2 alone in the one-by-one retry
    ing.handle(ev_topic("p1"), event_body(1), T0)
    ing.handle(ev_topic("p2"), event_body(1), T0 + 1)
    with pytest.raises(Exception):  # noqa: B017 - the trigger's error differs per database
        ing.flush()
    assert store.max_seq(any_db, "s1", "p1") == 1  # p1 is committed, p2 still buffered
    acks = acks_of(ing.flush())  # the database is back
    assert acks == {"p1": 1, "p2": 1}
    assert set().union(*derived) == {("s1", "p1"), ("s1", "p2")}
    fed = {(r["device"], r["fed_seq"]) for r in any_db.query("SELECT device, fed_seq FROM derive_state")}
    assert fed == {("p1", 1), ("p2", 1)}


def test_failed_reconnect_does_not_ack_a_valid_event_past(pg_url):
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
