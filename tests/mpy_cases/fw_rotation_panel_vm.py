# A panel that keeps pressing while its MQTT password is rotated over the air, on the real
# MicroPython VM (unix port), run by tests/gateway/test_password_rotation.py:
#
#   micropython -X heapsize=100k fw_rotation_panel_vm.py DATA_DIR LIB
#
# DATA_DIR holds the panel's /config.json (written by the test: the password is in no argv) and
# its flash files (journal, pw.new, pw.json). The panel boots as firmware.main.boot() does, then
# presses "yes" every ~400 ms until DATA_DIR/stop appears, then waits until the gateway's
# retained ack covers every event and prints
#   RESULT {"acked": N, "seq": N, "pending": N, "boot": B, "pwv": V, "pwn": V, "connects": C}
import gc
import json
import os
import sys
import time

import fake_machine
import install_fakes  # noqa: F401 - puts the fake machine/network into sys.modules

DATA, LIB = sys.argv[1:3]
sys.path.insert(0, LIB)

from firmware import config, unload  # noqa: E402

with open(DATA + "/config.json") as f:
    cfg = config.load(f.read())
del config
unload("firmware.config", "protocol.topics", "protocol.config", "protocol.checks")
gc.collect()  # as firmware.main.boot() does: the config code is freed before the Panel's loads
from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402

hal = Hal(cfg["pins"], root=DATA + "/")
panel = Panel(hal, cfg)
hal.wdt_start(Panel.WDT_MS)
del cfg
from firmware import main  # noqa: E402

pins = panel.cfg["pins"]


def stopped():
    try:
        os.stat(DATA + "/stop")
        return True
    except OSError:
        return False


def loop_for(ms):
    start = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), start) < ms:
        main.loop(panel, hal, max_steps=1)


def press(name):
    pin = pins[name]
    fake_machine.set_level(pin, 0)  # active low
    loop_for(120)
    fake_machine.set_level(pin, 1)
    loop_for(80)


while not stopped():
    press("yes")
    loop_for(200)
start = time.ticks_ms()
while panel.journal.acked < panel.journal.seq and time.ticks_diff(time.ticks_ms(), start) < 30000:
    main.loop(panel, hal, max_steps=1)
link = panel.link
print(
    "RESULT",
    json.dumps(
        {
            "acked": panel.journal.acked,
            "seq": panel.journal.seq,
            "pending": panel.journal.pending(),
            "boot": panel.boot,
            "pwv": link.pw[0] if link.pw else None,
            "pwn": link.pw_new[0] if link.pw_new else None,
            "connects": link.connects,
            "error": link.last_error,
        }
    ),
)
