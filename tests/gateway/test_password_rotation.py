"""A panel's MQTT password rotated over the air (issue 13; docs/security.md, "Panel
credentials"): a real Mosquitto started with the files `rating broker config` writes, the real
gateway (`rating gateway run`) and the real firmware on the MicroPython VM, pressing all along.
The new password goes out only while the panel is online, the broker switches only once the
panel holds it, the panel logs in with it and the old one is refused; a panel offline when the
rotation is asked for keeps its password until it is back, then gets the new one; no event is
lost or stored twice."""

import json
import os
import subprocess
import threading
import time

import pytest
from gw_broker_support import MOSQUITTO, ROOT, SecuredBroker, rating, start_gateway
from mpy_support import CASES_DIR, micropypath, micropython_binary

from gateway import accounts as acc
from gateway import schema, store
from simulator import services

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not micropython_binary(), reason="MicroPython unix port not installed"),
]

SITE = """
[deployment]
lang = "en"
from = 2025-01-01T00:00:00Z

[[sites]]
id = "s1"
name = "Shop"
timezone = "Europe/Moscow"

[[questions]]
id = "office"
kind = "office"
text_ru = "Понравился ли Вам офис?"
text_en = "Did you like our office?"

[[panels]]
site = "s1"
device = "a"
question = "office"
"""


class VmPanel:
    """firmware on the MicroPython VM (tests/mpy_cases/fw_rotation_panel_vm.py) on `data`."""

    def __init__(self, data, lib):
        self.data = data
        self.lib = lib
        self.proc = None

    def start(self):
        stop = os.path.join(self.data, "stop")
        if os.path.exists(stop):
            os.unlink(stop)
        env = dict(os.environ, MICROPYPATH=micropypath(()))
        cmd = [micropython_binary(), "-X", "heapsize=100k", os.path.join(CASES_DIR, "fw_rotation_panel_vm.py")]
        self.proc = subprocess.Popen(cmd + [self.data, self.lib], env=env, stdout=subprocess.PIPE, text=True)
        self.out = []
        threading.Thread(target=lambda: self.out.extend(self.proc.stdout), daemon=True).start()
        return self

    def stop(self):
        open(os.path.join(self.data, "stop"), "w").close()
        self.proc.wait(60)
        time.sleep(0.2)
        for line in self.out:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        raise AssertionError("the VM panel gave no result:\n" + "".join(self.out))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_until(what, cond, timeout=40, say=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s\n%s" % (what, say()))


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_a_rotated_password_keeps_the_panel_online_and_loses_no_event(tmp_path, bundle_lib, kind):
    """Mosquitto with the generated files, or the gateway's own embedded broker (no --broker)."""
    if kind == "mosquitto" and not MOSQUITTO:
        pytest.skip("mosquitto is not installed")
    b = SecuredBroker(kind, tmp_path)
    if kind == "mosquitto":
        b.start()
        b.write_files(reload=True)  # `rating broker config --reload`: the gateway knows the files now
    else:
        b.port = services.free_port()  # the gateway's own broker, on the accounts of its database
    gw = panel = None
    try:
        (tmp_path / "site.toml").write_text(SITE)
        assert rating("site", "apply", str(tmp_path / "site.toml"), "--db", b.db_url).returncode == 0
        secret = tmp_path / "gw.secret"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (b.secret["gateway"] + "\n").encode())
        os.close(fd)
        settings = {"db": b.db_url, "root": ROOT, "config_push_s": 0.5}
        if kind == "mosquitto":
            settings.update(broker="mqtt://gateway@127.0.0.1:%d" % b.port, broker_password_file=str(secret))
        else:
            settings.update(broker_port=b.port)
        (tmp_path / "gw.toml").write_text("".join("%s = %s\n" % (k, json.dumps(v)) for k, v in settings.items()))
        gw, lines, up = start_gateway(str(tmp_path / "gw.toml"))
        assert up.wait(20), "".join(lines)

        data = tmp_path / "panel"
        data.mkdir()
        old = b.secret["panel.s1.a"]
        config = {
            "site": "s1",
            "device": "a",
            "wifi": {"ssid": "shop", "password": "pw"},
            "mqtt": {"host": "127.0.0.1", "port": b.port, "root": ROOT, "keepalive": 30, "user": "panel.s1.a"},
            "ntp": {"host": "127.0.0.1:9"},
            "timings": {"ack_timeout_s": 5},
        }
        config["mqtt"]["password"] = old
        (data / "config.json").write_text(json.dumps(config))
        db = schema.open_database(b.db_url)

        def say():
            return "gateway:\n%s\npanel:\n%s" % ("".join(lines), "".join(panel.out if panel else []))

        def state():
            row = store.panel_state(db, "s1", "a")
            return (row["online"], json.loads(row["payload"] or "{}")) if row else (0, {})

        def account():
            return {a["username"]: a for a in acc.listing(db)}["panel.s1.a"]

        def stored():
            return sorted(r["seq"] for r in db.query("SELECT seq FROM raw_events WHERE site = 's1' AND device = 'a'"))

        panel = VmPanel(str(data), bundle_lib).start()
        wait_until("the panel online with some events stored", lambda: state()[0] and len(stored()) >= 3, say=say)

        # online: delivered, held, switched at the broker, logged in with it
        r = rating("panel", "rotate-password", "s1/a", "--db", b.db_url)
        assert r.returncode == 0, r.stderr
        wait_until("password v2 in use", lambda: state()[0] and state()[1].get("pwv") == 2, say=say)
        wait_until("the rotation finished", lambda: account()["rotation"] is None and account()["ver"] == 2, say=say)
        wait_until("the config without the password", lambda: "".join(lines).count("rotation done") == 1, say=say)
        assert b.peer("panel.s1.a", old).connect() == "Not authorized"  # the old one is gone
        assert "pwn" not in state()[1]
        first = panel.stop()
        assert first["pwv"] == 2 and first["pwn"] is None and first["acked"] == first["seq"], first
        assert first["connects"] >= 2, first  # it logged in again, with the new password
        v2 = json.loads((data / "pw.json").read_text())
        assert v2["pwv"] == 2 and not (data / "pw.new").exists()
        assert stored() == list(range(1, first["seq"] + 1)), say()

        # offline: nothing is delivered, the password in use keeps working until it is back
        wait_until("the panel offline", lambda: not state()[0], say=say)
        assert rating("panel", "rotate-password", "s1/a", "--db", b.db_url).returncode == 0
        time.sleep(3)  # several rotation rounds of the gateway
        assert account()["rotation"].endswith("waiting for the panel to come online"), account()
        p = b.peer("panel.s1.a", v2["pw"])
        try:
            assert p.connect() == "Success"
        finally:
            p.close()
        panel = VmPanel(str(data), bundle_lib).start()
        wait_until("password v3 in use", lambda: state()[0] and state()[1].get("pwv") == 3, say=say)
        wait_until("the second rotation finished", lambda: account()["rotation"] is None, say=say)
        wait_until("the config without the password", lambda: "".join(lines).count("rotation done") == 2, say=say)
        second = panel.stop()
        assert second["boot"] == first["boot"] + 1 and second["pwv"] == 3, second
        assert second["acked"] == second["seq"] > first["seq"], second
        assert stored() == list(range(1, second["seq"] + 1)), say()
        assert b.peer("panel.s1.a", v2["pw"]).connect() == "Not authorized"
        # the retained config carries no password any more, and no log line ever had one
        v3 = json.loads((data / "pw.json").read_text())
        assert v3["pwv"] == 3
        p = b.peer("panel.s1.a", v3["pw"])
        try:
            assert p.connect() == "Success"
            p.subscribe(ROOT + "/s1/a/config")
            retained = p.wait_for(ROOT + "/s1/a/config")[-1]
        finally:
            p.close()
        assert retained[2] and b'"question"' in retained[1] and b"pw" not in retained[1], retained
        text = "".join(lines)
        assert all(secret not in text for secret in (old, v2["pw"], v3["pw"]))
        # the retained check sees the gateway's own topics through its account's rights
        assert "did not deliver the marker" not in text, text
        db.close()
    finally:
        if panel:
            panel.kill()
        if gw:
            gw.terminate()
            gw.wait(20)
        b.close()
