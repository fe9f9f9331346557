"""The brokers enforce the accounts (issue 13): a real Mosquitto started with the files
`rating broker config` writes, and the embedded amqtt broker (`python -m gateway.broker`) reading
the same files. A wrong password or no account is refused; panel A cannot publish on panel B's
topics; nobody but the gateway writes an ack or a config (not by publishing, not as a retained
message, not as a last will); no client takes over the gateway's session; a password rotation
switches at the reload; the gateway connects over TLS with the certificate and host name
checked; and no secret shows in logs, process listings, `rating status` or files left in /tmp."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from gw_broker_support import (
    KINDS,
    MOSQUITTO,
    ROOT,
    Peer,
    SecuredBroker,
    rating,
    shared_dir,
    start_gateway,
)
from gw_ingest_support import RATING, REPO
from tls_support import make_pki

from gateway import accounts as acc
from gateway import schema
from protocol import messages
from simulator import services

pytestmark = pytest.mark.e2e

A = "rating/v1/s1/a/"
B = "rating/v1/s1/b/"


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


def test_a_pos_account_writes_the_sales_of_its_sites_only(secured):
    gw = connected(secured, "gateway")
    gw.subscribe(ROOT + "/+/transactions")
    ops = connected(secured, "operator.ops")
    ops.subscribe(ROOT + "/+/transactions")
    pos = connected(secured, "counts.pos")
    sale = messages.encode_transaction({"id": "R-1", "till": "till-1", "t": 1733300000000})
    pos.publish(ROOT + "/s2/transactions", sale)  # not its site
    ops.publish(ROOT + "/s1/transactions", sale)  # operators read only
    pos.publish(ROOT + "/s1/transactions", sale)
    assert gw.wait_for(ROOT + "/s1/transactions") == [(ROOT + "/s1/transactions", sale, False)]
    assert gw.quiet() == []
    assert [t for t, _p, _r in ops.wait_for(ROOT + "/s1/transactions")] == [ROOT + "/s1/transactions"]


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


@pytest.mark.skipif(not MOSQUITTO, reason="mosquitto is not installed")
def test_site_apply_makes_panel_accounts_and_usb_credentials_reload_mosquitto(tmp_path):
    """A panel added by `rating site apply` gets its account (no password: nobody can log in as
    it); `rating panel credentials` makes its password and, since `rating broker config` recorded
    where Mosquitto's files are, rewrites them and reloads Mosquitto: the panel logs in at once."""
    from gw_site_support import SITE_TOML

    b = SecuredBroker("mosquitto", tmp_path).start()
    try:
        b.write_files(reload=True)  # through `rating broker config --reload`: the folder is recorded
        site_file = tmp_path / "site.toml"
        site_file.write_text(SITE_TOML)
        r = rating("site", "apply", str(site_file), "--db", b.db_url)
        assert r.returncode == 0, r.stderr
        assert "3 new panel accounts" in r.stdout, r.stdout
        db = schema.open_database(b.db_url)
        try:
            rows = {a["username"]: a for a in acc.listing(db)}
        finally:
            db.close()
        assert rows["panel.msk.desk-1"]["password"].startswith("none")
        again = rating("site", "apply", str(site_file), "--db", b.db_url)
        assert "new panel account" not in again.stdout
        out = tmp_path / "desk-1.json"
        r = rating("panel", "credentials", "msk/desk-1", "--out", str(out), "--db", b.db_url)
        assert r.returncode == 0, r.stderr
        assert "rewritten and reloaded" in r.stdout, r.stdout
        login = json.loads(out.read_text())["mqtt"]
        assert login["password"] not in r.stdout + r.stderr
        time.sleep(0.5)  # Mosquitto re-reads its files on the signal
        p = b.peer(login["user"], login["password"])
        try:
            assert p.connect() == "Success", b.log()
        finally:
            p.close()
    finally:
        b.close()


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
    pki_dir = shared_dir("rating-pki-")
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
    pki_dir = shared_dir("rating-pki-")
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


def test_rating_record_logs_in_as_an_operator_with_a_password_file(secured, tmp_path):
    """An operator's tool logs in with its own read-only account; its password comes from a file,
    never from the command line."""
    url = "mqtt://operator.ops@127.0.0.1:%d" % secured.port
    secret = tmp_path / "ops.secret"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (secured.secret["operator.ops"] + "\n").encode())
    os.close(fd)
    out = tmp_path / "rec.jsonl"
    shown = "mqtt://operator.ops:%s@127.0.0.1:%d" % (secured.secret["operator.ops"], secured.port)
    bad = rating("record", "--broker", shown, "--out", str(out), "--count", "1")
    assert bad.returncode == 2 and "--password-file" in bad.stderr and secured.secret["operator.ops"] not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not out.exists()
    rec = subprocess.Popen(
        [RATING, "record", "--broker", url, "--password-file", str(secret), "--out", str(out), "--count", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert rec.stdout is not None and "recording" in rec.stdout.readline()
        a = connected(secured, "panel.s1.a")
        a.publish(A + "event", messages.encode_event(1, 1, 1000, None, "yes"))
        assert rec.wait(20) == 0, rec.stderr.read() if rec.stderr else ""
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait(10)
    assert json.loads(out.read_text())["topic"] == A + "event"


@pytest.mark.skipif(not MOSQUITTO, reason="mosquitto is not installed")
def test_the_gateway_brings_mosquittos_files_up_to_date_at_start(tmp_path):
    """A panel's password switched in the database whose reload did not happen (a gateway
    stopped in between, a failed signal): the next gateway start rewrites the files and reloads."""
    b = SecuredBroker("mosquitto", tmp_path).start()
    proc = None
    try:
        b.write_files(reload=True)  # `rating broker config --reload` records the folder and pid file
        db = schema.open_database(b.db_url)
        try:
            acc.rotate(db, "s1", "a", 2)
            new, ver = acc.begin_delivery(db, "s1", "a", 3)
            assert acc.confirm(db, "s1", "a", ver, 4)
        finally:
            db.close()
        assert b.peer("panel.s1.a", new).connect() == "Not authorized"  # not reloaded yet
        secret = tmp_path / "gw.secret"
        secret.write_text(b.secret["gateway"] + "\n")
        os.chmod(secret, 0o600)
        config = tmp_path / "gw.toml"
        settings = {"broker": "mqtt://gateway@127.0.0.1:%d" % b.port, "broker_password_file": str(secret)}
        settings.update(db=b.db_url, root=ROOT)
        config.write_text("".join("%s = %s\n" % (k, json.dumps(v)) for k, v in settings.items()))
        proc, lines, up = start_gateway(str(config))
        assert up.wait(20), "".join(lines)
        assert "brought up to date and reloaded" in "".join(lines)
        time.sleep(0.5)
        p = b.peer("panel.s1.a", new)
        try:
            assert p.connect() == "Success"
        finally:
            p.close()
        assert b.peer("panel.s1.a", b.secret["panel.s1.a"]).connect() == "Not authorized"
    finally:
        if proc:
            proc.terminate()
            proc.wait(20)
        b.close()
