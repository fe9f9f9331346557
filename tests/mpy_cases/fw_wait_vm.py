# Presses while the panel waits on the network, on the REAL MicroPython VM (unix port), run by
# tests/firmware/test_network_waits.py:
#
#   micropython fw_wait_vm.py LIB DATA MODE HOST PORT NTP DNS_PORT PUMP [BUTTON [MDNS_PORT]]
#
# MODE "connect": one Panel.step() connects to HOST:PORT (a server that accepts and never
# answers: umqtt waits TIMEOUT_S for CONNACK). MODE "ntp": the link is up on a real broker, the
# NTP server never answers (a 1.5 s wait). HOST may be a name: it is looked up by firmware/dns.py
# at 127.0.0.1:DNS_PORT. The "yes" button is pressed from 700 to 850 ms after the step starts
# (a 150 ms press) by a scripted pin (BUTTON, default "yes"). PUMP 0 switches the button
# sampling during waits off (hal.idle = None): the control run, which must miss the press.
# A name ending in ".local" is asked by one-shot mDNS at 127.0.0.1:MDNS_PORT. Prints
#   WAITED <ms the step took>   EVENTS <ev@ms-after-start ...>   ERROR <link error>
#   LEDS <name@ms-after-start=pct ...>   every LED write (the PWMs are recorders)
import sys
import time

import fake_network
import install_fakes  # noqa: F401

LIB, DATA, MODE, HOST, PORT, NTP, DNS_PORT, PUMP = sys.argv[1:9]
BUTTON = sys.argv[9] if len(sys.argv) > 9 else "yes"
MDNS_PORT = int(sys.argv[10]) if len(sys.argv) > 10 else 0
sys.path.insert(0, LIB)

from firmware import config, journal  # noqa: E402

cfg = config.load(
    '{"site": "s", "device": "d", "wifi": {"ssid": "shop"}, '
    '"mqtt": {"host": "%s", "port": %s}, "ntp": {"host": "%s"}}' % (HOST, PORT, NTP)
)
from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402
from firmware.memfs import unacked

fake_network.connected = True
hal = Hal(cfg["pins"], root=DATA)
hal.dns = ("127.0.0.1", int(DNS_PORT))
if MDNS_PORT:
    hal.mdns = ("127.0.0.1", MDNS_PORT)
panel = Panel(hal, cfg)
if PUMP == "0":
    hal.idle = None

START = [None]


class ScriptedButton:
    """Pressed (pin low) from 700 to 850 ms after START."""

    def value(self):
        if START[0] is None:
            return 1
        d = time.ticks_diff(time.ticks_ms(), START[0])
        return 0 if 700 <= d < 850 else 1


hal._buttons[BUTTON] = ScriptedButton()
LEDS = []


class RecordingPwm:
    def __init__(self, name):
        self.name = name

    def duty_u16(self, d):
        if START[0] is not None:
            LEDS.append("%s@%d=%d" % (self.name, time.ticks_diff(time.ticks_ms(), START[0]), d * 100 // 65535))


for _name in hal._leds:
    hal._leds[_name] = RecordingPwm(_name)

if MODE == "ntp":  # get online first (real broker), then let the NTP sync wait
    panel.ntp.next_ms = 10**12  # no sync while connecting
    t = time.ticks_ms()
    while not panel.link.online and time.ticks_diff(time.ticks_ms(), t) < 5000:
        panel.step()
        time.sleep_ms(10)
    panel.ntp.next_ms = 0

START[0] = time.ticks_ms()
start_up = panel.uptime.update(START[0])
panel.step()
print("WAITED", time.ticks_diff(time.ticks_ms(), START[0]))
out = []
for _seq, payload in unacked(panel.journal):
    boot, up, t, ev, hold = journal.unpack_event(payload)
    out.append("%s@%d" % (ev, up - start_up))
print("EVENTS", " ".join(out))
print("ERROR", panel.link.last_error)
print("LEDS", " ".join(LEDS))
