# The device's boot on the real MicroPython VM: firmware.main.start() as /main.py runs it, with
# /config.json in DATA_DIR, the fake machine/network and no broker (the link keeps retrying).
#
#   micropython -X heapsize=100k tests/mpy_cases/fw_mem_boot.py DATA_DIR [LIB [STEPS]]
#
# A new /config.json is checked, kept, and the panel restarts (firmware/main.py): then this
# prints RESTART and ends, like the VM it stands for; run it again on the same DATA_DIR for the
# boot that follows. Prints, after STEPS (default 50) main-loop steps:
#   HEAP alloc=<gc.mem_alloc()> free=<gc.mem_free()> boot=<growth since before firmware.main>
#   LOADED <firmware/protocol modules in sys.modules>
#   IDLE <bytes> <steps>   garbage made by that many idle steps (10 ms apart, offline):
#                          the main loop runs 100 a second, so this must stay near zero
import gc
import json
import sys

import fake_machine
import install_fakes  # noqa: F401 - the firmware's hal imports machine/network

DATA = sys.argv[1]
if len(sys.argv) > 2 and sys.argv[2]:
    sys.path.insert(0, sys.argv[2])
STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 50

try:
    open(DATA + "/config.json").close()
except OSError:
    with open(DATA + "/config.json", "w") as f:
        f.write(
            json.dumps(
                {"site": "s1", "device": "p1", "wifi": {"ssid": "shop"}, "mqtt": {"host": "127.0.0.1", "port": 9}}
            )
        )
gc.collect()
base = gc.mem_alloc()

import firmware.main  # noqa: E402 - what the device's /main.py does first


def make_hal(pins):
    from firmware.hal import Hal  # main's default, with the data folder as the flash root

    return Hal(pins, root=DATA)


try:
    panel = firmware.main.start(make_hal, DATA + "/config.json", max_steps=STEPS)
except fake_machine.Reset:
    print("RESTART")
    sys.exit(0)
gc.collect()
print("HEAP alloc=%d free=%d boot=%d" % (gc.mem_alloc(), gc.mem_free(), gc.mem_alloc() - base))
print("LOADED " + " ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("firmware", "protocol", "umqtt"))))
print("STEPS %d seq %d boot %d" % (STEPS, panel.journal.seq, panel.boot))

t = panel.ticks
gc.collect()
gc.disable()  # count every byte allocated, collected or not
before = gc.mem_alloc()
for i in range(1, 401):
    panel.step(t + i * 10)
print("IDLE %d %d" % (gc.mem_alloc() - before, 400))
gc.enable()
