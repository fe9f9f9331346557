"""Host HAL: runs the real firmware (firmware/app.py and friends) under CPython.

Same interface as firmware/hal.py (see firmware/README.md, "HAL"), with everything the device
reads from hardware driven by the caller instead:

    hal = HostHal(pins_cfg, data_dir, now_ms=0)
    hal.set_pressed("yes", True)      # a customer's finger (the simulator adds contact bounce)
    hal.advance(25) / hal.now_ms = t  # simulated clock; nothing sleeps for real
    hal.leds["rate"]                  # what each LED shows (0..100); hal.led_log keeps changes
    hal.wifi_up = False               # Wi-Fi outage (the AP is gone); once asked to connect,
                                      # the station rejoins by itself when it is back (as the
                                      # ESP32 driver does)
    hal.reset_reason = "watchdog"     # what reset_cause() says (default "power_on")
    hal.ntp_unix_ms = lambda: ...     # what an NTP query answers (None: unreachable)
    hal.console                       # lines the firmware printed to its serial console

MQTT goes through paho-mqtt 2.x to a real broker (PahoClient below), without a network thread:
every check_msg() runs one non-blocking paho loop step, so a thousand simulated panels need no
thread each and stay deterministic.
"""

import os
import socket
import time
from collections.abc import Callable

import paho.mqtt.client as paho_client
from paho.mqtt.enums import CallbackAPIVersion

TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms wraps at 2**30 on the ESP32
TICKS_HALF = TICKS_PERIOD // 2


NTP_DELTA_S = 2208988800  # 1900-01-01 (NTP era 0) to 1970-01-01


def _ntp_stamp(unix_ms):
    secs = unix_ms // 1000 + NTP_DELTA_S
    frac = ((unix_ms % 1000) << 32) // 1000
    return (secs & 0xFFFFFFFF).to_bytes(4, "big") + frac.to_bytes(4, "big")


def ntp_reply(request, unix_ms):
    """A server's SNTP reply to `request` at unix_ms (receive = transmit: zero server delay)."""
    reply = bytearray(48)
    reply[0] = (0 << 6) | (4 << 3) | 4  # LI 0, version 4, mode 4 (server)
    reply[1] = 1  # stratum 1
    reply[24:32] = bytes(request[40:48])  # originate = the client's transmit stamp
    stamp = _ntp_stamp(unix_ms)
    reply[32:40] = stamp
    reply[40:48] = stamp
    return bytes(reply)


class PahoClient:
    """firmware/hal.MqttClient's interface on paho-mqtt (clean sessions, MQTT 3.1.1)."""

    CONNECT_TIMEOUT_S = 5.0
    MAX_PACKETS_PER_CHECK = 1  # like umqtt: check_msg handles at most one incoming packet

    def __init__(self, client_id, host, port, user=None, password=None, keepalive=60, ssl=False):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.cb = None
        self.c = None
        self.connected = False
        self.published = 0

    def set_callback(self, cb):
        self.cb = cb

    def _on_message(self, _client, _userdata, msg):
        if self.cb is not None:
            self.cb(msg.topic.encode(), bytes(msg.payload))

    def connect(self, clean_session=True, will=None):
        self.close()
        c = paho_client.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=clean_session)
        c.on_message = self._on_message
        if self.user is not None:
            c.username_pw_set(self.user, self.password)
        if self.ssl:
            c.tls_set()
        if will:
            c.will_set(will[0], will[1], qos=will[3], retain=will[2])
        result = {}
        c.on_connect = lambda _c, _u, _f, rc, _p: result.setdefault("rc", rc)
        c.connect_timeout = self.CONNECT_TIMEOUT_S
        try:
            c.connect(self.host, self.port, self.keepalive)
        except (OSError, ValueError) as exc:
            raise OSError("mqtt connect to %s:%s failed: %s" % (self.host, self.port, exc)) from None
        deadline = time.monotonic() + self.CONNECT_TIMEOUT_S
        while "rc" not in result:
            if c.loop(timeout=0.02) != paho_client.MQTT_ERR_SUCCESS or time.monotonic() > deadline:
                sock = c.socket()
                if sock is not None:
                    sock.close()
                raise OSError("mqtt connect to %s:%s: no CONNACK" % (self.host, self.port))
        if result["rc"].is_failure:
            c.disconnect()
            raise OSError("mqtt connect refused: %s" % result["rc"])
        self.c = c
        self.connected = True

    def _check(self, rc):
        if rc != paho_client.MQTT_ERR_SUCCESS:
            self.close()
            raise OSError("mqtt: %s" % paho_client.error_string(rc))

    def publish(self, topic, payload, retain=False, qos=0):
        if self.c is None:
            raise OSError("mqtt: not connected")
        self._check(self.c.publish(topic, payload, qos=qos, retain=retain).rc)
        self.published += 1

    def subscribe(self, topic, qos=0):
        if self.c is None:
            raise OSError("mqtt: not connected")
        self._check(self.c.subscribe(topic, qos)[0])

    def check_msg(self):
        if self.c is None:
            raise OSError("mqtt: not connected")
        for _ in range(self.MAX_PACKETS_PER_CHECK):
            self._check(self.c.loop(timeout=0))
        return None

    def ping(self):
        pass  # paho sends PINGREQ itself from loop()

    def disconnect(self):
        if self.c is not None:
            try:
                self.c.disconnect()
            except Exception:
                pass
        self.close()

    def close(self):
        self.connected = False
        c, self.c = self.c, None
        if c is not None:
            sock = c.socket()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def sever(self):
        """Test/simulator hook: kill the TCP connection without DISCONNECT (the broker then
        publishes the last will). The firmware notices on its next MQTT call."""
        sock = self.c.socket() if self.c is not None else None
        if isinstance(sock, socket.socket):  # paho's SocketLike may be a TLS object
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HostHal:
    """Simulated pins, LEDs, clock, Wi-Fi and watchdog; real files and a real MQTT broker."""

    def __init__(self, pins=None, data_dir=".", now_ms=0, ticks_start=0, seed=1):
        self.pins = pins or {}
        self.data_dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        self.now_ms = now_ms  # the simulated monotonic clock (never wraps)
        self.ticks_start = ticks_start  # set near TICKS_PERIOD to exercise ticks_ms wrap-around
        self.buttons = {"yes": False, "no": False, "unsure": False, "seller": False}
        self.leds = {"rate": 0, "thanks": 0, "status": 0, "seller": 0}
        self.led_log = []  # (now_ms, name, pct) for every LED change
        self.keep_led_log = True
        self.wifi_up = True  # is the access point there?
        self.rssi = -55
        self.wifi_joined = False  # a connect was asked for (the driver then keeps trying)
        self.reset_reason = "power_on"
        self.wall_offset_ms = None  # set_wall_ms() keeps wall = now + offset
        self.ntp_unix_ms: Callable[[], int | None] | None = None  # -> unix ms; None: unreachable
        self.heap_free = 60000
        self.heap_alloc = 30000
        self.wdt_timeout_ms = None
        self.wdt_feeds = 0
        self.resets = 0
        self.console = []
        self.echo = False
        self.clients = []  # every MQTT client made, newest last
        self._rand = seed or 1

    # ---- what the simulator drives ----
    def set_pressed(self, name, down):
        self.buttons[name] = bool(down)

    def advance(self, ms):
        self.now_ms += ms

    @property
    def mqtt_client(self):
        return self.clients[-1] if self.clients else None

    # ---- pins ----
    def pressed(self, name):
        return 1 if self.buttons[name] else 0

    def led(self, name, pct):
        if self.leds.get(name) != pct:
            self.leds[name] = pct
            if self.keep_led_log:
                self.led_log.append((self.now_ms, name, pct))

    # ---- time ----
    def ticks_ms(self):
        return (self.ticks_start + self.now_ms) % TICKS_PERIOD

    def ticks_diff(self, a, b):
        return ((a - b + TICKS_HALF) % TICKS_PERIOD) - TICKS_HALF

    def ticks_add(self, t, delta):
        return (t + delta) % TICKS_PERIOD

    def sleep_ms(self, ms):
        self.now_ms += ms  # simulated: sleeping moves the clock, costs no wall time

    def set_wall_ms(self, unix_ms):
        self.wall_offset_ms = unix_ms - self.now_ms

    def wall_ms(self):
        return None if self.wall_offset_ms is None else self.now_ms + self.wall_offset_ms

    def ntp_query(self, host, request, timeout_ms=1500):
        """A simulated NTP server: answers with ntp_unix_ms() (None or no Wi-Fi: OSError)."""
        value = self.ntp_unix_ms() if (self.wifi_up and self.ntp_unix_ms is not None) else None
        if value is None:
            raise OSError("NTP %s unreachable" % host)
        return ntp_reply(request, value)

    # ---- network ----
    def wifi_connect(self, ssid, password):
        self.wifi_joined = True

    def wifi_disconnect(self):
        self.wifi_joined = False

    def wifi_isconnected(self):
        # like the ESP32 driver (ports/esp32/network_wlan.c): once asked, it reconnects by itself
        return self.wifi_up and self.wifi_joined

    def wifi_rssi(self):
        return self.rssi if self.wifi_isconnected() else None

    def wifi_status(self):
        if self.wifi_isconnected():
            return "got_ip"
        return "no_ap_found" if self.wifi_joined else "idle"

    def mqtt(self, client_id, host, port, user=None, password=None, keepalive=60, ssl=False):
        if not self.wifi_up:
            raise OSError("no Wi-Fi")
        client = PahoClient(client_id, host, port, user, password, keepalive, ssl)
        self.clients.append(client)
        return client

    # ---- storage, memory, watchdog ----
    def path(self, name):
        return os.path.join(self.data_dir, name)

    def mem_free(self):
        return self.heap_free

    def mem_alloc(self):
        return self.heap_alloc

    def collect(self):
        pass

    def wdt_start(self, timeout_ms):
        self.wdt_timeout_ms = timeout_ms

    def wdt_feed(self):
        self.wdt_feeds += 1

    def reset(self):
        self.resets += 1
        raise SystemExit("panel reset")

    def reset_cause(self):
        return self.reset_reason

    def random(self, n):
        # xorshift: deterministic jitter per panel (seeded), no global random state
        x = self._rand
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rand = x
        return x % n if n > 0 else 0

    def log(self, line):
        self.console.append(line)
        if self.echo:
            print(line)
