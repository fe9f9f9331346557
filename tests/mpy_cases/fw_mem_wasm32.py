# The panel's heap on a 32-bit MicroPython VM: the WebAssembly port (pyscript variant, 4-byte
# words, 16-byte GC blocks like the ESP32), run by tests/mpy_cases/wasm_run.mjs with the bundle's
# lib/ at /lib (the panel's own paths, so module __file__ names cost what they cost there),
# tests/mpy at /fakes, an empty /data:
#
#   node tests/mpy_cases/wasm_run.mjs PKG 200000 tests/mpy_cases/fw_mem_wasm32.py \
#       LIB=/lib tests/mpy=/fakes =/data
#
# That VM collects garbage only between calls from JavaScript (see wasm_run.mjs), so this is a
# generator: every `gc.collect(); yield` hands back to the runner, which resumes it with the
# garbage gone. Prints
#   MEM <module> <bytes>   held after importing it (the panel's start-up imports, in the app's
#                          order, dependencies first); each followed by micropython.qstr_info()'s
#                          "qstr pool: n_pool=.., n_qstr=.., n_str_data_bytes=.., n_total_bytes=.."
#                          (the interned names so far; one such line also comes before the first)
#   MEM_TOTAL <bytes>      what those imports hold
#   BOOT <bytes>           what firmware.main.boot() added: config read and validated (boot-only
#                          modules loaded and unloaded again; their names stay interned), the
#                          HAL and the Panel (offline: no broker)
#   HELD <bytes>           all of it: the firmware's heap after start-up, offline
#   CLIENT <bytes>         the MQTT client object hal.mqtt() makes before its first connect
#   LOADED <modules>       firmware/protocol/umqtt modules in sys.modules at the end
# `socket` is a stub (the VM has none): only so that umqtt.simple and firmware.mqtt import.
import gc
import json
import sys

import install_fakes  # noqa: F401 - the firmware's hal imports machine/network
import micropython


class _NoSocket:
    """Stands in for the socket module: imports work, no connection is ever made."""

    @staticmethod
    def socket(*args):
        raise OSError(95)  # EOPNOTSUPP

    getaddrinfo = socket


sys.modules["socket"] = sys.modules["usocket"] = _NoSocket
# Built into the ESP32's firmware (C, no heap), frozen Python wrappers on this VM (binascii:
# ~1 KB held and ~6 KB of import garbage; os, time): loaded before the baseline, they are the
# platform's, not the firmware's.
import binascii  # noqa: E401,F401

PANEL = (
    "protocol",
    "protocol.panel",
    "firmware.version",
    "firmware.clock",
    "firmware.buttons",
    "firmware.journal",
    "firmware.ui",
    "firmware.link",
    "firmware.app",
    "firmware.hal",
    "umqtt.simple",
    "firmware.mqtt",
    "firmware.main",
)
CONFIG = {"site": "s1", "device": "p1", "wifi": {"ssid": "shop"}, "mqtt": {"host": "127.0.0.1"}}
with open("/data/config.json", "w") as f:
    f.write(json.dumps(CONFIG))
del f


def _make_hal(pins):
    from firmware.hal import Hal

    return Hal(pins, root="/data")


def _run():
    gc.collect()
    yield
    start = gc.mem_alloc()
    micropython.qstr_info()
    for name in PANEL:
        before = gc.mem_alloc()
        __import__(name)
        gc.collect()
        yield
        held = gc.mem_alloc()
        print("MEM %s %d" % (name, held - before))
        micropython.qstr_info()
        gc.collect()
        yield  # the print's garbage
    held = gc.mem_alloc()
    print("MEM_TOTAL %d" % (held - start))
    gc.collect()
    yield
    before = gc.mem_alloc()
    import firmware.main

    panel, hal = firmware.main.boot(_make_hal, "/data/config.json", log=print)
    gc.collect()
    yield
    held = gc.mem_alloc()
    print("BOOT %d" % (held - before))
    print("HELD %d" % (held - start))
    micropython.qstr_info()
    gc.collect()
    yield
    before = gc.mem_alloc()
    client = hal.mqtt("p1", "127.0.0.1", 1883)
    gc.collect()
    yield
    print("CLIENT %d" % (gc.mem_alloc() - before))
    print("LOADED " + " ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("firmware", "protocol", "umqtt"))))
    del client


steps = _run()
