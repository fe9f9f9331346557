"""Technician self-test: entered by holding Yes+No at boot, or from the REPL:

    import firmware.selftest as s; s.run(seconds=60)

Prints machine-readable lines on the serial console (the technician tool parses them; the
grammar is in README.md, "Self-test protocol"):

    SELFTEST START fw=<ver>
    SELFTEST LED <rate|thanks|status|seller> ok
    SELFTEST WIFI ok rssi=<dBm>          | SELFTEST WIFI fail <reason>
    SELFTEST MQTT ok <host>:<port>       | SELFTEST MQTT fail <reason>
    SELFTEST NTP ok <unix_ms>            | SELFTEST NTP fail <reason>
    SELFTEST PRESS <seconds>             (press each button now)
    SELFTEST BUTTON <yes|no|unsure|seller> <down|up>
    SELFTEST END

Each button press also lights an LED while held (yes=rate, no=thanks, unsure=status,
seller=seller). A reason is one word-ish token without spaces (no_ap_found, timeout, ...).
"""

from firmware import ntp, ui
from firmware.version import FW

BUTTONS = ("yes", "no", "unsure", "seller")
ECHO_LED = {"yes": 0, "no": 1, "unsure": 2, "seller": 3}


class SelfTest:
    LED_MS = 300  # each LED lit this long in the LED walk
    WIFI_TIMEOUT_MS = 15000
    NTP_TIMEOUT_MS = 2000
    SAMPLE_MS = 10
    DEBOUNCE_MS = 30

    def __init__(self, hal, cfg=None, cfg_error=None, out=print):
        self.hal = hal
        self.cfg = cfg
        self.cfg_error = cfg_error
        self.out = out

    def say(self, text):
        self.out("SELFTEST " + text)

    def _reason(self, e):
        text = str(e) or e.__class__.__name__
        return text.replace(" ", "_")[:60]

    def leds(self):
        hal = self.hal
        for name in ui.NAMES:
            try:
                hal.led(name, 100)
                hal.sleep_ms(self.LED_MS)
                hal.led(name, 0)
                self.say("LED %s ok" % name)
            except Exception as e:
                self.say("LED %s fail %s" % (name, self._reason(e)))

    def network(self):
        hal = self.hal
        if self.cfg is None:
            why = "config:" + self._reason(self.cfg_error or "missing")
            for what in ("WIFI", "MQTT", "NTP"):
                self.say("%s fail %s" % (what, why))
            return
        cfg = self.cfg
        try:
            if not hal.wifi_isconnected():
                hal.wifi_connect(cfg["wifi"]["ssid"], cfg["wifi"]["password"])
            waited = 0
            while not hal.wifi_isconnected() and waited < self.WIFI_TIMEOUT_MS:
                hal.sleep_ms(100)
                waited += 100
        except Exception as e:
            self.say("WIFI fail %s" % self._reason(e))
            self.say("MQTT fail no_wifi")
            self.say("NTP fail no_wifi")
            return
        if not hal.wifi_isconnected():
            self.say("WIFI fail %s" % hal.wifi_status())
            self.say("MQTT fail no_wifi")
            self.say("NTP fail no_wifi")
            return
        self.say("WIFI ok rssi=%s" % hal.wifi_rssi())
        m = cfg["mqtt"]
        try:
            c = hal.mqtt(
                "%s-%s-selftest" % (cfg["site"], cfg["device"]),
                m["host"],
                m["port"],
                m.get("user"),
                m.get("password"),
                m.get("keepalive") or 60,
                bool(m.get("ssl")),
            )
            c.set_callback(lambda topic, msg: None)
            c.connect(True, None)
            c.disconnect()
            self.say("MQTT ok %s:%s" % (m["host"], m["port"]))
        except Exception as e:
            self.say("MQTT fail %s" % self._reason(e))
        try:
            up = hal.ticks_ms()
            data = hal.ntp_query(cfg["ntp"]["host"], ntp.ntp_request(), self.NTP_TIMEOUT_MS)
            recv = hal.ticks_ms()
            _at, unix_ms = ntp.ntp_parse(data, 0, hal.ticks_diff(recv, up))
            self.say("NTP ok %d" % unix_ms)
        except Exception as e:
            self.say("NTP fail %s" % self._reason(e))

    def buttons(self, seconds):
        """Echo each debounced press/release for `seconds` (Ctrl-C ends early)."""
        hal = self.hal
        self.say("PRESS %d" % seconds)
        stable = {}
        changed_at = {}
        for name in BUTTONS:
            stable[name] = hal.pressed(name)
            changed_at[name] = None
        start = hal.ticks_ms()
        try:
            while hal.ticks_diff(hal.ticks_ms(), start) < seconds * 1000:
                now = hal.ticks_ms()
                for name in BUTTONS:
                    level = hal.pressed(name)
                    if level == stable[name]:
                        changed_at[name] = None
                    elif changed_at[name] is None:
                        changed_at[name] = now
                    elif hal.ticks_diff(now, changed_at[name]) >= self.DEBOUNCE_MS:
                        stable[name] = level
                        changed_at[name] = None
                        self.say("BUTTON %s %s" % (name, "down" if level else "up"))
                        hal.led(ui.NAMES[ECHO_LED[name]], 100 if level else 0)
                hal.wdt_feed()
                hal.sleep_ms(self.SAMPLE_MS)
        except KeyboardInterrupt:
            pass
        for name in ui.NAMES:
            hal.led(name, 0)

    def run(self, seconds=60):
        self.say("START fw=%s" % FW)
        self.leds()
        self.network()
        self.buttons(seconds)
        self.say("END")


def run(seconds=60, hal=None, cfg=None, config_path="/config.json"):
    """Run the self-test; from the REPL with no arguments it reads /config.json itself."""
    import sys

    from firmware import config
    from firmware.boot import chip

    c = chip(getattr(sys.implementation, "_machine", ""))  # the S3 has other pins (boot.py)
    err = None
    if cfg is None:
        try:
            with open(config_path) as f:
                cfg = config.load(f.read(), c)
        except Exception as e:  # a broken config still lets the technician test the hardware
            err = e
            cfg = None
    if hal is None:
        from firmware.hal import Hal

        hal = Hal(cfg["pins"] if cfg else config.defaults(c)["pins"])
    SelfTest(hal, cfg, err).run(seconds)
