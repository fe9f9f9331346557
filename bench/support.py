"""What the benchmarks share: a private broker, `rating gateway run` as a subprocess, a fresh
PostgreSQL database. Process plumbing only; each benchmark says what it measures."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO, os.path.join(REPO, "tests", "support")):
    if path not in sys.path:
        sys.path.insert(0, path)

from simulator.services import free_port, mosquitto_binary, wait_port  # noqa: E402

RATING = os.path.join(REPO, ".venv", "bin", "rating")
PG_BASE = os.environ.get("RATING_TEST_PG") or "postgresql://postgres@127.0.0.1:5432/postgres"


def start_broker(tmp, max_packet_size=None):
    """A private Mosquitto with gateway/mosquitto.conf's queue limits on a free loopback port (the
    embedded amqtt broker where no mosquitto is installed); max_packet_size as that file sets
    it, where given. -> (process, host, port, kind)."""
    port = free_port()
    binary = mosquitto_binary()
    if binary:
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n"
                "max_queued_bytes 0\nmax_inflight_messages 100\nlog_dest stdout\nlog_type error\n" % port
            )
            if max_packet_size:
                f.write("max_packet_size %d\n" % max_packet_size)
        proc = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kind = "mosquitto"
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.broker", "--port", str(port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kind = "embedded amqtt"
    if not wait_port(port, 10):
        raise SystemExit("broker did not start")
    return proc, "127.0.0.1", port, kind


class Gateway:
    """`rating gateway run` as a subprocess; started() once it is connected."""

    def __init__(self, host, port, db_url, root, extra=(), settings=""):
        self.tmp = tempfile.mkdtemp(prefix="rating-bench-gw-")
        conf = os.path.join(self.tmp, "gw.toml")
        with open(conf, "w") as f:
            f.write(settings)
        self.args = [
            RATING,
            "gateway",
            "run",
            "--broker",
            "mqtt://%s:%d" % (host, port),
            "--db",
            db_url,
            "--root",
            root,
            "--client-id",
            "bench-gw-%s" % uuid.uuid4().hex[:8],
            "--config",
            conf,
        ] + list(extra)
        self.proc = None
        self.lines = []

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = self.proc.stdout
        assert out is not None
        for line in out:
            self.lines.append(line)
            if "connected to the broker" in line:
                threading.Thread(target=lambda: self.lines.extend(out), daemon=True).start()
                return self
        raise SystemExit("gateway did not connect:\n" + "".join(self.lines))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pg_database():
    """A fresh PostgreSQL database: (url, drop, "") or (None, None, why) where no server answers."""
    try:
        import psycopg
        from psycopg import sql

        admin = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except Exception as exc:
        return None, None, str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    name = "rating_bench_%s" % uuid.uuid4().hex[:10]
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop():
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()

    return "%s/%s" % (PG_BASE.rsplit("/", 1)[0], name), drop, ""


def fault_support():
    """tests/support/gw_fault_support (the simulated panels, the flood, RSS and size figures)."""
    import importlib

    return importlib.import_module("gw_fault_support")
