"""Device HAL: the only firmware module that touches machine, network, time and umqtt.simple.

The rest of the firmware talks to a `Hal` object with the small interface below (see README.md,
"HAL"). simulator/host_hal.py implements the same interface for CPython; under the MicroPython
unix port this very module runs against the fakes in tests/mpy (machine, network).

    hal = Hal(pins_cfg)                   # pins from /config.json "pins"
    hal.pressed(name) -> 1|0              # "yes" "no" "unsure" "seller", active_low applied
    hal.led(name, pct)                    # "rate" "thanks" "status" "seller", brightness 0..100
    hal.ticks_ms() / ticks_diff(a, b) / ticks_add(t, d) / sleep_ms(ms)
    hal.set_wall_ms(ms) / wall_ms()       # RTC in Unix ms (None until set)
    hal.ntp_query(host, request, timeout_ms) -> reply bytes (one UDP exchange; OSError on failure)
    hal.wifi_connect(ssid, pw) / wifi_isconnected() / wifi_rssi() / wifi_status() / wifi_disconnect()
    hal.mqtt(client_id, host, port, user, password, keepalive, ssl) -> client (see MqttClient)
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


class TimedSocket:
    """Wraps umqtt.simple's socket so that 'blocking' means 'blocking with a timeout'.

    umqtt.simple switches its socket to fully blocking after the first byte of every incoming
    packet and writes with no timeout; on a half-dead link that would freeze the button loop
    forever. Here setblocking(True) becomes settimeout(timeout_s): a stuck read or write raises
    OSError(ETIMEDOUT) and the link reconnects.
    """

    def __init__(self, sock, timeout_s):
        self.sock = sock
        self.timeout_s = timeout_s
        self.setblocking(True)

    def setblocking(self, flag):
        if flag:
            try:
                self.sock.settimeout(self.timeout_s)
            except (AttributeError, OSError):  # an SSL socket without settimeout
                self.sock.setblocking(True)
        else:
            self.sock.setblocking(False)

    def read(self, n):
        return self.sock.read(n)

    def write(self, buf, n=None):
        if n is None:
            return self.sock.write(buf)
        return self.sock.write(buf, n)

    def close(self):
        self.sock.close()


class _TimedSocketModule:
    """Stands in for the `socket` module inside umqtt.simple: every socket it makes has a
    timeout before connect(), so an unreachable broker fails after timeout_s."""

    def __init__(self, module, timeout_s):
        self.module = module
        self.timeout_s = timeout_s

    def socket(self, *args):
        s = self.module.socket(*args)
        s.settimeout(self.timeout_s)
        return s

    def getaddrinfo(self, *args):
        return self.module.getaddrinfo(*args)


class MqttClient:
    """The HAL's MQTT client: umqtt.simple with timeouts and an explicit last will.

    connect(clean_session=True, will=None)   will = (topic, payload, retain, qos)
    publish(topic, payload, retain=False, qos=0)
    subscribe(topic, qos=0)
    set_callback(cb)                          cb(topic: bytes, payload: bytes)
    check_msg()                               non-blocking: handles at most one incoming packet
    ping() / disconnect() / close()           close() drops the socket without DISCONNECT
    Every failure raises an exception (OSError, MQTTException, AssertionError from a torn
    packet): the caller treats any exception as "connection lost".
    """

    TIMEOUT_S = 3  # per socket operation; a LAN broker answers in milliseconds

    def __init__(self, client_id, host, port, user=None, password=None, keepalive=60, ssl=False):
        from umqtt import simple
        import socket
        setattr(simple, "socket", _TimedSocketModule(socket, self.TIMEOUT_S))
        self.client = simple.MQTTClient(client_id, host, port=port, user=user, password=password,
                                        keepalive=keepalive, ssl=ssl)
        self.connected = False

    def set_callback(self, cb):
        self.client.set_callback(cb)

    def connect(self, clean_session=True, will=None):
        c = self.client
        if will:
            c.set_last_will(will[0], will[1], retain=will[2], qos=will[3])
        try:
            c.connect(clean_session=clean_session)
            c.sock = TimedSocket(c.sock, self.TIMEOUT_S)
        except Exception:
            self.close()
            raise
        self.connected = True

    def publish(self, topic, payload, retain=False, qos=0):
        self.client.publish(topic, payload, retain, qos)

    def subscribe(self, topic, qos=0):
        self.client.subscribe(topic, qos)

    def check_msg(self):
        return self.client.check_msg()

    def ping(self):
        self.client.ping()

    def disconnect(self):
        try:
            self.client.disconnect()
        except Exception:
            pass
        self.close()

    def close(self):
        self.connected = False
        sock = self.client.sock
        self.client.sock = None
        if sock is not None:
            try:
                sock.close()
            except Exception:
                pass


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
        self._wlan = None
        self._wdt = None
        self._wall_set = False

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
    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def ticks_add(self, t, delta):
        return time.ticks_add(t, delta)

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

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
        import socket
        port = 123
        if ":" in host:  # "host:port", for a test server or a non-standard port
            host, port = host.rsplit(":", 1)
            port = int(port)
        addr = socket.getaddrinfo(host, port)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(timeout_ms / 1000)
            s.sendto(request, addr)
            return s.recv(48)
        finally:
            s.close()

    # ---- network ----
    def _sta(self):
        if self._wlan is None:
            self._wlan = network.WLAN(network.STA_IF)
        return self._wlan

    def wifi_connect(self, ssid, password):
        w = self._sta()
        w.active(True)
        w.connect(ssid, password)

    def wifi_disconnect(self):
        try:
            self._sta().disconnect()
        except Exception:
            pass

    def wifi_isconnected(self):
        return self._sta().isconnected()

    def wifi_rssi(self):
        try:
            return int(self._sta().status("rssi"))
        except Exception:
            return None

    def wifi_status(self):
        """A short reason for the self-test: got_ip, no_ap_found, wrong_password, ..."""
        try:
            code = self._sta().status()
        except Exception:
            return "unknown"
        for name in ("GOT_IP", "NO_AP_FOUND", "WRONG_PASSWORD", "CONNECT_FAIL", "CONNECTING",
                     "IDLE"):
            if getattr(network, "STAT_" + name, None) == code:
                return name.lower()
        return "status_%s" % code

    def mqtt(self, client_id, host, port, user=None, password=None, keepalive=60, ssl=False):
        return MqttClient(client_id, host, port, user, password, keepalive, ssl)

    # ---- storage, memory, watchdog ----
    def path(self, name):
        return self.root + name

    def mem_free(self):
        return gc.mem_free()

    def mem_alloc(self):
        return gc.mem_alloc()

    def collect(self):
        gc.collect()

    def wdt_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self):
        machine.reset()

    def random(self, n):
        import os
        b = os.urandom(4)
        return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) % n if n > 0 else 0

    def log(self, line):
        print(line)
