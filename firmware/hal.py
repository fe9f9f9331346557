"""Device HAL: the only firmware module that touches machine, network and time (its MQTT client,
umqtt.simple with timeouts, is firmware/mqtt.py, loaded on the first connect).

The rest of the firmware talks to a `Hal` object with the small interface below (see README.md,
"HAL"). simulator/host_hal.py implements the same interface for CPython; under the MicroPython
unix port this very module runs against the fakes in tests/mpy (machine, network).

    hal = Hal(pins_cfg)                   # pins from /config.json "pins"
    hal.pressed(name) -> 1|0              # "yes" "no" "unsure" "seller", active_low applied
    hal.led(name, pct)                    # "rate" "thanks" "status" "seller", brightness 0..100
    hal.ticks_ms() / ticks_diff(a, b) / ticks_add(t, d) / sleep_ms(ms)
    hal.set_wall_ms(ms) / wall_ms()       # RTC in Unix ms (None until set)
    hal.ntp_query(host, request, timeout_ms) -> reply bytes (one UDP exchange; OSError on failure)
    hal.idle = fn                         # the app's button sampler: socket waits run it
                                          # (firmware/mqtt.py wait_io), so no press is missed
    hal.wifi_connect(ssid, pw) / wifi_isconnected() / wifi_rssi() / wifi_status() / wifi_disconnect()
    hal.mqtt(client_id, host, port, user, password, keepalive, ssl) -> client (firmware/mqtt.py)
    hal.path(name) -> file path for the journal / persisted config
    hal.mem_free() / mem_alloc() / collect()
    hal.wdt_start(timeout_ms) / wdt_feed() / reset()
    hal.random(n) -> int in 0..n-1 (jitter)
    hal.log(line)                         # serial console
"""

import gc
import time

import machine
import network

BUTTONS = ("yes", "no", "unsure", "seller")
LEDS = ("rate", "thanks", "status", "seller")

# MicroPython's embedded epoch: 2000-01-01 on the ESP32, 1970 on the unix port.
_EPOCH_OFFSET_S = 946684800 if time.gmtime(0)[0] == 2000 else 0


class Hal:
    """The ESP32 HAL. `pins` is the "pins" object of /config.json; files live under `root`."""

    def __init__(self, pins, root="/"):
        self.root = root if root.endswith("/") else root + "/"
        Pin = machine.Pin
        low = pins.get("active_low", True)
        self._active = 0 if low else 1
        pull = Pin.PULL_UP if low else Pin.PULL_DOWN
        self._buttons = {}
        for name in BUTTONS:
            self._buttons[name] = Pin(pins[name], Pin.IN, pull)
        self._leds = {}
        self._led_pct = {}
        for name in LEDS:
            key = "led_" + name
            if key in pins:
                pwm = machine.PWM(Pin(pins[key], Pin.OUT), freq=1000)
                pwm.duty_u16(0)
                self._leds[name] = pwm
                self._led_pct[name] = 0
        self._wlan = network.WLAN(network.STA_IF)
        self._wdt = None
        self._wall_set = False
        self.idle = None  # Panel._idle: samples the buttons while a socket wait is in progress

    # ---- pins ----
    def pressed(self, name):
        return 1 if self._buttons[name].value() == self._active else 0

    def led(self, name, pct):
        pwm = self._leds.get(name)
        if pwm is None or self._led_pct[name] == pct:
            return
        self._led_pct[name] = pct
        if hasattr(pwm, "duty_u16"):
            pwm.duty_u16(pct * 65535 // 100)
        else:
            pwm.duty(pct * 1023 // 100)

    # ---- time ----
    # Pass-throughs are the MicroPython built-ins themselves: a def wrapper would cost the
    # panel ~250 bytes of heap each (function object, bytecode, names) for nothing.
    ticks_ms = staticmethod(time.ticks_ms)
    ticks_diff = staticmethod(time.ticks_diff)
    ticks_add = staticmethod(time.ticks_add)
    sleep_ms = staticmethod(time.sleep_ms)

    def set_wall_ms(self, unix_ms):
        t = time.gmtime(unix_ms // 1000 - _EPOCH_OFFSET_S)
        try:
            # RTC tuple: (year, month, day, weekday, hours, minutes, seconds, subseconds)
            machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
            self._wall_set = True
        except Exception:  # no settable RTC (unix port): the clock module keeps its own offset
            pass

    def wall_ms(self):
        if not self._wall_set:
            return None
        return (time.time() + _EPOCH_OFFSET_S) * 1000

    def ntp_query(self, host, request, timeout_ms=1500):
        """Send one SNTP request (clock.ntp_request()) over UDP; the reply bytes, or OSError."""
        from firmware import ntp  # the app loads it for the sync anyway (and unloads it after)

        return ntp.exchange(self, host, request, timeout_ms)

    # ---- network ----
    def wifi_connect(self, ssid, password):
        w = self._wlan
        w.active(True)
        w.connect(ssid, password)

    def wifi_disconnect(self):
        try:
            self._wlan.disconnect()
        except Exception:
            pass

    def wifi_isconnected(self):
        return self._wlan.isconnected()

    def wifi_rssi(self):
        try:  # the protocol's range: a driver's -128 or a positive glitch must not void the state
            return max(-127, min(0, int(self._wlan.status("rssi"))))
        except Exception:
            return None

    def wifi_status(self):
        """A short reason for the self-test: got_ip, no_ap_found, wrong_password, ..."""
        try:
            code = self._wlan.status()
        except Exception:
            return "unknown"
        for name in ("GOT_IP", "NO_AP_FOUND", "WRONG_PASSWORD", "CONNECT_FAIL", "CONNECTING", "IDLE"):
            if getattr(network, "STAT_" + name, None) == code:
                return name.lower()
        return "status_%s" % code

    def mqtt(self, client_id, host, port, user=None, password=None, keepalive=60, ssl=False):
        from firmware import mqtt  # umqtt.simple loads with the first connect

        mqtt.HAL = self
        return mqtt.MqttClient(client_id, host, port, user, password, keepalive, ssl)

    # ---- storage, memory, watchdog ----
    def path(self, name):
        return self.root + name

    mem_free = staticmethod(gc.mem_free)
    mem_alloc = staticmethod(gc.mem_alloc)
    collect = staticmethod(gc.collect)

    def wdt_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    reset = staticmethod(machine.reset)

    def random(self, n):
        import os

        b = os.urandom(4)
        return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) % n if n > 0 else 0

    log = staticmethod(print)
