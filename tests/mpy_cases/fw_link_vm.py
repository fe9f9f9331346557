# The panel's link through network faults, on the REAL MicroPython VM (unix port), run by
# tests/firmware/test_link_recovery.py:
#
#   micropython fw_link_vm.py LIB DATA HOST PORT ROOT MODE
#
# The whole panel (device HAL over the fakes, the firmware's MQTT client, real sockets to the
# broker or the test's proxy) stepped by firmware.main.loop as on the device, on a clock that
# runs on the real one plus most of every sleep the loop asks for (a tenth of it really
# passes): a minute of panel time passes in ~6 s, while the broker and the network stay real.
# tests/mpy/fake_network.py, driver-like, runs on the same clock.
# MODE "outage": online; the access point goes for 60 s; a press meanwhile; it comes back.
#   Prints RECOVERED <ms from the access point's return to the link being up again> and the
#   connect() calls the firmware made (JOINS), then waits for the press to be acked.
# MODE "halfopen": online through the test's proxy, which goes silent (no FIN, no RST); the
#   panel must notice within 1.5 x keepalive, reconnect (the proxy forwards new connections)
#   and get its press acked. Prints LOST <ms> <error>.
# Always: RESULT {...} at the end (acked, seq, connects, console lines).
import json
import sys
import time

import fake_network
import install_fakes  # noqa: F401

LIB, DATA, HOST, PORT, ROOT, MODE = sys.argv[1:7]
sys.path.insert(0, LIB)

from firmware import config, main  # noqa: E402
from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402

WARP = [0]


def ticks():
    return time.ticks_add(time.ticks_ms(), WARP[0])


def sleep(ms):
    # a tenth of each sleep really passes: panel time runs ~10x real time, and the real broker
    # still answers a ping well within the client's 1.5 x keepalive of panel time
    WARP[0] += ms - ms // 10
    time.sleep_ms(ms // 10)


console = []


def log(line):
    console.append(line)
    print(line)


cfg = config.load(
    json.dumps(
        {
            "site": "vm-site",
            "device": "vm-panel",
            "wifi": {"ssid": "shop", "password": "pw"},
            "mqtt": {"host": HOST, "port": int(PORT), "root": ROOT, "keepalive": 10},
            "ntp": {"host": "127.0.0.1:9"},
            "timings": {"ack_timeout_s": 5},
        }
    )
)
hal = Hal(cfg["pins"], root=DATA)
hal.ticks_ms = ticks
hal.sleep_ms = sleep
hal.log = log
fake_network.clock = ticks
panel = Panel(hal, cfg)
panel.ntp.next_ms = 10**8  # no NTP in these runs (its UDP wait is real time)
link = panel.link
pin = cfg["pins"]["yes"]


def run_until(cond, ms, what):
    t = ticks()
    while not cond():
        if time.ticks_diff(ticks(), t) > ms:
            print("TIMEOUT", what)
            return False
        main.loop(panel, hal, log, 1)
    return True


def press():
    import fake_machine

    fake_machine.set_level(pin, 0)
    run_until(lambda: False, 150, "")
    fake_machine.set_level(pin, 1)
    run_until(lambda: False, 100, "")


ok = run_until(lambda: link.online, 30000, "online")
if ok and MODE == "outage":
    run_until(lambda: False, 3000, "")  # steady: retained ack, birth state
    fake_network.ap(False)
    gone = ticks()
    run_until(lambda: False, 20000, "")
    press()  # journaled while offline
    run_until(lambda: time.ticks_diff(ticks(), gone) >= 60000, 70000, "outage")
    fake_network.ap(True)
    back = ticks()
    if run_until(lambda: link.online, 120000, "recovery"):
        print("RECOVERED %d" % time.ticks_diff(ticks(), back))
    print("JOINS %d" % len(fake_network.joins))
    run_until(lambda: panel.journal.acked >= panel.journal.seq >= 1, 30000, "ack")
elif ok and MODE == "halfopen":
    run_until(lambda: False, 3000, "")
    print("SILENCE")
    time.sleep_ms(3000)  # real time: the test's proxy goes silent meanwhile (2.5 s after connecting)
    t = ticks()
    if run_until(lambda: not link.online, 120000, "noticed"):
        print("LOST %d %s" % (time.ticks_diff(ticks(), t), link.last_error))
    run_until(lambda: link.online, 30000, "reconnect")
    press()
    run_until(lambda: panel.journal.acked >= panel.journal.seq >= 1, 30000, "ack")
print(
    "RESULT "
    + json.dumps(
        {
            "acked": panel.journal.acked,
            "seq": panel.journal.seq,
            "connects": link.connects,
            "online": link.online,
            "console": console,
        }
    )
)
