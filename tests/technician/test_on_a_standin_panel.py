"""rating device deploy/test against a real MicroPython VM behind a pseudo-terminal.

The stand-in (tests/device_standin) is MicroPython's WebAssembly port under Node.js, reached
through socat's pty: mpremote and pyserial talk to MicroPython's own REPL and raw REPL, the
.mpy files land in the VM's filesystem and the firmware's own code imports them there. The VM
has no radio: after a reset the test plays the panel's network side (it publishes the birth
message the firmware would send, or prints the firmware's console lines), see README.md there.
"""

import json
import os
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from device_standin.standin import Standin, StandinUnavailable, ensure_vm
from paho.mqtt.enums import CallbackAPIVersion

from firmware.version import FW
from protocol import messages, topics
from rating.cli import main
from technician import watchdog

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def vm():
    try:
        return ensure_vm()
    except StandinUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def panel(vm, tmp_path):
    p = Standin(tmp_path / "panel")
    # what a panel that has been running for weeks keeps on its flash
    flash = tmp_path / "panel" / "flash"
    (flash / "j0003.bin").write_bytes(bytes(range(256)) * 4)
    (flash / "seq").write_text("1234")
    (flash / "boot").write_text("17")
    # The deployed app's watchdog: 1.5 s instead of the panel's 30 s, so that every deploy and
    # self-test below outlasts it, as a real deploy or self-test outlasts 30 s on a board.
    p.app_watchdog(1500)
    p.start()
    yield p
    p.stop()
    assert not p.events("watchdog"), "the watchdog reset the panel under the technician"


class PanelNetwork:
    """Plays the panel's radio: each firmware start the stand-in reports becomes a retained
    birth `state` on the broker, as firmware/link.py publishes it."""

    def __init__(self, panel, broker):
        self.panel = panel
        self.broker = broker
        self.stop = False
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        c.connect(self.broker.host, self.broker.port)
        c.loop_start()
        while not self.stop:
            starts = self.panel.events("firmware")
            for ev in starts[self.sent :]:
                info = ev["info"]
                if info.get("ok") and info["host"] == self.broker.host and info["port"] == self.broker.port:
                    state = {
                        "online": True,
                        "boot": 18 + self.sent,
                        "up": 900,
                        "t": None,
                        "fw": info["fw"],
                        "seq": 1234,
                        "pending": 0,
                        "dropped": 0,
                        "heap": 60000,
                        "rssi": -55,
                        "faults": [],
                        "cfg": None,
                        "cfg_err": None,
                    }
                    topic = topics.device_topic(info["root"], info["site"], info["device"], "state")
                    c.publish(topic, messages.encode_state(state), qos=1, retain=True).wait_for_publish(5)
            self.sent = len(starts)
            time.sleep(0.05)
        c.loop_stop()
        c.disconnect()

    def close(self):
        self.stop = True
        self.thread.join(5)


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_boot(panel, kind, after=0):
    """The boots since `after`, once the last is of `kind` (a reset is sent, not waited for)."""
    wait_for(lambda: [b["kind"] for b in panel.events("boot")[after:]][-1:] == [kind])
    return [b["kind"] for b in panel.events("boot")[after:]]


def run_cli(capsys, *argv):
    rc = main(["device"] + list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def snapshot(panel):
    return {rel: (os.stat(p).st_mtime_ns, open(p, "rb").read()) for rel, p in panel.files().items()}


@pytest.mark.e2e
def test_device_deploy_to_standin_is_idempotent_and_keeps_the_journal(capsys, panel, fw_bundle, broker, mqtt_root):
    net = PanelNetwork(panel, broker)
    journal_before = {k: v[1] for k, v in snapshot(panel).items()}
    try:
        base = ["deploy", "--port", panel.port, "--bundle", fw_bundle, "--wait", "30"]
        rc, out, err = run_cli(
            capsys,
            *base,
            "--site",
            "office-1",
            "--device",
            "panel-7",
            "--wifi-ssid",
            "Shop",
            "--wifi-password",
            "pw1",
            "--broker",
            broker.url,
        )
        assert rc == 0, out + err
        assert "Panel office-1/panel-7 is online with firmware %s (seen: its birth message on the broker)" % FW in out

        files = panel.files()
        manifest = json.load(open(os.path.join(fw_bundle, "manifest.json")))
        for rel in manifest["files"]:
            if rel not in ("config.example.json", "manifest.json"):
                assert open(files[rel], "rb").read() == open(os.path.join(fw_bundle, rel), "rb").read(), rel
        cfg = json.load(open(files["config.json"]))
        assert cfg["site"] == "office-1" and cfg["device"] == "panel-7"
        assert cfg["wifi"] == {"ssid": "Shop", "password": "pw1"}
        assert cfg["mqtt"]["host"] == broker.host and cfg["mqtt"]["port"] == broker.port
        # the firmware's own validation, run by the panel's VM on its own files after the reset
        fw_start = panel.events("firmware")[-1]["info"]
        assert fw_start == {
            "ok": True,
            "fw": FW,
            "site": "office-1",
            "device": "panel-7",
            "root": "rating/v1",
            "host": broker.host,
            "port": broker.port,
        }
        for name in ("j0003.bin", "seq", "boot"):
            assert open(files[name], "rb").read() == journal_before[name], name

        # second run, only the Wi-Fi password changes: no firmware file is copied again
        before = snapshot(panel)
        rc, out, err = run_cli(capsys, *base, "--wifi-password", "pw2")
        assert rc == 0, out + err
        assert "nothing copied" in out and "fs cp" not in out.replace("config.json", "")
        after = snapshot(panel)
        changed = sorted(k for k in after if after[k] != before.get(k))
        assert changed == ["config.json"], changed
        cfg2 = json.load(open(panel.files()["config.json"]))
        assert cfg2["wifi"] == {"ssid": "Shop", "password": "pw2"} and cfg2["device"] == "panel-7"

        # third run with nothing new: nothing at all changes on the flash
        before = snapshot(panel)
        rc, out, err = run_cli(capsys, *base)
        assert rc == 0 and "/config.json: unchanged" in out
        assert snapshot(panel) == before
    finally:
        net.close()


@pytest.mark.e2e
def test_deploy_over_an_older_firmware_removes_the_umqtt_it_installed(capsys, vm, tmp_path, fw_bundle):
    # a panel deployed with fw 0.1.0, whose bundle installed umqtt.simple (the firmware has its own
    # MQTT client now) next to a module of the user's that no deploy of ours listed
    p = Standin(tmp_path / "panel")
    umqtt = tmp_path / "panel" / "flash" / "lib" / "umqtt"
    umqtt.mkdir(parents=True)
    (umqtt / "simple.mpy").write_bytes(b"M\x06 umqtt.simple 1.3.4")
    manifest = {"fw": "0.1.0", "umqtt": "1.3.4", "files": {"main.py": "0", "lib/umqtt/simple.mpy": "1"}}
    (tmp_path / "panel" / "flash" / "rating-manifest.json").write_text(json.dumps(manifest))
    p.app_watchdog(1500)
    p.start()
    try:
        args = ["deploy", "--port", p.port, "--bundle", fw_bundle, "--wait", "0", "--site", "office-1"]
        args += ["--device", "panel-5", "--wifi-ssid", "Shop", "--broker", "mqtt://127.0.0.1:9"]
        rc, out, err = run_cli(capsys, *args)
        assert rc == 0, out + err
        assert "remove 1 old module" in out and "umqtt" not in err
        files = p.files()
        assert "lib/firmware/mqtt.mpy" in files and not umqtt.exists(), sorted(files)

        # a umqtt the panel got elsewhere (no deploy of ours listed it) stays
        p.stop()
        umqtt.mkdir()
        (umqtt / "robust.mpy").write_bytes(b"M\x06 the user's")
        p.start()
        rc, out, err = run_cli(capsys, *args)
        assert rc == 0 and "remove" not in out, out + err
        assert (umqtt / "robust.mpy").read_bytes() == b"M\x06 the user's"
    finally:
        p.stop()
    assert not p.events("watchdog")


def test_device_deploy_falls_back_to_the_serial_console(capsys, panel, fw_bundle):
    panel.boot_console("panel: office-1/panel-2 fw 0.1.0 boot 1 seq 0 pending 0\nlink: mqtt up 127.0.0.1:9\n")
    rc, out, err = run_cli(
        capsys,
        "deploy",
        "--port",
        panel.port,
        "--bundle",
        fw_bundle,
        "--wait",
        "20",
        "--site",
        "office-1",
        "--device",
        "panel-2",
        "--wifi-ssid",
        "Shop",
        "--broker",
        "mqtt://127.0.0.1:9",
    )
    assert rc == 0, out + err
    assert "not reachable from this computer" in out
    assert 'is online with firmware 0.1.0 (seen: "link: mqtt up" on its console)' in out


def test_device_deploy_reports_the_panels_config_error(capsys, panel, fw_bundle):
    panel.boot_console("CONFIG ERROR /config.json: wifi.ssid: must be a non-empty string -- fix the file\n")
    rc, out, err = run_cli(
        capsys,
        "deploy",
        "--port",
        panel.port,
        "--bundle",
        fw_bundle,
        "--wait",
        "20",
        "--site",
        "office-1",
        "--device",
        "panel-3",
        "--wifi-ssid",
        "Shop",
        "--broker",
        "mqtt://127.0.0.1:9",
    )
    assert rc == 2
    assert "the panel reports: CONFIG ERROR /config.json: wifi.ssid" in err


def test_device_deploy_refuses_an_invalid_config_before_writing(capsys, panel, fw_bundle):
    rc, out, err = run_cli(
        capsys,
        "deploy",
        "--port",
        panel.port,
        "--bundle",
        fw_bundle,
        "--wait",
        "0",
        "--site",
        "office-1",
        "--device",
        "panel-4",
        "--broker",
        "mqtt://127.0.0.1:9",
    )
    assert rc == 2 and "wifi.ssid: missing" in err and "--wifi-ssid" in err
    assert "config.json" not in panel.files()


# the stand-in presses buttons at wall-clock ms after the self-test's prompt and the self-test
# listens for 1-2 s of wall clock: run alone (make test's realtime part), not beside 4 workers
@pytest.mark.realtime
def test_device_selftest_on_standin(capsys, panel, fw_bundle):
    rc, out, err = run_cli(
        capsys,
        "deploy",
        "--port",
        panel.port,
        "--bundle",
        fw_bundle,
        "--wait",
        "0",
        "--site",
        "office-1",
        "--device",
        "panel-5",
        "--wifi-ssid",
        "Shop",
        "--broker",
        "mqtt://127.0.0.1:9",
    )
    assert rc == 0, out + err
    panel.press([("yes", 100, 300), ("no", 400, 600), ("unsure", 700, 900), ("seller", 1000, 1200)])
    wait_for_boot(panel, "hard")
    boots = len(panel.events("boot"))
    rc, out, err = run_cli(capsys, "test", "--port", panel.port, "--seconds", "2", "--non-interactive")
    rows = {
        line.split()[1] + " " + line.split()[2]: line.split()[0]
        for line in out.splitlines()
        if line.startswith("  PASS") or line.startswith("  FAIL")
    }
    assert "Self-test started (firmware %s)" % FW in out
    for led in ("rate", "thanks", "status", "seller"):
        assert rows["LED " + led] == "PASS"
    for b in ("YES", "NO", "UNSURE", "SELLER"):
        assert rows["button " + b] == "PASS", out
    assert "PASS Wi-Fi rssi=-55" in " ".join(out.split())
    # the WebAssembly VM has no sockets: broker and clock fail for real, and the test says so
    assert "FAIL broker" in " ".join(out.split()) and "FAIL clock sync" in " ".join(out.split())
    assert rc == 1 and "Overall: FAIL" in out
    # the watchdog re-armed for the whole test (check_board, then the test's own code), and
    # the panel restarted at the end: its app runs again with its own watchdog
    assert "Panel restarted: its app runs again." in out
    assert wait_for_boot(panel, "hard", boots) == ["hard"]
    budget = watchdog.selftest_budget_s(2) * 1000
    assert wait_for(lambda: [w["timeout"] for w in panel.events("wdt")][-3:] == [budget, budget, 1500])

    panel.press([("yes", 100, 300)])  # the others are never pressed
    rc, out, err = run_cli(capsys, "test", "--port", panel.port, "--seconds", "1", "--non-interactive")
    flat = " ".join(out.split())
    assert "PASS button YES" in flat and "FAIL button NO no press seen" in flat
