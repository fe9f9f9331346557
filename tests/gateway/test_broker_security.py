"""The brokers enforce the accounts (issue 13): a real Mosquitto started with the files
`rating broker config` writes, and the embedded amqtt broker (`python -m gateway.broker`) reading
the same files. A wrong password or no account is refused; panel A cannot publish on panel B's
topics; nobody but the gateway writes an ack or a config (not by publishing, not as a retained
message, not as a last will); no client takes over the gateway's session; a password rotation
switches at the reload; the gateway connects over TLS with the certificate and host name
checked; and no secret shows in logs, process listings, `rating status` or files left in /tmp."""

import json
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
import pytest
from gw_ingest_support import RATING, REPO
from tls_support import make_pki

from gateway import accounts as acc
from gateway import schema
from protocol import messages
from simulator import services

pytestmark = pytest.mark.e2e

ROOT = "rating/v1"
A = "rating/v1/s1/a/"
B = "rating/v1/s1/b/"
MOSQUITTO = services.mosquitto_binary()
KINDS = ["mosquitto", "embedded"] if MOSQUITTO else ["embedded"]
QUIET_S = 0.7  # how long "nothing more arrives" is watched after a positive control arrived


def _mosquitto_group():
    """Mosquitto started as root reads its files as the user `mosquitto`: give them its group."""
    if os.geteuid() != 0:
        return None
    import grp

    try:
        grp.getgrnam("mosquitto")
    except KeyError:
        return None
    return "mosquitto"


def _shared_dir(prefix):
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
        self.dir = _shared_dir("rating-sec-")
        self.run_dir = os.path.join(self.dir, "run")  # Mosquitto's pid file, written as its own user
        os.mkdir(self.run_dir)
        if _mosquitto_group():
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
        if _mosquitto_group():
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
        brokerconf.write_files(self.conf, files, group=_mosquitto_group())

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


@pytest.fixture(params=KINDS)
def secured(request, tmp_path):
    b = SecuredBroker(request.param, tmp_path).start()
    peers = []
    b.peers = peers
    yield b
    for p in peers:
        try:
            p.close()
        except Exception:
            pass
    b.close()


def connected(b, user=None, password=None, **kw):
    p = b.peer(user, password, **kw)
    b.peers.append(p)
    rc = p.connect()
    assert rc == "Success", "%s: %s" % (user, rc)
    return p


# ---- logins -------------------------------------------------------------------------------------------


def test_a_wrong_password_or_no_account_is_refused(secured):
    for user, password in (
        ("panel.s1.a", secured.secret["panel.s1.b"]),  # another panel's password
        ("panel.s1.a", "wrong"),
        ("panel.s1.zz", secured.secret["panel.s1.a"]),  # no such account
        (None, None),  # anonymous
        ("gateway", ""),
    ):
        p = secured.peer(user, password)
        secured.peers.append(p)
        assert p.connect() == "Not authorized", (user, secured.kind)
    connected(secured, "panel.s1.a")


# ---- topic rights ----------------------------------------------------------------------------------------


def test_panel_a_cannot_publish_on_panel_b_topics(secured):
    gw = connected(secured, "gateway", client_id="rating-gateway")
    assert gw.subscribe(ROOT + "/+/+/event", ROOT + "/+/+/state") == ["Granted QoS 1", "Granted QoS 1"]
    a = connected(secured, "panel.s1.a")
    forged = messages.encode_event(7, 1, 1000, None, "yes")
    a.publish(B + "event", forged)
    a.publish(B + "state", b'{"online":false}', retain=True)
    a.publish(A + "event", messages.encode_event(1, 1, 1000, None, "no"))  # its own: arrives
    seen = gw.wait_for(A + "event")
    assert [t for t, _p, _r in seen] == [A + "event"] and gw.quiet() == []
    # and nothing of it was kept as B's retained state
    later = connected(secured, "operator.ops")
    later.subscribe(B + "state")
    assert later.quiet() == []


def test_only_the_gateway_writes_acks_and_configs(secured):
    a = connected(secured, "panel.s1.a")
    assert a.subscribe(A + "ack", A + "config") == ["Granted QoS 1", "Granted QoS 1"]
    high_ack = messages.encode_ack(999999)  # would make the panel drop every unacked event
    for outsider in ("panel.s1.b", "counts.pos", "operator.ops"):
        o = connected(secured, outsider)
        o.publish(A + "ack", high_ack, retain=True)
        o.publish(A + "config", b'{"ver":99,"question":"forged"}', retain=True)
    gw = connected(secured, "gateway")
    gw.publish(A + "ack", messages.encode_ack(5), retain=True)
    seen = a.wait_for(A + "ack")
    assert seen == [(A + "ack", messages.encode_ack(5), False)] and a.quiet() == []
    # what a panel that (re)connects now finds retained: only the gateway's ack
    a.close()
    again = connected(secured, "panel.s1.a")
    again.subscribe(A + "ack", A + "config")
    assert again.wait_for(A + "ack") == [(A + "ack", messages.encode_ack(5), True)] and again.quiet() == []


def test_a_client_gets_no_retained_message_it_may_not_read(secured):
    b = connected(secured, "panel.s1.b")
    b.subscribe(B + "ack", B + "config")
    gw = connected(secured, "gateway")
    gw.publish(B + "ack", messages.encode_ack(3), retain=True)
    gw.publish(B + "config", b'{"ver":2,"secret":"for b only"}', retain=True)
    assert [t for t, _p, _r in b.wait_for(B + "config")] == [B + "ack", B + "config"]
    # another panel, subscribing to its own topics (or trying B's), sees none of B's
    a = connected(secured, "panel.s1.a")
    a.subscribe(A + "ack", A + "config")
    a.subscribe(B + "ack", B + "config")
    assert a.quiet() == []
    # an operator reading everything gets B's ack, never its config
    ops = connected(secured, "operator.ops")
    ops.subscribe(ROOT + "/#")
    assert ops.wait_for(B + "ack")[-1][2] is True and ops.quiet() == []


def test_a_forged_ack_as_last_will_is_dropped_and_a_panels_own_will_is_not(secured):
    gw = connected(secured, "gateway")
    gw.subscribe(ROOT + "/+/+/state")
    a = connected(secured, "panel.s1.a")
    a.subscribe(A + "ack")
    b = connected(secured, "panel.s1.b", will=(A + "ack", messages.encode_ack(999999)))
    b.cut()
    assert a.quiet() == []  # not sent live...
    later = connected(secured, "operator.ops")
    later.subscribe(A + "ack")
    assert later.quiet() == []  # ...nor kept as the retained ack
    # positive control: a will on the panel's own state goes out
    b2 = connected(secured, "panel.s1.b", will=(B + "state", messages.OFFLINE_WILL))
    b2.cut()
    assert gw.wait_for(B + "state")[-1][1] == messages.OFFLINE_WILL


def test_counts_accounts_write_only_their_sites_and_operators_only_read(secured):
    gw = connected(secured, "gateway")
    gw.subscribe(ROOT + "/+/counts", ROOT + "/+/+/event")
    ops = connected(secured, "operator.ops")
    assert ops.subscribe(ROOT + "/#") == ["Granted QoS 1"]
    pos = connected(secured, "counts.pos")
    pos.publish(ROOT + "/s2/counts", b"{}")  # not its site
    ops.publish(A + "event", messages.encode_event(3, 1, 1000, None, "yes"))  # operators read only
    pos.publish(ROOT + "/s1/counts", b'{"v":1}')
    assert [t for t, _p, _r in gw.wait_for(ROOT + "/s1/counts")] == [ROOT + "/s1/counts"]
    assert gw.quiet() == []
    # the operator sees the counts and the acks, never a config (it may carry a password)
    gw.publish(A + "config", b'{"ver":1}', retain=True)
    gw.publish(A + "ack", messages.encode_ack(1), retain=True)
    seen = ops.wait_for(A + "ack")
    assert [t for t, _p, _r in seen] == [ROOT + "/s1/counts", A + "ack"] and ops.quiet() == []


def test_no_client_takes_over_the_gateways_session(secured):
    gw = connected(secured, "gateway", client_id="rating-gateway", clean=False)
    gw.subscribe(ROOT + "/+/+/event")
    for cid in ("rating-gateway", "gateway"):
        # no password, a wrong one, another account's: none may touch the gateway's session
        for user, password in ((None, None), ("gateway", "wrong"), ("panel.s1.b", None)):
            p = secured.peer(user, password, client_id=cid, clean=True)
            secured.peers.append(p)
            p.connect()
            p.close()
    time.sleep(0.3)
    assert not gw.dropped.is_set(), "the gateway lost its connection"
    a = connected(secured, "panel.s1.a")
    a.publish(A + "event", messages.encode_event(1, 1, 1000, None, "yes"))
    assert gw.wait_for(A + "event")


def test_a_rotated_password_takes_over_at_the_reload_and_a_revoked_login_is_dropped(secured):
    db = schema.open_database(secured.db_url)
    try:
        old = secured.secret["panel.s1.a"]
        holder = connected(secured, "panel.s1.a", old)
        acc.rotate(db, "s1", "a", 2)
        new, ver = acc.begin_delivery(db, "s1", "a", 3)
        secured.write_files(reload=True)
        # delivered, not confirmed: the broker still knows only the old password
        assert secured.peer("panel.s1.a", new).connect() == "Not authorized"
        assert not holder.dropped.is_set()
        assert acc.confirm(db, "s1", "a", ver, 4)
        secured.write_files(reload=True)
        assert holder.dropped.wait(5), "the connection with the old password stayed up"
        assert secured.peer("panel.s1.a", old).connect() == "Not authorized"
        fresh = connected(secured, "panel.s1.a", new)
        acc.revoke(db, "panel.s1.a", 5)
        secured.write_files(reload=True)
        assert fresh.dropped.wait(5) and secured.peer("panel.s1.a", new).connect() == "Not authorized"
    finally:
        db.close()


# ---- the embedded broker inside `rating gateway run` ----------------------------------------------------


def test_the_gateways_own_embedded_broker_takes_accounts_from_its_database(tmp_path):
    from gateway.broker import EmbeddedBroker

    url = "sqlite:///%s" % (tmp_path / "g.db")
    db = schema.open_database(url)
    port = services.free_port()
    broker = EmbeddedBroker.for_gateway(port, url, ROOT)
    broker.reload_s = 0.2
    broker.start()
    try:
        user, password = broker.gateway_login  # made up at start, held in memory only
        gw = Peer(port, user, password)
        assert gw.connect() == "Success" and Peer(port).connect() == "Not authorized"
        secret, _ver = acc.issue_for_usb(db, "s1", "a", 1)  # a new panel, while the broker runs
        deadline = time.monotonic() + 5
        while Peer(port, "panel.s1.a", secret).connect() != "Success":
            assert time.monotonic() < deadline, "the broker never picked up the new account"
            time.sleep(0.2)
        gw.close()
    finally:
        broker.stop()
        db.close()


# ---- TLS between the gateway and Mosquitto ---------------------------------------------------------------


@pytest.fixture
def tls_broker(tmp_path):
    if not MOSQUITTO:
        pytest.skip("mosquitto is not installed")
    pki_dir = _shared_dir("rating-pki-")
    pki = make_pki(pki_dir)
    b = SecuredBroker("mosquitto", tmp_path, tls=pki)
    b.pki = pki
    b.start()
    yield b
    b.close()
    shutil.rmtree(pki_dir, ignore_errors=True)


def gateway_settings(tmp_path, b, host="localhost", cafile=None, client_cert=False, name="gw.toml"):
    secret = tmp_path / ("gateway-%s.secret" % name)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(b.secret["gateway"] + "\n")
    lines = {
        "broker": "mqtts://gateway@%s:%d" % (host, b.tls_port),
        "broker_password_file": str(secret),
        "broker_cafile": cafile or b.pki["ca"],
        "db": "sqlite:///%s" % (tmp_path / "gw.db"),
        "root": ROOT,
    }
    if client_cert:
        lines["broker_certfile"] = b.pki["client_cert"]
        lines["broker_keyfile"] = b.pki["client_key"]
    path = tmp_path / name
    path.write_text("".join("%s = %s\n" % (k, json.dumps(v)) for k, v in lines.items()))
    return str(path)


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


def test_the_gateway_works_over_tls_and_stops_on_a_wrong_ca_or_host_name(tmp_path, tls_broker):
    b = tls_broker
    proc, lines, up = start_gateway(gateway_settings(tmp_path, b))
    try:
        assert up.wait(20), "".join(lines)
        # a panel over TLS too; its event is stored and acked through the TLS listener
        a = Peer(b.tls_port, "panel.s1.a", b.secret["panel.s1.a"], ca=b.pki["ca"], host="localhost")
        assert a.connect() == "Success"
        a.subscribe(A + "ack")
        a.publish(A + "event", messages.encode_event(1, 1, 1000, 1717000000000, "yes"))
        assert a.wait_for(A + "ack")[-1][1] == messages.encode_ack(1)
        a.close()
        assert Peer(b.tls_port, ca=b.pki["ca"], host="localhost").connect() == "Not authorized"
    finally:
        proc.terminate()
        proc.wait(20)
    for cafile, host, why in (
        (b.pki["other_ca"], "localhost", "not trusted"),
        (None, "127.0.0.1", "not valid for the host name '127.0.0.1'"),
    ):
        config = gateway_settings(tmp_path, b, host=host, cafile=cafile, name="bad.toml")
        r = rating("gateway", "run", "--config", config, timeout=30)
        err = r.stderr.strip()
        assert r.returncode == 2 and why in err and err.startswith("error: "), r.stdout + r.stderr
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert b.secret["gateway"] not in r.stdout + r.stderr


def test_a_client_certificate_can_be_required(tmp_path):
    if not MOSQUITTO:
        pytest.skip("mosquitto is not installed")
    pki_dir = _shared_dir("rating-pki-")
    pki = make_pki(pki_dir)
    pki["require_client_cert"] = True
    b = SecuredBroker("mosquitto", tmp_path, tls=pki)
    b.pki = pki
    b.start()
    try:
        proc, lines, up = start_gateway(gateway_settings(tmp_path, b, client_cert=True))
        try:
            assert up.wait(20), "".join(lines)
        finally:
            proc.terminate()
            proc.wait(20)
        # without a certificate: refused (in the handshake, or with TLS 1.3 right after it)
        p = Peer(b.tls_port, "panel.s1.a", b.secret["panel.s1.a"], ca=pki["ca"], host="localhost")
        try:
            rc = p.connect()
        except OSError as exc:
            rc = str(exc)
        finally:
            p.close()
        assert rc != "Success"
    finally:
        b.close()
        shutil.rmtree(pki_dir, ignore_errors=True)


# ---- secrets stay secret --------------------------------------------------------------------------------


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode(errors="replace")


def _tmp_files_since(t0):
    out = []
    for base, dirs, files in os.walk(tempfile.gettempdir()):
        dirs[:] = [d for d in dirs if not d.startswith("pytest-of-")]  # the tests' own tmp_path
        for name in files:
            path = os.path.join(base, name)
            try:
                st = os.lstat(path)
                if st.st_mtime >= t0 and os.path.isfile(path) and st.st_size < 10_000_000:
                    out.append(path)
            except OSError:
                pass
    return out


def test_secrets_never_show_in_logs_process_listings_status_or_tmp(tmp_path):
    t0 = time.time() - 1
    b = SecuredBroker("mosquitto" if MOSQUITTO else "embedded", tmp_path).start()
    try:
        config = tmp_path / "gw.toml"
        secret_file = tmp_path / "gw.secret"
        secret_file.write_text(b.secret["gateway"] + "\n")
        config.write_text(
            "broker = %s\nbroker_password_file = %s\ndb = %s\n"
            % (json.dumps("mqtt://gateway@127.0.0.1:%d" % b.port), json.dumps(str(secret_file)), json.dumps(b.db_url))
        )
        proc, lines, up = start_gateway(str(config))
        try:
            assert up.wait(20), "".join(lines)
            a = Peer(b.port, "panel.s1.a", b.secret["panel.s1.a"])
            assert a.connect() == "Success"
            a.subscribe(A + "ack")
            a.publish(A + "event", messages.encode_event(1, 1, 1000, 1717000000000, "yes"))
            a.wait_for(A + "ack")
            a.close()
            # a wrong login is logged by the brokers: without the password tried
            assert Peer(b.port, "panel.s1.b", "tried-" + b.secret["panel.s1.a"]).connect() == "Not authorized"
            cmdlines = _cmdline(proc.pid) + _cmdline(b.proc.pid)
            db = schema.open_database(b.db_url)
            acc.rotate(db, "s1", "b", 2)
            pending, _ver = acc.begin_delivery(db, "s1", "b", 3)
            db.close()
            views = [
                rating("status", "--db", b.db_url).stdout,
                rating("status", "--db", b.db_url, "--format", "json").stdout,
                rating("broker", "account", "list", "--db", b.db_url, "--format", "json").stdout,
            ]
        finally:
            proc.terminate()
            proc.wait(20)
        time.sleep(0.2)
        logs = "".join(lines) + b.log()
        assert "s1/a" in views[0]  # the views did show the panel
        secrets = list(b.secret.values()) + [pending]
        for secret in secrets:
            assert secret not in logs and secret not in cmdlines and not any(secret in v for v in views)
        leftovers = [
            p
            for p in _tmp_files_since(t0)
            if not p.startswith(b.dir)  # the broker's own files: 0600/0640, removed below
        ]
        for path in leftovers:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for secret in secrets:
                assert secret.encode() not in data, "a secret in %s" % path
    finally:
        b.close()
    assert not os.path.exists(b.dir)


def test_the_simulators_broker_keeps_its_logins_private_and_removes_them(tmp_path):
    logins = acc.demo_logins(ROOT, [("s1", "a")])
    broker = services.Broker("embedded", logins=logins).start()
    try:
        secret_file = broker.secret_file("gateway")
        assert oct(os.stat(secret_file).st_mode & 0o777) == "0o600"
        assert all(s not in _cmdline(broker.proc.pid) for s in logins.passwords.values())
        user, password = logins.panel("s1", "a")
        assert Peer(broker.port, user, password).connect() == "Success"
        assert Peer(broker.port).connect() == "Not authorized"
    finally:
        broker.close()
    assert not os.path.exists(broker.dir)
