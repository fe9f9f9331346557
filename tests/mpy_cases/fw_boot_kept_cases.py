"""The kept validated config (firmware/boot.py) on the real MicroPython VM: the normal boot reads
/config.json.ok back without importing the config code; a changed /config.json or
/remote.json, or a torn copy, makes the boot validate again; /remote.json is applied at boot
so the Panel does not import firmware.remote for it. Run by tests/firmware/test_kept_config.py."""

import json
import os
import random
import sys

import install_fakes  # noqa: F401

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
    for name in ("config.json", "config.json.ok", "remote.json"):
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


def test_remote_config_applied_at_boot_and_kept():
    _write(DIR + "/remote.json", '{"v":1,"ver":4,"long_ms":2500,"question":"Ok?"}')
    cfg, _ = _start()
    assert cfg["timings"]["long_ms"] == 2500 and cfg["remote"]["ver"] == 4
    again, loaded = _start()
    assert again == cfg and loaded == []
    _write(DIR + "/remote.json", '{"v":1,"ver":5,"long_ms":2600}')
    cfg, _ = _start()  # a new remote config (written by the panel at run time) misses the key
    assert cfg["timings"]["long_ms"] == 2600 and cfg["remote"]["ver"] == 5
    import firmware
    from firmware.app import Panel
    from firmware.hal import Hal

    trap = _Trap()  # stands in for firmware.remote: the Panel must not need it
    sys.modules["firmware.remote"] = firmware.remote = trap
    panel = Panel(Hal(cfg["pins"], root=DIR + "/"), cfg)
    assert trap.used == 0  # /remote.json was recognised as the config in force
    sys.modules["firmware.remote"] = firmware.remote = trap
    panel._on_config(b'{"v":1,"ver":5,"long_ms":2600}')  # the gateway's retained config
    assert trap.used == 0
    sys.modules["firmware.remote"] = firmware.remote = trap
    panel._on_config(b'{"v":1,"ver":6,"long_ms":2700}')  # a new one is handled by remote
    assert trap.used == 1
    assert panel.cfg["timings"]["long_ms"] == 2600 and panel.cfg_err is None
