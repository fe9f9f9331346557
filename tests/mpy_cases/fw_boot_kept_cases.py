"""The kept validated config (firmware/boot.py) on the real MicroPython VM: the normal boot reads
/config.json.ok back without importing the config code; a changed /config.json or
/remote.json, or a torn copy, makes the boot validate again; /remote.json is applied at boot
so the Panel does not import firmware.remote for it; a new remote config message is kept in
/remote.new for the next boot to check (the Panel restarts; it never loads the config code),
and a refused one is remembered so that its retained copy does not restart the panel again.
Run by tests/firmware/test_kept_config.py."""

import json
import os
import random
import sys

import install_fakes  # noqa: F401
from mpytest import raises

from firmware import boot, unload

DIR = "/tmp/fw_boot_kept_%08x" % random.getrandbits(32)
PATH = DIR + "/config.json"
CONFIG = {
    "site": "s1",
    "device": "p1",
    "wifi": {"ssid": "shop"},
    "mqtt": {"host": "127.0.0.1"},
    "timings": {"long_ms": 1800},
}
LAZY = ("firmware.config", "protocol.config", "protocol.checks", "protocol.topics", "firmware.remote")


class _Trap:
    used = 0

    def load_saved(self, panel, text):
        self.used += 1

    def on_config(self, panel, msg):
        self.used += 1


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def setup():
    try:
        os.mkdir(DIR)
    except OSError:
        pass
    for name in ("config.json", "config.json.ok", "remote.json", "remote.new"):
        _rm(DIR + "/" + name)
    _write(PATH, json.dumps(CONFIG))
    unload(*LAZY)


def _start():
    unload(*LAZY)
    cfg = boot.start(lambda pins: None, PATH, log=lambda line: None, max_ms=200)
    loaded = [m for m in LAZY if m in sys.modules]
    return cfg, loaded


def test_second_boot_reads_the_kept_config_without_the_config_code():
    first, _ = _start()
    assert first["timings"]["long_ms"] == 1800 and first["chip"] == "esp32"
    with open(PATH + ".ok") as f:
        assert f.readline().startswith("0.")  # the key: firmware version first
    seen = []
    real = boot.read_config
    boot.read_config = lambda *a: seen.append(a) or real(*a)
    try:
        second, loaded = _start()
    finally:
        boot.read_config = real
    assert boot.fresh is False  # read back: no restart
    first.pop("local")  # only a check of a new remote config needs it: done at boot, not kept
    assert second == first, (second, first)
    assert seen == [] and loaded == [], (seen, loaded)


def test_changed_or_torn_files_validate_again():
    _start()
    CONFIG["timings"]["long_ms"] = 2200
    try:
        _write(PATH, json.dumps(CONFIG))
        cfg, _ = _start()
        assert cfg["timings"]["long_ms"] == 2200
        _write(PATH, json.dumps(CONFIG).replace('"port"', '"prt"').replace("2200", "20"))
        cfg, _ = _start()  # now invalid (long_ms 20 <= debounce): the config-error path
        assert cfg is None
        _write(PATH, json.dumps(CONFIG))
        _write(PATH + ".ok", "garbage\n{")
        cfg, _ = _start()
        assert cfg["timings"]["long_ms"] == 2200
    finally:
        CONFIG["timings"]["long_ms"] = 1800


def _panel(cfg, trap):
    import firmware
    from firmware.app import Panel
    from firmware.hal import Hal

    sys.modules["firmware.remote"] = firmware.remote = trap  # the Panel must not need it
    return Panel(Hal(cfg["pins"], root=DIR + "/"), cfg)


def test_remote_config_applied_at_boot_and_kept():
    _write(DIR + "/remote.json", '{"v":1,"ver":4,"long_ms":2500,"question":"Ok?"}')
    cfg, _ = _start()
    assert cfg["timings"]["long_ms"] == 2500 and cfg["remote"]["ver"] == 4 and boot.fresh
    again, loaded = _start()
    assert again["remote"] == cfg["remote"] and loaded == [] and not boot.fresh
    _write(DIR + "/remote.json", '{"v":1,"ver":5,"long_ms":2600}')
    cfg, _ = _start()  # a changed /remote.json misses the key
    assert cfg["timings"]["long_ms"] == 2600 and cfg["remote"]["ver"] == 5
    trap = _Trap()
    panel = _panel(cfg, trap)
    assert trap.used == 0 and panel.cfg_err is None  # /remote.json is the config in force
    panel._on_config(bytearray(b'{"v":1,"ver":5,"long_ms":2600}'))  # the gateway's retained one
    assert trap.used == 0 and panel.restart_due is None


def test_new_remote_config_is_kept_checked_at_boot_and_applied():
    cfg, _ = _start()
    trap = _Trap()
    panel = _panel(cfg, trap)
    msg = bytearray(b'{"v":1,"ver":6,"long_ms":2700,"unknown_knob":1}')
    panel._on_config(msg)  # a new one: kept as it came, the panel restarts to check it
    assert trap.used == 0 and panel.restart_due is not None, (trap.used, panel.restart_due)
    assert [m for m in LAZY[:4] if m in sys.modules] == []  # no config code loaded for it
    with open(DIR + "/remote.new", "rb") as f:
        kept = f.read()
        assert kept == msg, kept
    cfg, _ = _start()  # the next boot checks it
    assert boot.fresh and cfg["remote"]["ver"] == 6 and cfg["timings"]["long_ms"] == 2700, (boot.fresh, cfg)
    raises(OSError, os.stat, DIR + "/remote.new")
    with open(DIR + "/remote.json", "rb") as f:
        kept = f.read()
        assert kept == msg, kept
    cfg, loaded = _start()  # and the one after runs with it, unchecked
    assert cfg["remote"]["ver"] == 6 and loaded == [] and not boot.fresh, (cfg, loaded, boot.fresh)
    panel = _panel(cfg, trap)
    panel._on_config(msg)  # its retained copy after the restart: nothing to do
    assert panel.restart_due is None and trap.used == 0 and panel.cfg_err is None, (panel.restart_due, panel.cfg_err)


def test_refused_remote_config_reported_and_not_restarted_again():
    _write(DIR + "/remote.json", '{"v":1,"ver":4,"long_ms":2500}')
    cfg, _ = _start()
    panel = _panel(cfg, _Trap())
    bad = b'{"v":1,"ver":7,"window_s":1}'  # outside the protocol's range
    panel._on_config(bad)
    assert panel.restart_due is not None
    cfg, _ = _start()  # refused: the old one stays in force, the error is kept for state
    assert cfg["remote"]["ver"] == 4 and cfg["timings"]["long_ms"] == 2500
    assert cfg["remote_err"].startswith("window_s:"), cfg["remote_err"]
    raises(OSError, os.stat, DIR + "/remote.new")
    cfg, _ = _start()
    panel = _panel(cfg, _Trap())
    assert panel.cfg_err == cfg["remote_err"] and panel.state()["cfg"] == 4
    assert panel.state()["cfg_err"].startswith("window_s:")
    panel._on_config(bad)  # its retained copy comes after every connect: no restart loop
    assert panel.restart_due is None
    panel._on_config(b'{"v":1,"ver":8}')  # a new one still restarts
    assert panel.restart_due is not None
