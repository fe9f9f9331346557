"""Real faults for the gateway's tests: a small disk that fills up (tmpfs, root only), a
PostgreSQL role whose privileges can be revoked, a database made read-only, a table gone.

Each helper makes the real thing happen to the real database; nothing is patched."""

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest


@contextlib.contextmanager
def small_disk(path, size_kb):
    """A tmpfs of `size_kb` mounted on `path` (created), for disk-full tests; skips the test
    where this process may not mount (not root, or a container without the capability).
    grow(size_kb) plays the operator who frees space."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a full disk needs a small tmpfs: run as root (CI does)")
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0777" % size_kb, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % out.stderr.strip())

    def grow(kb):
        subprocess.run(["mount", "-o", "remount,size=%dk" % kb, str(path)], check=True)

    try:
        yield grow
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_sqlite(path):
    """Fill the file system holding the SQLite file `path` (a table of its own) until SQLite
    says the disk is full."""
    import sqlite3

    conn = sqlite3.connect(str(path), isolation_level=None, timeout=15)
    conn.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
    try:
        for _ in range(100000):
            conn.execute("INSERT INTO filler VALUES (?)", (os.urandom(16000),))
    except sqlite3.OperationalError as exc:
        assert "full" in str(exc), exc
    else:
        raise AssertionError("the small disk never filled up")
    finally:
        conn.close()


@contextlib.contextmanager
def pg_admin(pg_url):
    """A superuser connection to the test database (autocommit)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@contextlib.contextmanager
def pg_gateway_role(pg_url):
    """A login role with the rights a deployment grants the gateway (every table of the
    migrated test database); yields its URL. Dropped again afterwards (roles are per cluster).
    Skips where the test account may not create roles."""
    import psycopg

    role = "rating_gw_%s" % uuid.uuid4().hex[:10]
    with pg_admin(pg_url) as admin:
        try:
            admin.execute("CREATE ROLE %s LOGIN PASSWORD 'gw'" % role)
        except psycopg.Error as exc:
            pytest.skip("the PostgreSQL test account may not create roles: %s" % exc)
        try:
            admin.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO %s" % role)
            admin.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %s" % role)
            base, db = pg_url.rsplit("/", 1)
            host = base.split("@", 1)[1]
            yield "postgresql://%s:gw@%s/%s" % (role, host, db), role
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            admin.execute("DROP OWNED BY %s" % role)
            admin.execute("DROP ROLE IF EXISTS %s" % role)


def pg_reachable_dir():
    """An empty folder the PostgreSQL server's user can reach (pytest's tmp_path is private)."""
    path = tempfile.mkdtemp(prefix="rating-pgdisk-")
    os.chmod(path, 0o755)
    return path


def pg_small_tablespace(admin, path, tables):
    """Move `tables` (and their indexes) of the test database onto the small disk at `path`."""
    os.chown(path, *_postgres_ids())
    name = "small_%s" % uuid.uuid4().hex[:8]
    admin.execute("CREATE TABLESPACE %s LOCATION '%s'" % (name, path))
    for table in tables:
        admin.execute("ALTER TABLE %s SET TABLESPACE %s" % (table, name))
        for row in admin.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)).fetchall():
            admin.execute("ALTER INDEX %s SET TABLESPACE %s" % (row[0], name))
    return name


def pg_drop_tablespace(admin, name, tables):
    for table in tables:
        admin.execute("ALTER TABLE %s SET TABLESPACE pg_default" % table)
        for row in admin.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)).fetchall():
            admin.execute("ALTER INDEX %s SET TABLESPACE pg_default" % row[0])
    admin.execute("DROP TABLESPACE IF EXISTS %s" % name)


def _postgres_ids():
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user to own the tablespace folder")
    return pw.pw_uid, pw.pw_gid
