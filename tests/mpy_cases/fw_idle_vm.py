# The idle panel's main loop and the CPU, on the REAL MicroPython VM (unix port), run by
# tests/firmware/test_idle_cpu.py:
#
#   micropython fw_idle_vm.py LIB DATA MODE STEPS
#
# `time` here is the ESP32's, not the unix port's: ports/esp32/mphalport.c mp_hal_delay_ms
# sleeps in whole FreeRTOS ticks (10 ms; CONFIG_FREERTOS_HZ is IDF's default 100 in every
# MicroPython ESP32 board) while more than a tick is left, and spins in mp_hal_delay_us for the
# rest: so time.sleep_ms(10) spins for all of its 10 ms. Installed before the firmware loads,
# so the device HAL gets it as it would on a board.
# MODE "device": the device HAL as it is; "spin": its sleep replaced by time.sleep_ms (what it
# was). An offline panel (no access point) runs STEPS main-loop steps. Prints DONE <steps> <ms>.
import sys
import time as _real

import install_fakes  # noqa: F401


class Esp32Time:
    """The unix port's time with the ESP32's sleep_ms."""

    def __init__(self):
        for name in ("ticks_ms", "ticks_us", "ticks_diff", "ticks_add", "ticks_cpu", "time", "gmtime", "localtime"):
            setattr(self, name, getattr(_real, name))
        self.sleep = _real.sleep
        self.sleep_us = _real.sleep_us

    @staticmethod
    def sleep_ms(ms):
        us = ms * 1000
        t0 = _real.ticks_us()
        while _real.ticks_diff(_real.ticks_us(), t0) + 10000 < us:
            _real.sleep_ms(10 - _real.ticks_ms() % 10)  # ulTaskNotifyTake: to the next tick
        while _real.ticks_diff(_real.ticks_us(), t0) < us:  # mp_hal_delay_us: a busy loop
            pass


sys.modules["time"] = sys.modules["utime"] = Esp32Time()

import json  # noqa: E402

import fake_network  # noqa: E402

LIB, DATA, MODE, STEPS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, LIB)
fake_network.ap(False)

from firmware import config, main  # noqa: E402
from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402

cfg = config.load(json.dumps({"site": "s1", "device": "p1", "wifi": {"ssid": "shop"}, "mqtt": {"host": "127.0.0.1"}}))
hal = Hal(cfg["pins"], root=DATA)
if MODE == "spin":
    hal.sleep_ms = sys.modules["time"].sleep_ms
panel = Panel(hal, cfg)
t0 = _real.ticks_ms()
main.loop(panel, hal, print, STEPS)
print("DONE %d %d" % (STEPS, _real.ticks_diff(_real.ticks_ms(), t0)))
