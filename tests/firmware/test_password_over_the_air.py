"""A new MQTT password delivered over the air, on the real firmware (MicroPython VM, its own MQTT
client) against a real Mosquitto with accounts (firmware/secret.py, link.py; docs/security.md):
the panel keeps the delivered password on flash once (the retained config coming again writes
nothing), reports it held, logs in with it first and falls back to its current one at once
while the broker does not know it yet, and switches for good when the broker does."""

import json
import os
import subprocess
import threading
import time

import pytest
from gw_broker_support import MOSQUITTO, ROOT, SecuredBroker
from mpy_support import CASES_DIR, micropypath, micropython_binary

from gateway import accounts as acc
from gateway import schema
from protocol import messages

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.realtime,
    pytest.mark.skipif(not MOSQUITTO, reason="mosquitto is not installed"),
    pytest.mark.skipif(not micropython_binary(), reason="MicroPython unix port not installed"),
]
BASE = ROOT + "/s1/a/"


class StandInGateway:
    """The gateway's part, by hand: acks every event, keeps the panel's latest state."""

    def __init__(self, b):
        self.peer = b.peer("gateway", client_id="gateway")
        assert self.peer.connect() == "Success"
        self.peer.subscribe(BASE + "event", BASE + "state")
        self.state = {}
        self.seq = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                topic, payload, _retain = self.peer.got.get(timeout=0.05)
            except Exception:
                continue
            if topic.endswith("/state"):
                self.state = json.loads(payload)
            elif topic.endswith("/event"):
                seq = json.loads(payload)["seq"]
                if seq == self.seq + 1:
                    self.seq = seq
                    self.peer.c.publish(BASE + "ack", messages.encode_ack(seq), qos=1, retain=True)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.peer.close()


def wait_until(what, cond, timeout=30, say=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s\n%s" % (what, say()))


def test_the_panel_keeps_a_delivered_password_falls_back_until_the_broker_knows_it_then_switches(tmp_path, bundle_lib):
    b = SecuredBroker("mosquitto", tmp_path).start()
    gw = vm = None
    try:
        b.write_files(reload=True)
        data = tmp_path / "panel"
        data.mkdir()
        old = b.secret["panel.s1.a"]
        mqtt = {"host": "127.0.0.1", "port": b.port, "root": ROOT, "keepalive": 30, "user": "panel.s1.a"}
        mqtt["password"] = old
        config = {"site": "s1", "device": "a", "wifi": {"ssid": "shop"}, "mqtt": mqtt, "ntp": {"host": "127.0.0.1:9"}}
        (data / "config.json").write_text(json.dumps(config))
        gw = StandInGateway(b)
        env = dict(os.environ, MICROPYPATH=micropypath(()))
        script = os.path.join(CASES_DIR, "fw_rotation_panel_vm.py")
        vm = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=100k", script, str(data), bundle_lib],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out = []
        threading.Thread(target=lambda: out.extend(vm.stdout), daemon=True).start()

        def say():
            return "state %r\npanel:\n%s\nbroker:\n%s" % (gw.state, "".join(out), b.log())

        wait_until("the panel online", lambda: gw.state.get("online") and gw.seq >= 2, say=say)
        db = schema.open_database(b.db_url)
        acc.rotate(db, "s1", "a", 2)
        new, ver = acc.begin_delivery(db, "s1", "a", 3)
        config_payload = messages.encode_config({"ver": 1, "window_s": 40})
        from gateway.rotation import with_password

        gw.peer.publish(BASE + "config", with_password(config_payload, ver, new), retain=True)
        wait_until("the panel holds v2", lambda: gw.state.get("pwn") == ver, say=say)
        held = os.stat(data / "pw.new")
        assert json.loads((data / "pw.new").read_text()) == {"pwv": ver, "pw": new}
        assert not (data / "pw.json").exists() and "pwv" not in gw.state

        # its connection taken over (the same account): it logs in again, tries the new
        # password, is refused (the broker does not know it yet) and is back with the old one
        conn = gw.state["conn"]
        thief = b.peer("panel.s1.a", old)
        assert thief.connect() == "Success"
        wait_until("the panel back", lambda: gw.state.get("conn", 0) >= conn + 2 and gw.state.get("online"), say=say)
        thief.close()
        assert gw.state.get("pwn") == ver and "pwv" not in gw.state
        again = os.stat(data / "pw.new")  # the retained config came again: nothing rewritten
        assert (again.st_ino, again.st_mtime_ns) == (held.st_ino, held.st_mtime_ns)

        # the broker switches: the panel is dropped, logs in with the new one, keeps it for good
        assert acc.confirm(db, "s1", "a", ver, 4)
        db.close()
        b.write_files(reload=True)
        wait_until("the panel on v2", lambda: gw.state.get("pwv") == ver and gw.state.get("online"), say=say)
        assert "pwn" not in gw.state
        assert json.loads((data / "pw.json").read_text()) == {"pwv": ver, "pw": new}
        assert not (data / "pw.new").exists()
        seq = gw.seq
        wait_until("presses still acked", lambda: gw.seq > seq + 2, say=say)
        (data / "stop").touch()
        vm.wait(60)
        result = json.loads([x for x in out if x.startswith("RESULT ")][-1][len("RESULT ") :])
        assert result["pwv"] == ver and result["acked"] == result["seq"] == gw.seq, result
    finally:
        if vm and vm.poll() is None:
            vm.kill()
            vm.wait(10)
        if gw:
            gw.close()
        b.close()
