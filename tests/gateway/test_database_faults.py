"""A database fault is never a message's fault: while the database refuses every write (privilege
revoked, table gone, read-only transaction, connection killed or locked out, disk full, a
constraint on the table itself), flush() raises and keeps the batch - nothing is stored, acked
or dead-lettered - and once the fault is over the same batch is stored and acked, once. Only an
error a database raises for one message's values, which a known-good canary row does not hit,
makes a dead letter (test_store.py: a NUL character on PostgreSQL). Real faults on the real
PostgreSQL and SQLite."""

import os
import sqlite3

import pytest
from gw_fault_support import (
    fill_sqlite,
    pg_admin,
    pg_drop_tablespace,
    pg_fill,
    pg_gateway_role,
    pg_reachable_dir,
    pg_small_tablespace,
    small_disk,
)
from gw_ingest_support import ROOT, T0, acks_of, ev_topic, event_body

from gateway import db as dbmod
from gateway import ingest, schema

N = 3


def _press(ing, first=1, n=N):
    for seq in range(first, first + n):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)


def _observe(url):
    """What is committed, seen through a connection of its own."""
    d = dbmod.connect(url)
    try:
        return (
            [r["seq"] for r in d.query("SELECT seq FROM raw_events WHERE device = 'p1' ORDER BY seq")],
            d.scalar("SELECT COUNT(*) FROM dead_letters") or 0,
            d.scalar("SELECT acked_seq FROM acks WHERE device = 'p1'"),
        )
    finally:
        d.close()


def _fault_then_recovery(ing, url, inject, restore, observe=None):
    """The batch fails while the fault lasts (twice: the service keeps retrying), nothing of it
    is committed, acked or dead-lettered; after the fault it is stored and acked once."""
    _press(ing)
    inject()
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - each fault raises its database's own error
            ing.flush()
        assert len(ing) == N  # still buffered for the next attempt
    assert (observe or (lambda: _observe(url)))() == ([], 0, None)
    restore()
    assert acks_of(ing.flush()) == {"p1": N}
    assert _observe(url) == (list(range(1, N + 1)), 0, N)
    assert ing.stats["dead_letters"] == 0


def _url(db, tmp_path):
    return db.url if db.dialect == "postgresql" else "sqlite:///%s" % (tmp_path / "rating.db")


# ---- privilege revoked -------------------------------------------------------------------------


def test_revoked_insert_privilege_stores_and_acks_nothing_until_granted_again(pg_store_url):
    """PostgreSQL, INSERT on raw_events revoked from the gateway's role: every insert fails.
    Before the canary, each event was dead-lettered and acked: 1,853 of 1,853 lost."""
    schema.open_database(pg_store_url).close()
    with pg_gateway_role(pg_store_url) as (gw_url, role), pg_admin(pg_store_url) as admin:
        db = dbmod.connect(gw_url)
        ing = ingest.Ingestor(db, ROOT)
        try:
            _fault_then_recovery(
                ing,
                pg_store_url,
                lambda: admin.execute("REVOKE INSERT ON raw_events FROM %s" % role),
                lambda: admin.execute("GRANT INSERT ON raw_events TO %s" % role),
            )
        finally:
            db.close()


def test_sqlite_authorizer_denying_inserts_is_a_database_fault(tmp_path):
    """SQLite's own access control (an authorizer refusing INSERT on raw_events)."""
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    db = schema.open_database(url)
    ing = ingest.Ingestor(db, ROOT)

    def deny(action, table, *_):
        if action == sqlite3.SQLITE_INSERT and table == "raw_events":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    try:
        _fault_then_recovery(ing, url, lambda: db.conn.set_authorizer(deny), lambda: db.conn.set_authorizer(None))
    finally:
        db.close()


# ---- table gone, read-only, constraint on the table ----------------------------------------------


def test_missing_table_is_a_database_fault(any_db, tmp_path):
    """raw_events dropped or renamed away by an administrator (here renamed, to bring it back)."""
    url = _url(any_db, tmp_path)
    other = dbmod.connect(url)
    ing = ingest.Ingestor(any_db, ROOT)
    try:
        _fault_then_recovery(
            ing,
            url,
            lambda: other.execute("ALTER TABLE raw_events RENAME TO raw_events_away"),
            lambda: other.execute("ALTER TABLE raw_events_away RENAME TO raw_events"),
            observe=lambda: ([], other.scalar("SELECT COUNT(*) FROM dead_letters"), None),
        )
    finally:
        other.close()


def test_read_only_database_is_a_database_fault(any_db, tmp_path):
    """PostgreSQL: the database set read-only (default_transaction_read_only, as on a standby
    after a failover) and the gateway's session replaced; SQLite: query_only."""
    url = _url(any_db, tmp_path)
    ing = ingest.Ingestor(any_db, ROOT)
    if any_db.dialect == "sqlite":
        _fault_then_recovery(
            ing,
            url,
            lambda: any_db.conn.execute("PRAGMA query_only = ON"),
            lambda: any_db.conn.execute("PRAGMA query_only = OFF"),
        )
        return
    name = url.rsplit("/", 1)[1]
    with pg_admin(url) as admin:

        def switch(read_only):
            admin.execute("ALTER DATABASE %s SET default_transaction_read_only = %s" % (name, read_only))
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

        _fault_then_recovery(ing, url, lambda: switch("on"), lambda: switch("off"))


def test_a_constraint_refusing_every_row_is_a_database_fault(any_db, tmp_path):
    """An integrity error is usually one message's (its values), but when a known-good canary
    row hits it too, the table itself refuses: a trigger or CHECK added by mistake. Nothing
    may become a dead letter then."""
    url = _url(any_db, tmp_path)
    ing = ingest.Ingestor(any_db, ROOT)
    if any_db.dialect == "sqlite":
        inject = "CREATE TRIGGER refuse_all BEFORE INSERT ON raw_events BEGIN SELECT RAISE(ABORT, 'no more rows'); END"
        restore = "DROP TRIGGER refuse_all"
    else:
        inject = "ALTER TABLE raw_events ADD CONSTRAINT refuse_all CHECK (seq < 0) NOT VALID"
        restore = "ALTER TABLE raw_events DROP CONSTRAINT refuse_all"
    other = dbmod.connect(url)
    try:
        _fault_then_recovery(ing, url, lambda: other.execute(inject), lambda: other.execute(restore))
    finally:
        other.close()
    assert ing.stats["canary_failures"] >= 2


# ---- connection killed / locked out --------------------------------------------------------------


def test_killed_connection_and_refused_reconnects_are_a_database_fault(pg_store_url):
    """The gateway's backend is terminated while the database refuses new connections."""
    db = schema.open_database(pg_store_url)
    name = pg_store_url.rsplit("/", 1)[1]
    ing = ingest.Ingestor(db, ROOT)
    with pg_admin(pg_store_url.rsplit("/", 1)[0] + "/postgres") as admin:

        def kill():
            admin.execute("ALTER DATABASE %s ALLOW_CONNECTIONS false" % name)
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

        def observe():
            admin.execute("ALTER DATABASE %s ALLOW_CONNECTIONS true" % name)
            try:
                return _observe(pg_store_url)
            finally:
                admin.execute("ALTER DATABASE %s ALLOW_CONNECTIONS false" % name)

        try:
            _fault_then_recovery(
                ing,
                pg_store_url,
                kill,
                lambda: admin.execute("ALTER DATABASE %s ALLOW_CONNECTIONS true" % name),
                observe,
            )
        finally:
            admin.execute("ALTER DATABASE %s ALLOW_CONNECTIONS true" % name)
            db.close()


def test_sqlite_locked_by_another_writer_is_a_database_fault(tmp_path):
    """SQLite's counterpart of a server that does not answer: another process holds the write
    lock longer than the busy timeout."""
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    db = schema.open_database(url)
    db.conn.execute("PRAGMA busy_timeout = 200")
    locker = sqlite3.connect(str(tmp_path / "rating.db"), isolation_level=None)
    ing = ingest.Ingestor(db, ROOT)
    try:
        _fault_then_recovery(
            ing,
            url,
            lambda: locker.execute("BEGIN EXCLUSIVE"),
            lambda: locker.execute("ROLLBACK"),
            observe=lambda: ([], 0, None),  # nobody can read past an exclusive lock either
        )
    finally:
        locker.close()
        db.close()


# ---- disk full ---------------------------------------------------------------------------------


def test_sqlite_disk_full_stores_and_acks_nothing_until_there_is_room(tmp_path):
    disk = tmp_path / "disk"
    with small_disk(disk, 4096) as grow:
        url = "sqlite:///%s" % (disk / "rating.db")
        db = schema.open_database(url)
        ing = ingest.Ingestor(db, ROOT)
        try:
            _fault_then_recovery(ing, url, lambda: fill_sqlite(disk / "rating.db"), lambda: grow(65536))
        finally:
            db.close()


def test_postgres_disk_full_stores_and_acks_nothing_until_there_is_room(pg_store_url):
    """raw_events on a tablespace on a small disk that fills up; dead_letters (on the big disk)
    would still take rows - which is how a full disk used to turn every event into an acked
    dead letter."""
    disk = pg_reachable_dir()
    db = schema.open_database(pg_store_url)
    ing = ingest.Ingestor(db, ROOT)
    with small_disk(disk, 2048) as grow, pg_admin(pg_store_url) as admin:
        try:
            space = pg_small_tablespace(admin, str(disk), ["raw_events"])
        except Exception as exc:  # a server on another machine cannot see our folder
            pytest.skip("cannot put a tablespace on the small disk: %s" % exc)
        try:
            _fault_then_recovery(ing, pg_store_url, lambda: pg_fill(admin), lambda: grow(65536))
        finally:
            db.close()
            admin.execute("DELETE FROM raw_events WHERE site = 'fill'")
            pg_drop_tablespace(admin, space, ["raw_events"])
    os.rmdir(disk)
