"""Shared fixtures: real services, started by the tests themselves where needed.

- `broker`: a Mosquitto instance of our own on a free loopback port, with the broker config
  the gateway ships (queue limits raised, see ../shared/MQTT-FACTS.md). Where no mosquitto
  binary exists, the gateway's embedded broker is started instead.
- `pg_url`: a fresh PostgreSQL database per test where a server answers, else the test skips.
- `mqtt_root`: a unique topic root per test so tests never see each other's retained messages.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_binary():
    return shutil.which("mosquitto") or (os.path.exists("/usr/sbin/mosquitto") and "/usr/sbin/mosquitto") or None


class Broker:
    """A broker the test owns: host, port, url, and restart() for outage tests."""

    def __init__(self):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.url = "mqtt://%s:%d" % (self.host, self.port)
        self.dir = tempfile.mkdtemp(prefix="rating-broker-")
        os.chmod(self.dir, 0o777)  # mosquitto drops to its own user when started as root
        self.proc = None
        self.kind = None

    def start(self):
        binary = mosquitto_binary()
        if binary:
            self.kind = "mosquitto"
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write(
                    "listener %d 127.0.0.1\n"
                    "allow_anonymous true\n"
                    "persistence true\n"
                    "persistence_location %s/\n"
                    "autosave_interval 1\n"
                    "max_queued_messages 1000000\n"
                    "max_queued_bytes 0\n"
                    "max_inflight_messages 100\n"
                    "log_dest stdout\n"
                    "log_type error\n" % (self.port, self.dir)
                )
            self.proc = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.kind = "embedded"
            self.proc = subprocess.Popen(
                [os.path.join(os.path.dirname(os.sys.executable), "python"), "-m", "gateway.broker",
                 "--port", str(self.port)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError("broker (%s) did not start on port %d" % (self.kind, self.port))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_seconds=0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()


@pytest.fixture(scope="session")
def broker():
    b = Broker()
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


@pytest.fixture
def own_broker():
    """A broker only this test uses (for restart/outage tests)."""
    b = Broker()
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


@pytest.fixture
def mqtt_root():
    return "t%s/v1" % uuid.uuid4().hex[:10]


# Tried in order: $RATING_TEST_PG, this machine kind's trust-auth superuser, and the role
# .ci/services.sh creates when it installs PostgreSQL on a fresh machine.
PG_CANDIDATES = [u for u in (
    os.environ.get("RATING_TEST_PG"),
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://rating_test:rating_test@127.0.0.1:5432/postgres",
) if u]
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
            errors.append("%s: %s" % (url.split("@")[-1], str(exc).strip().splitlines()[0] if str(exc).strip() else exc))
    _pg_base.append((None, "; ".join(errors)))
    return _pg_base[0]


@pytest.fixture
def pg_url():
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg not installed")
    base, why = _find_pg()
    if base is None:  # no server here: SQLite is still tested everywhere
        pytest.skip("no PostgreSQL reachable (%s)" % why)
    conn = psycopg.connect(base, autocommit=True, connect_timeout=3)
    name = "rating_test_%s" % uuid.uuid4().hex[:12]
    conn.execute("CREATE DATABASE %s" % name)
    yield "%s/%s" % (base.rsplit("/", 1)[0], name)
    conn.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    conn.close()


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run long soak/fault tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long run: `make soak` runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
