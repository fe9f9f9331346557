# The panel past 2**30 ms of uptime (12.4 days) on a 32-bit MicroPython VM: the WebAssembly
# port, whose small ints end at 2**30 - 1 like the ESP32's, run by tests/firmware/test_uptime_32bit.py
# through tests/mpy_cases/wasm_run.mjs with the bundle's lib/ at /lib, tests/mpy at /fakes and
# an empty /data:
#
#   node tests/mpy_cases/wasm_run.mjs PKG 400000 tests/mpy_cases/fw_uptime_wasm32.py \
#       LIB=/lib tests/mpy=/fakes =/data
#
# Two panels (offline, no access point), their clock driven by this script: one as built
# (Panel.REBASE_AT: its step times are rebased, firmware/rebase.py), one with REBASE_AT = None
# (the control: step times grow past 2**30 and become long ints). Both run 14 days in jumps
# the uptime tracking allows, then 300 idle steps of 10 ms; this VM collects garbage only
# between calls from JavaScript, so gc.mem_alloc() over those steps counts every byte they
# allocated. Then a press of "yes". Prints per panel:
#   PANEL <name> up=<real uptime ms> step_up=<the step's time> garbage=<bytes in 300 steps>
#   EVENT <name> up=<the event's up field> expected=<the clock's uptime at the press>
import gc
import json
import sys
import time

import fake_machine
import fake_network
import install_fakes  # noqa: F401

assert sys.maxsize < 2**32, "a 32-bit VM was expected"


class _NoSocket:
    @staticmethod
    def socket(*args):
        raise OSError(95)

    getaddrinfo = socket


sys.modules["socket"] = sys.modules["usocket"] = _NoSocket
fake_network.ap(False)  # no access point: the panel stays offline

from firmware import config, journal  # noqa: E402
from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402

CFG = {"site": "s1", "device": "p1", "wifi": {"ssid": "shop"}, "mqtt": {"host": "127.0.0.1"}}
T = [0]


def ticks():
    return T[0]


def make(name, rebase):
    import os

    os.mkdir("/data/" + name)
    cfg = config.load(json.dumps(CFG))
    hal = Hal(cfg["pins"], root="/data/" + name)
    hal.ticks_ms = ticks
    p = Panel(hal, cfg, ticks=T[0])
    if not rebase:
        p.REBASE_AT = None
    return p


def advance(p, ms, step_ms):
    """Move the clock on by ms, stepping the panel every step_ms."""
    done = 0
    while done < ms:
        T[0] = time.ticks_add(T[0], step_ms)
        done += step_ms
        p.step(T[0])
    return done


def run(name, rebase):
    T[0] = 1000
    p = make(name, rebase)
    elapsed = 0
    elapsed += advance(p, 2000, 10)
    for _ in range(9):  # 9 jumps of 2**27 ms (1.55 days each; < 2**29, the ticks' half period)
        elapsed += advance(p, 1 << 27, 1 << 27)
        elapsed += advance(p, 1000, 10)
    assert elapsed > (1 << 30), elapsed
    before = gc.mem_alloc()
    elapsed += advance(p, 3000, 10)
    garbage = gc.mem_alloc() - before
    print("PANEL %s up=%d step_up=%d garbage=%d" % (name, p.base + p.up, p.up, garbage))
    pin = p.cfg["pins"]["yes"]
    fake_machine.set_level(pin, 0)
    elapsed += advance(p, 120, 10)
    fake_machine.set_level(pin, 1)
    elapsed += advance(p, 100, 10)
    s, payload = p.journal.next_after(0)
    boot, up, t, ev, hold = journal.unpack_event(payload)
    print("EVENT %s ev=%s up=%d expected=%d" % (name, ev, up, elapsed - 220 + 30))


run("rebased", True)
run("control", False)
