"""The real processes of an end-to-end run: an MQTT broker and `rating gateway run`.

- `Broker`: a private Mosquitto on a free loopback port with the queue limits raised
  (../shared/MQTT-FACTS.md pitfall 1) and persistence on, so stop()/start() is a broker outage
  that keeps the gateway's persistent session; where no mosquitto binary exists, the gateway's
  embedded broker (`python -m gateway.broker`) stands in (in-memory: an outage loses its queue,
  which the panels' ack timeouts repair).
- `Gateway`: `rating gateway run --broker URL --db URL` as a subprocess; stop() is SIGTERM
  (graceful), kill() is SIGKILL (the fault "gateway restart").

With `logins` (gateway.accounts.demo_logins) the broker admits only those accounts under their
topic rules (the password and ACL files live in the broker's own temporary folder, removed by
close()); without, it is an anonymous test broker (tests/conftest.py's fixtures).

Everything here is process plumbing; the runner decides when.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.005)
    return False


def mosquitto_binary():
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None


def _python():
    return sys.executable


def _terminate(proc, timeout):
    """SIGTERM (a graceful stop); SIGKILL if it has not exited after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Broker:
    """A broker this run owns. `kind` is "mosquitto" or "embedded". tests/conftest.py's
    `broker` fixtures are this class too, with their own tunables."""

    START_TIMEOUT_S = 15
    DIR_PREFIX = "rating-sim-broker-"
    # Beyond the shipped config's queue limits: many small QoS 1 messages go out at once
    # without Nagle's delay, and no client's keepalive is refused.
    TUNING = ("max_keepalive 65535", "set_tcp_nodelay true")

    def __init__(self, prefer="mosquitto", logins=None):
        self.logins = logins
        self.host = "127.0.0.1"
        self.port = free_port()
        self.url = "mqtt://%s:%d" % (self.host, self.port)
        self.dir = tempfile.mkdtemp(prefix=self.DIR_PREFIX)
        os.chmod(self.dir, 0o777)  # mosquitto drops to its own user when started as root
        self.binary = mosquitto_binary() if prefer == "mosquitto" else None
        self.kind = "mosquitto" if self.binary else "embedded"
        self.proc = None

    def _account_files(self):
        """Write the password and ACL files (readable by Mosquitto's user when we are root);
        return the config lines that use them, and the embedded broker's options."""
        from gateway import brokerconf

        if self.logins is None:
            return "allow_anonymous true\n", ["--allow-anonymous"]
        files = brokerconf.account_files(self.logins.accounts, self.logins.root)
        group = "mosquitto" if os.geteuid() == 0 and _group_exists("mosquitto") else None
        brokerconf.write_files(self.dir, files, group=group)
        passwd, acl = (os.path.join(self.dir, n) for n in (brokerconf.PASSWORD_FILE, brokerconf.ACL_FILE))
        lines = "allow_anonymous false\npassword_file %s\nacl_file %s\n" % (passwd, acl)
        return lines, ["--password-file", passwd, "--acl-file", acl]

    def secret_file(self, username):
        """A file (mode 0600, in the broker's folder) holding `username`'s password."""
        if self.logins is None:
            raise ValueError("this broker has no logins (anonymous test broker)")
        path = os.path.join(self.dir, "%s.secret" % username)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.logins.passwords[username] + "\n")
        return path

    def start(self):
        auth, embedded_auth = self._account_files()
        if self.binary:
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write(
                    "listener %d 127.0.0.1\n"
                    "%s"
                    "persistence true\n"
                    "persistence_location %s/\n"
                    "autosave_interval 1\n"
                    "max_queued_messages 1000000\n"
                    "max_queued_bytes 0\n"
                    "max_inflight_messages 100\n"
                    "%s"
                    "log_dest stdout\n"
                    "log_type error\n" % (self.port, auth, self.dir, "".join(t + "\n" for t in self.TUNING))
                )
            cmd = [self.binary, "-c", conf]
        else:
            cmd = [_python(), "-m", "gateway.broker", "--port", str(self.port)] + embedded_auth
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, self.START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("the %s broker did not start on port %d" % (self.kind, self.port))
        return self

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running:
            _terminate(self.proc, 10)
        self.proc = None

    def outage(self):
        """The broker goes away (the runner's broker-outage fault). Mosquitto stops gracefully:
        it saves its persistence, so the sessions survive. The embedded broker keeps nothing
        over a restart, so it is killed: its graceful stop waits up to 5 s for amqtt's shutdown,
        which hung that long in about half of the loaded `rating demo` runs."""
        proc = self.proc
        if self.kind == "embedded" and proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
            self.proc = None
        self.stop()

    def restart(self, down_seconds=0.0):
        """A broker outage of down_seconds; with persistence the sessions survive it."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _group_exists(name):
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


class Gateway:
    """`rating gateway run` as a child process, its output in `log_path`. With `password_file`
    the broker URL names the user and the gateway reads the password from that file."""

    START_TIMEOUT_S = 20
    BATCH_QUIET_MS = 0  # the gateway settings the runner's speed depends on (see __init__)
    DEPLOYMENT_QUIET_MS = 2  # the gateway's default: `rating sim load` measures ingest with it
    RECONNECT_MIN_S = 0.05
    RECONNECT_MAX_S = 1  # the embedded broker may take seconds to start on a loaded machine
    LOG_POLL_S = 0.005  # how often wait_connected looks at the log

    def __init__(
        self,
        broker_url,
        db_url,
        root,
        workdir,
        client_id="rating-gateway-sim",
        password_file=None,
        batch_quiet_ms=BATCH_QUIET_MS,
    ):
        self.broker_url = broker_url
        self.db_url = db_url
        self.root = root
        self.client_id = client_id
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "gateway.log")
        self.config_path = os.path.join(workdir, "gateway.toml")
        with open(self.config_path, "w") as f:
            # the clock-driven derive tick would advance windows by the wall clock, which is
            # not the simulated one: the runner rebuilds at the end instead. Simulated time runs
            # ~10^4 x real time, so a 100 ms ack coalescing (or Nagle's 40 ms with the embedded
            # broker) would cost the runner a real wait at nearly every event; for the same
            # reason the per-panel rate limit (a rate in real time) is lifted, a batch is
            # committed as soon as the inbox is empty (the runner publishes one panel's message
            # at a time and may be waiting for its ack), and after a broker outage (our own
            # broker, restarted at once) the gateway tries again after 50 ms, not 1 s, and
            # then at least every second, not every 10 s.
            f.write(
                "derive_tick_s = 86400.0\nconfig_push_s = 1.0\nbatch_ms = 20\nack_coalesce_ms = 5\ntcp_nodelay = true\n"
                "panel_rate = 1000000.0\nbatch_quiet_ms = %s\nreconnect_min_s = %s\nreconnect_max_s = %d\n"
                % (batch_quiet_ms, self.RECONNECT_MIN_S, self.RECONNECT_MAX_S)
            )
            if password_file:
                f.write("broker_password_file = %s\n" % json.dumps(password_file))
        self.proc = None
        self._seen = 0
        self.starts = 0
        self.kills = 0

    def start(self):
        cmd = [
            _python(),
            "-m",
            "rating",
            "gateway",
            "run",
            "--broker",
            self.broker_url,
            "--db",
            self.db_url,
            "--root",
            self.root,
            "--client-id",
            self.client_id,
            "--config",
            self.config_path,
        ]
        self._seen = self._connected_lines()
        log = open(self.log_path, "a")
        try:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
            )
        finally:
            log.close()
        self.starts += 1
        return self

    def mark(self):
        """Remember how often it connected so far; wait_connected() then waits for the next."""
        self._seen = self._connected_lines()

    def wait_connected(self, timeout=None):
        """Block until the log says the gateway is connected (it subscribes right then)."""
        if self.proc is None:
            raise RuntimeError("the gateway is not started")
        deadline = time.monotonic() + (timeout or self.START_TIMEOUT_S)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "the gateway exited with code %s; see %s:\n%s" % (self.proc.returncode, self.log_path, self.tail())
                )
            if self._connected_lines() > self._seen:
                return
            time.sleep(self.LOG_POLL_S)
        raise RuntimeError(
            "the gateway did not connect to %s within %.0f s; see %s:\n%s"
            % (self.broker_url, timeout or self.START_TIMEOUT_S, self.log_path, self.tail())
        )

    def _connected_lines(self):
        try:
            with open(self.log_path) as f:
                return f.read().count("connected to the broker")
        except OSError:
            return 0

    def tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9: no graceful commit; the broker keeps the unacknowledged messages."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
        self.proc = None

    def stop(self, timeout=20):
        if self.running:
            _terminate(self.proc, timeout)
        self.proc = None
