"""A broker with accounts for the security tests (tests/gateway/test_broker_security.py,
test_password_rotation.py): Mosquitto started with the files `rating broker config` writes, or
the embedded broker reading the same files; a plain MQTT peer; the gateway as a subprocess."""

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from gw_ingest_support import RATING, REPO
from tls_support import mosquitto_group

from gateway import accounts as acc
from gateway import schema
from simulator import services

ROOT = "rating/v1"
MOSQUITTO = services.mosquitto_binary()
KINDS = ["mosquitto", "embedded"] if MOSQUITTO else ["embedded"]
QUIET_S = 0.7  # how long "nothing more arrives" is watched after a positive control arrived


def shared_dir(prefix):
    """A folder Mosquitto's own user can reach (pytest's tmp_path is 0700 under root's)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def rating(*args, timeout=60):
    return subprocess.run([RATING, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


class Peer:
    """One MQTT client: connect and learn the CONNACK, subscribe, collect what arrives."""

    def __init__(self, port, user=None, password=None, client_id="", clean=True, will=None, ca=None, host="127.0.0.1"):
        self.port, self.host = port, host
        self.got = queue.Queue()
        self.dropped = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        if user is not None:
            self.c.username_pw_set(user, password)
        if will:
            self.c.will_set(will[0], will[1], qos=1, retain=True)
        if ca:
            self.c.tls_set(ca_certs=ca)
        self.c.reconnect_delay_set(30, 60)  # a dropped connection stays dropped while the test looks
        self._rc = queue.Queue()
        self._subs = queue.Queue()
        self.c.on_connect = lambda c, u, f, rc, p: self._rc.put(rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self._subs.put(rcs)
        self.c.on_message = lambda c, u, m: self.got.put((m.topic, bytes(m.payload), m.retain))
        self.c.on_disconnect = lambda c, u, f, rc, p: self.dropped.set()

    def connect(self):
        """The CONNACK's reason code as text ("Success", "Not authorized", ...)."""
        self.c.connect(self.host, self.port, 30)
        self.c.loop_start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                return str(self._rc.get(timeout=0.05))
            except queue.Empty:
                if self.dropped.is_set():
                    break
        return "no CONNACK"

    def subscribe(self, *topics):
        self.c.subscribe([(t, 1) for t in topics])
        return [str(rc) for rc in self._subs.get(timeout=10)]

    def publish(self, topic, payload, retain=False):
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        return info

    def wait_for(self, topic, timeout=10):
        """Everything that arrived up to and including the first message on `topic`."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.got.get(timeout=0.05)
            except queue.Empty:
                continue
            seen.append(item)
            if item[0] == topic:
                return seen
        raise AssertionError("nothing on %s within %ss; got %r" % (topic, timeout, seen))

    def quiet(self, seconds=QUIET_S):
        """What arrives within `seconds` (expected: nothing)."""
        time.sleep(seconds)
        out = []
        while not self.got.empty():
            out.append(self.got.get())
        return out

    def cut(self):
        """Lose the connection without DISCONNECT: the broker then sends the last will."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class SecuredBroker:
    """A broker with accounts in a database: Mosquitto with the configuration, password and ACL
    files `rating broker config` writes, or the embedded broker reading the same files."""

    def __init__(self, kind, tmp_path, tls=None):
        self.kind = kind
        self.dir = shared_dir("rating-sec-")
        self.run_dir = os.path.join(self.dir, "run")  # Mosquitto's pid file, written as its own user
        os.mkdir(self.run_dir)
        if mosquitto_group():
            import pwd

            os.chown(self.run_dir, pwd.getpwnam("mosquitto").pw_uid, -1)
        self.conf = os.path.join(self.dir, "conf")
        self.db_url = "sqlite:///%s" % (tmp_path / "accounts.db")
        self.port = services.free_port()
        self.tls = tls
        self.tls_port = services.free_port() if tls else None
        self.proc = None
        self.log_path = os.path.join(self.dir, "broker.log")
        db = schema.open_database(self.db_url)
        try:
            self.secret = {"gateway": acc.add(db, "gateway", 1)}
            for device in ("a", "b"):
                self.secret["panel.s1." + device] = acc.issue_for_usb(db, "s1", device, 1)[0]
            self.secret["counts.pos"] = acc.add(db, "counts.pos", 1, sites=["s1"])
            self.secret["operator.ops"] = acc.add(db, "operator.ops", 1, all_sites=True)
        finally:
            db.close()
        self.write_files()

    def write_files(self, reload=False):
        if not reload:  # the first time in-process (quicker); reloads through the command itself
            return self._write_files_here()
        args = ["broker", "config", "--out", self.conf, "--db", self.db_url, "--persistence", "none"]
        args += ["--listen", "127.0.0.1:%d" % self.port, "--pid-file", os.path.join(self.run_dir, "m.pid")]
        if self.tls:
            args += ["--tls-listen", "127.0.0.1:%d" % self.tls_port]
            args += ["--cafile", self.tls["ca"], "--certfile", self.tls["cert"], "--keyfile", self.tls["key"]]
            if self.tls.get("require_client_cert"):
                args.append("--require-client-cert")
        if mosquitto_group():
            args += ["--group", "mosquitto"]
        if reload and self.kind == "mosquitto":
            args.append("--reload")
        r = rating(*args)
        assert r.returncode == 0, r.stderr
        if reload and self.kind == "embedded":
            self.proc.send_signal(signal.SIGHUP)
        if reload:
            time.sleep(0.5)  # the broker re-reads its files

    def _write_files_here(self):
        from gateway import brokerconf

        db = schema.open_database(self.db_url)
        try:
            files = brokerconf.account_files(acc.accounts(db), ROOT)
        finally:
            db.close()
        t = self.tls or {}
        files["mosquitto.conf"] = brokerconf.render_config(
            self.conf,
            listen=("127.0.0.1:%d" % self.port,),
            tls_listen=("127.0.0.1:%d" % self.tls_port,) if self.tls else (),
            cafile=t.get("ca"),
            certfile=t.get("cert"),
            keyfile=t.get("key"),
            require_certificate=bool(t.get("require_client_cert")),
            persistence=None,
            pid_file=os.path.join(self.run_dir, "m.pid"),
        )
        brokerconf.write_files(self.conf, files, group=mosquitto_group())

    def start(self):
        if self.kind == "mosquitto":
            cmd = [MOSQUITTO, "-c", os.path.join(self.conf, "mosquitto.conf")]
        else:
            passwd, acl = os.path.join(self.conf, "passwd"), os.path.join(self.conf, "acl")
            cmd = [sys.executable, "-m", "gateway.broker", "--port", str(self.port)]
            cmd += ["--password-file", passwd, "--acl-file", acl]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        for port in (self.port, self.tls_port):
            if port and not services.wait_port(port, 15):
                self.stop()
                raise AssertionError("the %s broker did not start:\n%s" % (self.kind, self.log()))
        return self

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def peer(self, user=None, password=None, **kw):
        if user is not None and password is None:
            password = self.secret[user]
        return Peer(self.port, user, password, **kw)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_gateway(config):
    proc = subprocess.Popen(
        [RATING, "gateway", "run", "--config", config],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    up = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "connected to the broker" in line:
                up.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, lines, up
