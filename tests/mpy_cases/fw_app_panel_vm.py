# The whole panel app on the real MicroPython VM (unix port), run by tests/firmware/test_panel_on_micropython.py:
#
#   micropython -X heapsize=100k fw_app_panel_vm.py HOST PORT ROOT DATA_DIR NTP_HOST PRESSES LIB [FROZEN]
#
# LIB is the `make firmware` bundle's lib/ folder: the .mpy files load exactly as on the panel
# (ahead of the repo's .py sources, which would also cost compile-time RAM the device never spends).
# FROZEN (optional) goes ahead of LIB on sys.path, as a stock image's frozen modules (".frozen")
# come before /lib: the test puts a different umqtt there.
# firmware.main.loop() steps the Panel, as on the device.
# machine/network are the fakes of tests/mpy (install_fakes); firmware.hal, the firmware's MQTT
# client, the journal on DATA_DIR and the sockets to the broker are all real. The script presses
# buttons through the fake pins (with contact bounce), waits until the gateway's retained ack
# covers every event, and prints machine-readable lines:
#   HEAP total=<gc.mem_alloc() after start-up> app=<what the firmware added> fakes=<before> free=<...>
#   MODULES <firmware/protocol/umqtt modules loaded after start-up>
#   RESULT {"acked": N, "seq": N, "pending": N, ..., "state": <Panel.state()>}
import gc
import json
import sys
import time

import fake_machine
import install_fakes  # noqa: F401 - puts the fake machine/network into sys.modules
import micropython

gc.collect()
fakes_alloc = gc.mem_alloc()

HOST, PORT, ROOT, DATA, NTP_HOST, PRESSES, LIB = sys.argv[1:8]
sys.path.insert(0, LIB)
if len(sys.argv) > 8:
    sys.path.insert(0, sys.argv[8])  # a stock image's frozen modules load before /lib
PORT = int(PORT)
PRESSES = PRESSES.split(",")

# /config.json of this panel (the second boot in the test finds the same one)
with open(DATA + "/config.json", "w") as f:
    f.write(
        json.dumps(
            {
                "site": "vm-site",
                "device": "vm-panel",
                "wifi": {"ssid": "shop", "password": "pw"},
                "mqtt": {"host": HOST, "port": PORT, "root": ROOT, "keepalive": 30},
                "ntp": {"host": NTP_HOST},
                "timings": {"ack_timeout_s": 5},
            }
        )
    )

gc.collect()
base_alloc = gc.mem_alloc()

# The device's start, as firmware.main.boot() does it (that function runs on the VM in
# tests/firmware/test_heap_budget.py, without this script's and the broker test's ~4 KB): validate the
# config, unload it, then the Panel's code, the HAL and the Panel.
from firmware import config, unload  # noqa: E402

with open(DATA + "/config.json") as f:
    cfg = config.load(f.read())
del config
unload("firmware.config", "protocol.topics", "protocol.config", "protocol.checks")
gc.collect()  # as firmware.main.boot() does: the config code is freed before the Panel's loads
from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402

hal = Hal(cfg["pins"], root=DATA)
panel = Panel(hal, cfg)
hal.wdt_start(Panel.WDT_MS)
del cfg
# firmware.main is resident on the device (its loop steps the Panel): loaded here too, so it
# counts in `app`. On the device it loads first; here it comes after the Panel, because this
# script and the fakes take ~17 KB of the VM's 100 KB that the device keeps for itself.
from firmware import main  # noqa: E402

pins = panel.cfg["pins"]


def loop_for(ms):
    start = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), start) < ms:
        main.loop(panel, hal, max_steps=1)  # one step and the LOOP_MS sleep, as on the device


def loop_until(cond, ms, what):
    start = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), start) > ms:
            print("TIMEOUT", what)
            print("RESULT", json.dumps(summary()))
            sys.exit(2)
        main.loop(panel, hal, max_steps=1)


def summary():
    link = panel.link
    return {
        "acked": panel.journal.acked,
        "seq": panel.journal.seq,
        "pending": panel.journal.pending(),
        "boot": panel.boot,
        "online": link.online,
        "connects": link.connects,
        "published": link.published,
        "synced": panel.wall.is_synced,
        "wdt_feeds": fake_machine.wdt_feeds,
        "leds": dict((k, v.duty_u16() * 100 // 65535) for k, v in fake_machine.pwms.items()),
        "error": link.last_error,
        "oversize": link.oversize,
        "state": panel.state(),
    }


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
free = gc.mem_free()
# app = everything the firmware holds after start-up (code + objects), without the fakes and
# this script's own start (measured before the firmware imports)
print("HEAP total=%d app=%d fakes=%d free=%d" % (alloc, alloc - base_alloc, fakes_alloc, free))
micropython.qstr_info()  # interned names: a part of the heap no gc.collect() returns
# the firmware's modules loaded now (their .mpy sizes feed the ESP32 estimate)
print("MODULES " + " ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("firmware", "protocol", "umqtt"))))

for name in PRESSES:
    if name == "seller_long":
        press("seller", 1700)  # force majeure
    else:
        press(name, 120)

loop_until(lambda: panel.journal.acked >= panel.journal.seq and panel.journal.seq > 0, 15000, "acks")
gc.collect()
print("HEAP_AFTER total=%d free=%d" % (gc.mem_alloc(), gc.mem_free()))
print("RESULT", json.dumps(summary()))
