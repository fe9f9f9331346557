"""Device HAL: the only firmware module that touches machine, network and time (its MQTT client
is firmware/mqtt.py, loaded on the first connect).

The rest of the firmware talks to a `Hal` object with the small interface below (see README.md,
"HAL"). simulator/host_hal.py implements the same interface for CPython; under the MicroPython
unix port this very module runs against the fakes in tests/mpy (machine, network).

    hal = Hal(pins_cfg)                   # pins from /config.json "pins"
    hal.pressed(name) -> 1|0              # "yes" "no" "unsure" "seller", active_low applied
    hal.led(name, pct)                    # "rate" "thanks" "status" "seller", brightness 0..100
    hal.ticks_ms() / ticks_diff(a, b) / ticks_add(t, d)
    hal.sleep_ms(ms)                      # waits without spinning (see __init__)
    hal.set_wall_ms(ms)                   # RTC in Unix ms
    hal.ntp_query(host, request, timeout_ms) -> reply bytes (one UDP exchange; OSError on failure)
    hal.idle = fn                         # the app's button sampler: socket waits run it
                                          # (firmware/mqtt.py wait_io), so no press is missed
    hal.wifi_connect(ssid, pw) / wifi_isconnected() / wifi_rssi() / wifi_disconnect()
    hal.wifi_status() -> "got_ip" "connecting" "idle" "no_ap_found" "wrong_password" ...
                                          # "idle": the driver is not trying (connect needed)
    hal.mqtt(client_id, host, port, user, password, keepalive, ssl) -> client (firmware/mqtt.py)
    hal.reset_cause() -> "power_on" "hard" "watchdog" "deep_sleep" "soft" "unknown"
    hal.path(name) -> file path for the journal / persisted config
    hal.mem_free() / mem_alloc() / collect()
    hal.wdt_start(timeout_ms) / wdt_feed() / reset() / restart()   # restart: soft reset
    hal.random(n) -> int in 0..n-1 (jitter)
    hal.log(line)                         # serial console
"""

import gc
import select
import time

import machine
import network

BUTTONS = ("yes", "no", "unsure", "seller")
LEDS = ("rate", "thanks", "status", "seller")
_RESETS = ("unknown", "power_on", "hard", "watchdog", "deep_sleep", "soft")  # by reset_cause()

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
        for name in LEDS:
            key = "led_" + name
            if key in pins:
                # duty given at construction: without it the ESP32 starts a PWM at 50 % duty
                # (ports/esp32/machine_pwm.c), and every LED would glow until the first frame
                pwm = machine.PWM(Pin(pins[key], Pin.OUT), freq=1000, duty_u16=0)  # pyright: ignore[reportCallIssue]
                self._leds[name] = pwm
        self._wlan = network.WLAN(network.STA_IF)
        self._wdt = None
        self.idle = None  # Panel._idle: samples the buttons while a socket wait is in progress
        # The main loop's sleep. time.sleep_ms spins on the ESP32 for any wait shorter than a
        # FreeRTOS tick (10 ms: ports/esp32/mphalport.c mp_hal_delay_ms does the rest in
        # mp_hal_delay_us, a busy loop), so sleep_ms(10) kept the CPU at 100 % while idle. A
        # poll with nothing registered waits in ulTaskNotifyTake (MICROPY_EVENT_POLL_HOOK): the
        # CPU sleeps until the next tick. ipoll: a bound method kept once, no garbage per call.
        self.sleep_ms = select.poll().ipoll

    # ---- pins ----
    def pressed(self, name):
        return 1 if self._buttons[name].value() == self._active else 0

    def led(self, name, pct):
        pwm = self._leds.get(name)
        if pwm is not None:  # (the app writes only the LEDs whose brightness changes)
            pwm.duty_u16(pct * 65535 // 100)

    # ---- time ----
    # Pass-throughs are the MicroPython built-ins themselves: a def wrapper would cost the
    # panel ~250 bytes of heap each (function object, bytecode, names) for nothing.
    ticks_ms = staticmethod(time.ticks_ms)
    ticks_diff = staticmethod(time.ticks_diff)
    ticks_add = staticmethod(time.ticks_add)

    def set_wall_ms(self, unix_ms):
        t = time.gmtime(unix_ms // 1000 - _EPOCH_OFFSET_S)
        try:
            # RTC tuple: (year, month, day, weekday, hours, minutes, seconds, subseconds)
            machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
        except Exception:  # no settable RTC (unix port): the clock module keeps its own offset
            pass

    def ntp_query(self, host, request, timeout_ms=1500):
        """Send one SNTP request (ntp.ntp_request()) over UDP; the reply bytes, or OSError."""
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
        """A short reason (self-test, link): got_ip, connecting, idle, no_ap_found, ... The ESP32
        driver keeps reconnecting by itself once asked (ports/esp32/network_wlan.c), so only
        "idle" (never asked, or disconnected) means a connect() is needed."""
        try:
            code = self._wlan.status()
        except Exception:
            return "unknown"
        # one string, split when asked (rarely): eight string constants would stay in the heap
        for (
            name
        ) in "GOT_IP CONNECTING IDLE NO_AP_FOUND WRONG_PASSWORD BEACON_TIMEOUT HANDSHAKE_TIMEOUT CONNECT_FAIL".split():
            if getattr(network, "STAT_" + name, None) == code:
                return name.lower()
        return "status_%s" % code

    def mqtt(self, client_id, host, port, user=None, password=None, keepalive=60, ssl=False):
        from firmware import mqtt  # the client loads with the first connect

        return mqtt.MqttClient(self, client_id, host, port, user, password, keepalive, ssl)

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
    restart = staticmethod(machine.soft_reset)  # a new VM: heap and interned names start empty

    def reset_cause(self):
        """Why this run started: machine.reset_cause() is the ESP32 port's enum 1..5
        (ports/esp32/modmachine.c: PWRON, HARD, WDT, DEEPSLEEP, SOFT; 0 for causes it does not
        map). Brownout reads as power-on, machine.reset() and a panic as hard."""
        c = machine.reset_cause()
        return _RESETS[c] if type(c) is int and 0 <= c <= 5 else "unknown"

    def random(self, n):
        import os

        b = os.urandom(4)
        return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) % n if n > 0 else 0

    log = staticmethod(print)
