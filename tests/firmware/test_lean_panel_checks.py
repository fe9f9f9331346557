"""Review of the lean panel commits (kept config, network waits, lean protocol.panel):

- the kept /config.json.ok must not outlive a change of the rules in protocol/ (config.json's
  timing ranges and the remote knobs' are protocol.config.CONFIG_RANGES): the key covers them;
- a retained config that json.loads cannot hold (MemoryError on MicroPython, RecursionError on
  CPython) is refused with cfg_err, not raised out of the MQTT callback (which drops the link,
  and the retained message comes back on every reconnect); on MicroPython the boot that
  checks it refuses it, and its retained copy does not restart the panel again;
- an NTP answer outside the protocol's 2020..2100 is refused: the panel's events and state
  would carry a `t` the gateway dead-letters (the lean encoders no longer check it).
On the real MicroPython VM (unix port) where the VM's behaviour is the point, else CPython.
"""

import json
import os
import shutil

import pytest
from mpy_support import CASES_DIR, REPO, micropython_binary, run_micropython

from firmware import config, ntp
from firmware.app import Panel
from protocol import messages
from simulator.host_hal import HostHal

SCRIPT = os.path.join(CASES_DIR, "fw_lean_panel_vm.py")
needs_vm = pytest.mark.skipif(not micropython_binary(), reason="MicroPython unix port not installed")
CONFIG = {
    "site": "s1",
    "device": "p1",
    "wifi": {"ssid": "shop"},
    "mqtt": {"host": "127.0.0.1"},
    "timings": {"window_s": 500},
}


def _lib(tmp_path):
    lib = tmp_path / "lib"
    for pkg in ("firmware", "protocol"):
        shutil.copytree(
            os.path.join(REPO, pkg), str(lib / pkg), ignore=shutil.ignore_patterns("__pycache__", "*.md", "*.json")
        )
    return lib


def _vm(lib, flash, mode):
    proc = run_micropython(SCRIPT, heapsize="200k", timeout=60, args=(lib, flash, mode))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        key, _, rest = line.partition(" ")
        out[key] = rest
    return out


@pytest.mark.e2e
@needs_vm
def test_kept_config_misses_when_protocol_rules_change(tmp_path):
    lib = _lib(tmp_path)
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text(json.dumps(CONFIG))
    first = json.loads(_vm(lib, flash, "boot")["CFG"])
    assert first["timings"]["window_s"] == 500 and (flash / "config.json.ok").exists()
    first.pop("local")  # not kept on MicroPython (only a check at boot needs it)
    assert json.loads(_vm(lib, flash, "boot")["CFG"]) == first  # kept, read back
    # an update of protocol/ under the same firmware version narrows window_s to 5..300:
    # /config.json's 500 is now refused, the kept verdict must not stand
    src = lib / "protocol" / "config.py"
    text = src.read_text()
    assert '"window_s": (5, 600)' in text
    src.write_text(text.replace('"window_s": (5, 600)', '"window_s": (5, 300)'))
    assert _vm(lib, flash, "boot")["CFG"] == "null"  # the config-error path (max_ms ran out)


@pytest.mark.e2e
@needs_vm
def test_config_payload_json_cannot_hold_is_refused_micropython(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text(json.dumps(CONFIG))
    out = _vm(REPO, flash, "config")
    assert out["RAISED"] == "None", out  # kept for the next boot to check, nothing raised
    assert out["RESTART_DUE"] != "None" and (flash / "remote.new").exists(), out
    cfg = json.loads(_vm(REPO, flash, "boot")["CFG"])  # that boot refuses it
    assert cfg["remote_err"].startswith("payload:") and "remote_bad" in cfg, cfg
    assert not (flash / "remote.new").exists()
    out = _vm(REPO, flash, "config")  # the retained copy again: reported, no restart loop
    assert out["RAISED"] == "None" and out["RESTART_DUE"] == "None", out
    assert out["CFG_ERR"].startswith("payload:"), out


def _panel(tmp_path):
    hal = HostHal(data_dir=str(tmp_path / "flash"), now_ms=0)
    return Panel(hal, config.load(json.dumps(CONFIG))), hal


def test_config_payload_json_cannot_hold_is_refused_cpython(tmp_path):
    panel, _ = _panel(tmp_path)
    link = panel.link
    link._on_message(link.t_config.encode(), b"[" * 100000)  # RecursionError in CPython's json
    assert panel.cfg_err and panel.cfg_err.startswith("payload:"), panel.cfg_err


@pytest.mark.parametrize("unix_ms", [946684800000, 1000, 4102444800000])
def test_ntp_time_the_gateway_refuses_is_not_taken(tmp_path, unix_ms):
    # an unsynced router answering 2000-01-01 (LI 0, stratum 1), 1970, or 2100
    panel, hal = _panel(tmp_path)
    hal.ntp_unix_ms = lambda: unix_ms
    ntp.sync(panel, panel.up)
    assert not panel.wall.is_synced
    assert panel.ntp.failures == 1  # retried soon, as after any failed sync
    for down in (False, True, False):  # released, then a 100 ms press of "yes"
        hal.set_pressed("yes", down)
        for _ in range(10):
            hal.advance(10)
            panel.step(hal.ticks_ms())
    seq, data = panel.next_after(0)
    assert messages.decode_event(data)["t"] is None  # the gateway takes it (t unknown)
    messages.decode_state(messages.panel.encode_state(panel.state()))
    # a plausible answer is still taken
    hal.ntp_unix_ms = lambda: 1764000000000
    ntp.sync(panel, panel.up)
    assert panel.wall.is_synced
