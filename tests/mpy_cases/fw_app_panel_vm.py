# The whole panel app on the real MicroPython VM (unix port), run by tests/test_fw_app_mpy.py:
#
#   micropython -X heapsize=100k fw_app_panel_vm.py HOST PORT ROOT DATA_DIR NTP_HOST PRESSES LIB
#
# LIB is the `make firmware` bundle's lib/ folder: the .mpy files load exactly as on the panel
# (ahead of the repo's .py sources, which would also cost compile-time RAM the device never spends).
# machine/network are the fakes of tests/mpy (install_fakes); firmware.hal, umqtt.simple (from
# PyPI), the journal on DATA_DIR and the sockets to the broker are all real. The script presses
# buttons through the fake pins (with contact bounce), waits until the gateway's retained ack
# covers every event, and prints machine-readable lines:
#   HEAP total=<gc.mem_alloc() after start-up> app=<growth over the bare imports> free=<...>
#   RESULT {"acked": N, "seq": N, "pending": N, ...}
import sys
import gc
import json
import time

import install_fakes  # noqa: F401 - puts the fake machine/network into sys.modules
import fake_machine
import fake_network

gc.collect()
fakes_alloc = gc.mem_alloc()

HOST, PORT, ROOT, DATA, NTP_HOST, PRESSES, LIB = sys.argv[1:8]
sys.path.insert(0, LIB)
PORT = int(PORT)
PRESSES = PRESSES.split(",")

gc.collect()
base_alloc = gc.mem_alloc()

from firmware import config  # noqa: E402
from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402

cfg = config.load(json.dumps({
    "site": "vm-site", "device": "vm-panel",
    "wifi": {"ssid": "shop", "password": "pw"},
    "mqtt": {"host": HOST, "port": PORT, "root": ROOT, "keepalive": 30},
    "ntp": {"host": NTP_HOST},
    "timings": {"ack_timeout_s": 5},
}))
del config  # boot-only: Panel unloads it (see app.unload)
pins = cfg["pins"]
hal = Hal(pins, root=DATA)
gc.collect()
imports_alloc = gc.mem_alloc()
panel = Panel(hal, cfg)
hal.wdt_start(Panel.WDT_MS)


def loop_for(ms):
    start = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), start) < ms:
        panel.step()
        time.sleep_ms(5)


def loop_until(cond, ms, what):
    start = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), start) > ms:
            print("TIMEOUT", what)
            print("RESULT", json.dumps(summary()))
            sys.exit(2)
        panel.step()
        time.sleep_ms(5)


def summary():
    link = panel.link
    return {"acked": panel.journal.acked, "seq": panel.journal.seq,
            "pending": panel.journal.pending(), "boot": panel.boot, "online": link.online,
            "connects": link.connects, "published": link.published,
            "synced": panel.wall.is_synced, "wdt_feeds": fake_machine.wdt_feeds,
            "leds": dict((k, v.duty_u16() * 100 // 65535) for k, v in fake_machine.pwms.items()),
            "error": link.last_error}


def press(name, hold_ms):
    pin = pins[name]
    down = 0 if pins["active_low"] else 1
    for i in range(4):  # contact bounce: 2 ms bursts, far under the 30 ms debounce
        fake_machine.set_level(pin, down if i % 2 == 0 else 1 - down)
        panel.step()
        time.sleep_ms(2)
    fake_machine.set_level(pin, down)
    loop_for(hold_ms)
    fake_machine.set_level(pin, 1 - down)
    loop_for(80)


loop_until(lambda: panel.link.online, 10000, "online")
loop_for(300)  # retained ack/config, birth state, NTP
gc.collect()
alloc = gc.mem_alloc()
# app = everything the firmware holds after start-up (code + objects), without the fakes and
# this script's own start (measured before the firmware imports)
print("HEAP total=%d app=%d imports=%d fakes=%d free=%d" % (
    alloc, alloc - base_alloc, imports_alloc - base_alloc, fakes_alloc, gc.mem_free()))

for name in PRESSES:
    if name == "seller_long":
        press("seller", 1700)  # force majeure
    else:
        press(name, 120)

loop_until(lambda: panel.journal.acked >= panel.journal.seq and panel.journal.seq > 0, 15000,
           "acks")
gc.collect()
print("HEAP_AFTER total=%d free=%d" % (gc.mem_alloc(), gc.mem_free()))
print("RESULT", json.dumps(summary()))
