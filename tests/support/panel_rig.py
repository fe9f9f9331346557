"""The whole panel app (firmware/app.py + link + journal + buttons) under CPython with the host
HAL: a `Rig` to press buttons and wait for conditions (tests/firmware/test_panel.py and the
tests beside it).

Simulated time (the host HAL's clock) runs a few times faster than real time; the network is
real. Each helper loop steps the panel every 10 simulated ms and yields a little real time.
"""

import json
import time

from firmware import config
from firmware.app import Panel
from simulator.host_hal import HostHal

SITE, DEVICE = "store-1", "panel-1"
STEP_MS = 10
REAL_SLEEP_S = 0.002


def make_cfg(broker, root, **timings):
    raw = {
        "site": SITE,
        "device": DEVICE,
        "wifi": {"ssid": "shop", "password": "pw"},
        "mqtt": {"host": broker.host, "port": broker.port, "root": root, "keepalive": 30},
        "timings": dict({"ack_timeout_s": 5, "heartbeat_s": 60, "window_s": 30}, **timings),
    }
    return config.load(json.dumps(raw))


class Rig:
    """A panel on the host HAL plus helpers to press buttons and wait for conditions."""

    def __init__(self, broker, root, tmp_path, **timings):
        self.hal = HostHal(data_dir=str(tmp_path / "flash"), now_ms=0, ticks_start=(1 << 30) - 3000)
        self.hal.ntp_unix_ms = lambda: 1764000000000 + self.hal.now_ms
        self.cfg = make_cfg(broker, root, **timings)
        self.panel = Panel(self.hal, self.cfg)

    def step(self, ms=STEP_MS):
        self.hal.advance(ms)
        self.panel.step(self.hal.ticks_ms())

    def run_until(self, cond, timeout_s=10.0, what="condition"):
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s" % what)
            self.step()
            time.sleep(REAL_SLEEP_S)

    def run_for(self, sim_ms):
        end = self.hal.now_ms + sim_ms
        while self.hal.now_ms < end:
            self.step()
            time.sleep(REAL_SLEEP_S / 4)

    def press(self, name, hold_ms=120, bounce=True):
        """A finger on `name` with contact bounce shorter than the debounce time."""
        hal = self.hal
        if bounce:
            for level in (True, False, True, False, True):
                hal.set_pressed(name, level)
                self.step(2)
        hal.set_pressed(name, True)
        self.run_for(hold_ms)
        hal.set_pressed(name, False)
        self.run_for(80)

    def online(self):
        return self.panel.link.online
