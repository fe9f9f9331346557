"""Shared fixtures: real services, started by the tests themselves where needed.

- `broker`: a Mosquitto instance of our own on a free loopback port, with the broker config
  the gateway ships (queue limits raised, see ../shared/MQTT-FACTS.md). Where no mosquitto
  binary exists, the gateway's embedded broker is started instead.
- `pg_url`: a fresh, empty PostgreSQL database per test where a server answers, else the test
  skips; `pg_store_url`: the same with every migration applied (copied from a template).
- `mqtt_root`: a unique topic root per test so tests never see each other's retained messages.
"""

import contextlib
import os
import queue
import sys
import threading
import uuid

import pytest

from simulator import services


class Broker(services.Broker):
    """A broker the test owns: host, port, url, and restart() for outage tests. The
    simulator's launcher with the plain test config: Mosquitto's own keepalive and Nagle."""

    START_TIMEOUT_S = 10
    DIR_PREFIX = "rating-broker-"
    TUNING = ()


@pytest.fixture(autouse=True)
def _language_of_the_process():
    """`rating.cli.main` makes its language the process's (gateway.i18n.activate), as a command
    should; a test calling it in-process must not leave that to the tests after it."""
    from gateway import i18n

    saved = dict(i18n._state)
    yield
    i18n._state.clear()
    i18n._state.update(saved)


@pytest.fixture(scope="session")
def broker():
    b = Broker().start()
    yield b
    b.close()


@pytest.fixture
def own_broker():
    """A broker only this test uses (for restart/outage tests)."""
    b = Broker().start()
    yield b
    b.close()


@pytest.fixture
def mqtt_root():
    return "t%s/v1" % uuid.uuid4().hex[:10]


# Tried in order: $RATING_TEST_PG, this machine kind's trust-auth superuser, and the role
# .ci/services.sh creates when it installs PostgreSQL on a fresh machine.
PG_CANDIDATES = [
    u
    for u in (
        os.environ.get("RATING_TEST_PG"),
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgresql://rating_test:rating_test@127.0.0.1:5432/postgres",
    )
    if u
]
_pg_base = []


def _find_pg():
    if _pg_base:
        return _pg_base[0]
    import psycopg

    errors = []
    for url in PG_CANDIDATES:
        try:
            psycopg.connect(url, connect_timeout=3).close()
            _pg_base.append((url, None))
            return _pg_base[0]
        except Exception as exc:
            errors.append(
                "%s: %s" % (url.split("@")[-1], str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            )
    _pg_base.append((None, "; ".join(errors)))
    return _pg_base[0]


def _pg_server():
    """The superuser URL of the PostgreSQL server the tests use, or skip with the reason."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed")
    base, why = _find_pg()
    if base is None:  # no server here: SQLite is still tested everywhere
        pytest.skip("no PostgreSQL reachable (%s)" % why)
    return base


class _Dropper:
    """Drops the tests' PostgreSQL databases in a thread of its own: DROP DATABASE waits for a
    checkpoint of the whole server (0.1-2 s, more while something else writes a lot), which need
    not hold up the next test. The run waits for the last drop at its end (pytest_sessionfinish)."""

    def __init__(self):
        self.queue = queue.Queue()
        self.thread = None

    def drop(self, base, name):
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="pg-dropper", daemon=True)
            self.thread.start()
        self.queue.put((base, name))

    def _run(self):
        import psycopg

        while (item := self.queue.get()) is not None:
            base, name = item
            try:
                with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
                    conn.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
            except Exception as exc:  # a leftover test database, said once; the run goes on
                print("\nconftest: could not drop the test database %s: %s" % (name, exc), file=sys.stderr)

    def finish(self):
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join(timeout=120)
            if self.thread.is_alive():  # say so: the databases still queued are left on the server
                print("\nconftest: %d test database(s) not dropped after 120 s" % self.queue.qsize(), file=sys.stderr)
            self.thread = None


_dropper = _Dropper()


def pytest_sessionfinish(session):
    _dropper.finish()


@contextlib.contextmanager
def _pg_database(base, template=None):
    """A database of the test's own (empty, or a copy of `template`), dropped afterwards."""
    import psycopg

    name = "rating_test_%s" % uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True, connect_timeout=3) as conn:
        conn.execute("CREATE DATABASE %s" % name + (" TEMPLATE %s" % template if template else ""))
    try:
        yield "%s/%s" % (base.rsplit("/", 1)[0], name)
    finally:
        _dropper.drop(base, name)


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database (no migration applied)."""
    with _pg_database(_pg_server()) as url:
        yield url


@pytest.fixture(scope="session")
def _pg_migrated_template():
    """A PostgreSQL database with every migration applied, made once per run (per xdist worker),
    that `pg_store_url` copies: CREATE DATABASE ... TEMPLATE copies its files in ~0.1 s where
    running the migrations takes ~1-2 s. Nobody connects to it after it is made (a template
    with a connection cannot be copied)."""
    from gateway import schema

    with _pg_database(_pg_server()) as url:
        schema.open_database(url).close()
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def pg_store_url(_pg_migrated_template):
    """A fresh PostgreSQL database with every migration applied: the gateway's store as
    `schema.open_database` leaves it (a copy of a database migrated once per run)."""
    with _pg_database(_pg_server(), template=_pg_migrated_template) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_before_004(request, tmp_path):
    """A database (SQLite, then PostgreSQL) migrated only up to 003, as a gateway older than the
    dead-letter key left it; the test inserts its rows and runs migrate()."""
    import shutil

    from gateway import db as dbmod

    url = "sqlite:///%s" % (tmp_path / "old.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    old = tmp_path / "old_migrations"
    old.mkdir()
    for name in ("001_core.sql", "002_site_derived.sql", "003_state_conn.sql"):
        shutil.copy(os.path.join(dbmod.MIGRATIONS_DIR, name), old / name)
    d = dbmod.connect(url)
    d.migrate(str(old))
    yield d
    d.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request, tmp_path):
    """A gateway database's URL: SQLite always (a file not made yet), PostgreSQL where a server
    answers (migrated; else skipped)."""
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "rating.db")
    return request.getfixturevalue("pg_store_url")


@pytest.fixture
def any_db(any_db_url):
    """A migrated gateway database: SQLite always, PostgreSQL where a server answers (else skipped)."""
    from gateway import schema

    db = schema.open_database(any_db_url)
    yield db
    db.close()


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run long soak/fault tests")


# Fixtures that start or reach a real service: a test using one is end to end (`e2e`) and
# `make test-fast` leaves it out. Tests that run a VM or a subprocess carry @pytest.mark.e2e.
E2E_FIXTURES = {
    "broker",
    "own_broker",
    "mqtt_root",
    "pg_url",
    "pg_store_url",
    "fw_bundle",
    "bundle_lib",
    "db_before_004",
}


def pytest_collection_modifyitems(config, items):
    e2e = pytest.mark.e2e
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())) or params.get("any_db") == "postgresql":
            item.add_marker(e2e)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long run: `make soak` runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fw_bundle(tmp_path_factory):
    """`make firmware` into a temp folder, once per run: the bundle (.mpy files built as for
    the panel) that the VM tests load the way the panel does."""
    from technician.bundle import build

    out = tmp_path_factory.mktemp("bundle") / "firmware"
    build(str(out))
    return str(out)


@pytest.fixture(scope="session")
def bundle_lib(fw_bundle):
    """The bundle's lib/ folder (firmware, protocol as .mpy)."""
    return os.path.join(fw_bundle, "lib")
