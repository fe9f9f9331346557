"""A store's Mosquitto bridged to the central one (`rating broker bridge`): two real Mosquitto
processes on free loopback ports - the store's, with the files the command writes, and the
centre's, with the files `rating broker config` writes -, the real gateway at the centre, panels
publishing at the store, the bridge over TLS. The link between them is cut (a proxy drops every connection and refuses
new ones) while the panels keep pressing, then restored: every press is stored once, with its
content. The panels' ack timeout is longer than the test, so what arrives came through the store
broker's queue, not a panel's resend."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from gw_fault_support import Panels, figures, press_and_wait
from gw_ingest_support import RATING, REPO, Gateway
from tcp_support import CuttableProxy
from tls_support import make_pki, mosquitto_group

from gateway import accounts as acc
from gateway import brokerconf, schema
from simulator import services

pytestmark = pytest.mark.e2e

MOSQUITTO = services.mosquitto_binary()


def _shared_dir(prefix, mode=0o755):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, mode)
    return d


def rating(*args):
    return subprocess.run([RATING, *args], cwd=REPO, capture_output=True, text=True, timeout=60)


class Mosquitto:
    def __init__(self, conf, port):
        self.conf, self.host, self.port = conf, "127.0.0.1", port
        self.log = conf + ".log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
        assert services.wait_port(port, 15), "mosquitto did not start:\n" + open(self.log).read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _gateway_config(tmp_path, port, secret, db_url, root):
    path = tmp_path / "gateway.secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    conf = tmp_path / "gw.toml"
    values = {"broker_password_file": str(path), "root": root}
    conf.write_text("".join("%s = %s\n" % (k, json.dumps(v)) for k, v in values.items()))
    return str(conf)


@pytest.fixture
def chain(tmp_path, mqtt_root):
    """The centre (Mosquitto + gateway + database with the accounts) and a store broker bridged to
    it through a proxy that can be cut; the panels' stand-in logs in at the store."""
    if not MOSQUITTO:
        pytest.skip("needs a mosquitto binary (make services installs it)")
    group = mosquitto_group()
    top = _shared_dir("rating-bridge-")
    db_url = "sqlite:///%s" % (tmp_path / "centre.db")
    db = schema.open_database(db_url)
    try:
        gateway_secret = acc.add(db, "gateway", 1)
    finally:
        db.close()
    procs, proxy, pki = [], None, {"ca": "/nonexistent/ca.crt"}
    try:
        store_dir, centre_dir = os.path.join(top, "store"), os.path.join(top, "centre")
        queue_dir = os.path.join(top, "queue")
        os.mkdir(queue_dir)
        os.chmod(queue_dir, 0o777)  # Mosquitto's own user writes its queue there
        pki = make_pki(_shared_dir("rating-bridge-pki-"))
        centre_port, centre_tls, store_port = services.free_port(), services.free_port(), services.free_port()
        proxy = CuttableProxy(centre_tls)  # the WAN: the bridge's TLS connection goes through it
        # the store's files first: they make the bridge's account the centre's files then admit
        r = rating(
            *("broker", "bridge", "--out", store_dir, "--name", "shop-1", "--site", "s1", "--db", db_url),
            *("--root", mqtt_root, "--centre", "localhost:%d" % proxy.port, "--cafile", pki["ca"]),
            *("--listen", "127.0.0.1:%d" % store_port, "--persistence", queue_dir),
            *(["--group", group] if group else []),
        )
        assert r.returncode == 0, r.stderr
        assert "bridge.shop-1" in r.stdout
        # the panels' stand-in: one login that may publish for all its panels (the test's own lines)
        with open(os.path.join(store_dir, "passwd"), "a") as f:
            f.write("testpanels:%s\n" % acc.hash_password("pw"))
        with open(os.path.join(store_dir, "acl"), "a") as f:
            f.write("\nuser testpanels\ntopic write %s/s1/+/event\ntopic write %s/s1/+/state\n" % ((mqtt_root,) * 2))
            f.write("topic read %s/s1/+/ack\n" % mqtt_root)
        r = rating(
            *("broker", "config", "--out", centre_dir, "--db", db_url, "--root", mqtt_root),
            *("--listen", "127.0.0.1:%d" % centre_port, "--persistence", "none"),
            *("--tls-listen", "127.0.0.1:%d" % centre_tls, "--cafile", pki["ca"]),
            *("--certfile", pki["cert"], "--keyfile", pki["key"]),
            *(["--group", group] if group else []),
        )
        assert r.returncode == 0, r.stderr
        centre = Mosquitto(os.path.join(centre_dir, "mosquitto.conf"), centre_port)
        procs.append(centre)
        gw = Gateway(
            "mqtt://gateway@127.0.0.1:%d" % centre_port,
            db_url,
            mqtt_root,
            "gateway",
            extra=["--config", _gateway_config(tmp_path, centre_port, gateway_secret, db_url, mqtt_root)],
        ).start()
        procs.append(gw)
        store = Mosquitto(os.path.join(store_dir, "mosquitto.conf"), store_port)
        procs.append(store)
        yield {"store": store, "centre": centre, "proxy": proxy, "db_url": db_url, "root": mqtt_root}
    finally:
        for p in reversed(procs):
            (p.kill if isinstance(p, Gateway) else p.stop)()
        if proxy is not None:
            proxy.close()
        shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(os.path.dirname(pki["ca"]), ignore_errors=True)


SHORT = {"panels": 10, "seconds": 6.0, "rate": 5.0, "outage_s": 3.0}
LONG = {"panels": 40, "seconds": 90.0, "rate": 5.0, "outage_s": 60.0}


@pytest.mark.parametrize(
    "run", [pytest.param(SHORT, id="short"), pytest.param(LONG, id="long", marks=pytest.mark.slow)]
)
def test_a_store_cut_off_from_the_centre_loses_and_doubles_nothing(chain, run):
    # no resend within the test: only the store broker's queue can bring what was pressed
    panels = Panels(chain["store"], chain["root"], run["panels"], ack_timeout_s=600.0, login=("testpanels", "pw"))

    def outage():
        chain["proxy"].cut()
        time.sleep(run["outage_s"])
        chain["proxy"].restore()

    try:
        press_and_wait(panels, run["seconds"], run["rate"], fault=outage, fault_at=0.2, settle_s=90.0)
        result = figures("store cut off from the centre for %.0f s" % run["outage_s"], panels, chain["db_url"])
    finally:
        panels.close()
    assert result["lost"] == 0 and result["stored"] == result["pressed"], result
    assert result["duplicates"] == 0 and result["wrong"] == 0, result
    assert result["dead_letters"] == 0 and result["refused_acks"] == 0 and result["resent"] == 0, result


def test_the_store_broker_config_carries_the_sites_both_ways_over_tls(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-")
    text = brokerconf.render_bridge_config(
        "/etc/mosquitto/store",
        "shop-1",
        ("mqtt.example.com", 8883),
        "SECRET",
        "rating/v1",
        sites=["s1", "s2"],
        cafile=str(ca),
    )
    lines = text.splitlines()
    for line in (
        "address mqtt.example.com:8883",
        "remote_username bridge.shop-1",
        "remote_password SECRET",
        "cleansession false",
        "local_cleansession false",
        "upgrade_outgoing_qos true",
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
        "persistence true",
        "bridge_cafile %s" % ca,
        "bridge_insecure false",
        "allow_anonymous false",
        "topic rating/v1/s1/+/event out 1",
        "topic rating/v1/s2/counts out 1",
        "topic rating/v1/s2/+/config in 1",
    ):
        assert line in lines, line
    # the bridge account may carry exactly its sites' traffic, nothing of another store
    rules = acc.acl_rules(acc.Account("bridge.shop-1", "x", ("s1",)), "rating/v1")
    assert ("write", "rating/v1/s1/+/event") in rules and ("read", "rating/v1/s1/+/ack") in rules
    assert all("/s1/" in p or p.endswith("/s1/counts") for _a, p in rules)
    assert not any(a == "write" and p.endswith(("ack", "config")) for a, p in rules)


def test_a_bridge_needs_its_sites_and_a_centre_with_a_port(tmp_path):
    db_url = "sqlite:///%s" % (tmp_path / "c.db")
    schema.open_database(db_url).close()
    base = ["broker", "bridge", "--out", str(tmp_path / "out"), "--name", "shop-1", "--db", db_url]
    r = rating(*base, "--centre", "centre:8883")
    assert r.returncode == 2 and "--site" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = rating(*base, "--site", "s1", "--centre", "centre")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
    db = schema.open_database(db_url)
    try:
        assert acc.accounts(db) == []  # nothing half-applied
    finally:
        db.close()


def test_the_store_broker_admits_only_its_sites_accounts_and_the_password_stays_in_its_file(tmp_path):
    db_url = "sqlite:///%s" % (tmp_path / "c.db")
    db = schema.open_database(db_url)
    try:
        acc.add(db, "gateway", 1)
        acc.add(db, "counts.pos", 1, sites=["s1"])
        acc.add(db, "counts.other", 1, sites=["s3"])
        acc.add(db, "operator.ops", 1, all_sites=True)
        for site, device in (("s1", "a"), ("s2", "b")):
            acc.issue_for_usb(db, site, device, 1)
    finally:
        db.close()
    out = tmp_path / "store"
    args = ["broker", "bridge", "--out", str(out), "--name", "shop-1", "--site", "s1", "--db", db_url]
    r = rating(*args, "--centre", "centre.example:8883")
    assert r.returncode == 0, r.stderr
    passwd = (out / "passwd").read_text()
    assert sorted(line.split(":")[0] for line in passwd.splitlines()) == ["counts.pos", "panel.s1.a"]
    conf = (out / "mosquitto.conf").read_text()
    secret = next(line.split(" ", 1)[1] for line in conf.splitlines() if line.startswith("remote_password "))
    for name in ("mosquitto.conf", "passwd", "acl"):
        assert (out / name).stat().st_mode & 0o777 == 0o600
    assert secret not in r.stdout + r.stderr
    db = schema.open_database(db_url)
    try:
        bridge = next(a for a in acc.accounts(db) if a.username == "bridge.shop-1")
        assert acc.verify_password(secret, bridge.pw_hash) and bridge.sites == ("s1",)
        # run again: a new password; the old one no longer logs in at the centre
        assert rating(*args, "--centre", "centre.example:8883").returncode == 0
        renewed = next(a for a in acc.accounts(db) if a.username == "bridge.shop-1")
        assert not acc.verify_password(secret, renewed.pw_hash)
    finally:
        db.close()
