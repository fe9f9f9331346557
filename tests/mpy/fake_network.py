"""Fake of MicroPython's `network` module (ESP32 station) for the unix port, driver-like.

Install with `import install_fakes` (see fake_machine for why). It behaves as the ESP32 port's
ports/esp32/network_wlan.c (v1.22..v1.27) and ESP-IDF make a station behave, not kinder:
- connect() starts an attempt that takes time: JOIN_MS (association and DHCP) when the access
  point is there, SCAN_MS (a scan of every channel) when it is not; isconnected() is False
  meanwhile.
- Once a connect was requested, the driver reconnects by itself, without end: a failed attempt
  is followed by the next at once (the port's event handler calls esp_wifi_connect() again),
  and a joined station whose access point vanished notices after BEACON_TIMEOUT_MS and starts
  attempting again.
- connect() while an attempt is in progress raises OSError("Wifi Internal Error")
  (ESP_ERR_WIFI_CONN). disconnect() ends the attempts (status IDLE: reason ASSOC_LEAVE).
- status() as network_wlan_status(): GOT_IP; NO_AP_FOUND after an attempt failed on a missing
  access point; CONNECTING while attempts go on for other reasons (a beacon timeout, a wrong
  password that shows as a 4-way handshake timeout); IDLE before any connect and after
  disconnect().
What it cannot do: sockets to the test broker on 127.0.0.1 keep working during an "outage".

Test controls (module-level, reset by reset_state()):
  ap_up       is the access point there; set it with ap(False) / ap(True) (notes the time)
  password_ok False: every attempt fails as a wrong password does
  connected   what isconnected() returns; a test may set it True to skip the join
  rssi        what status('rssi') returns (dBm)
  joins       list of (ssid, password) passed to connect()
  clock       None (time.ticks_ms) or a callable giving ticks ms: a test's own clock
  join_ok     old name: join_ok = False is an access point that is not there
"""

import time

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
_REASON_ASSOC_LEAVE = 8
_REASON_4WAY_TIMEOUT = 15

JOIN_MS = 1500
SCAN_MS = 2000
BEACON_TIMEOUT_MS = 6000


def reset_state():
    global connected, join_ok, ap_up, password_ok, rssi, joins, clock, _active, _hostname
    global _requested, _attempt_at, _attempt_ok, _reason, _ap_lost_at
    connected = False
    join_ok = True
    ap_up = True
    password_ok = True
    rssi = -55
    joins = []
    clock = None
    _active = False
    _hostname = "esp32"
    _requested = False
    _attempt_at = None  # ticks the attempt in progress started, or None
    _attempt_ok = False
    _reason = 0  # the last disconnect reason (0: none)
    _ap_lost_at = 0


reset_state()


def _now():
    return (clock or time.ticks_ms)()


def ap(up):
    """The access point comes (True) or goes (False) now."""
    global ap_up, _ap_lost_at
    if ap_up and not up:
        _ap_lost_at = _now()
    ap_up = bool(up)


def _there():
    return ap_up and join_ok


def _start(at):
    global _attempt_at, _attempt_ok
    _attempt_at = at
    _attempt_ok = _there() and password_ok


def _update():
    """Move the driver on to now (attempts ending, a beacon timeout)."""
    global connected, _reason, _attempt_at
    now = _now()
    if connected and not _there() and time.ticks_diff(now, _ap_lost_at) >= BEACON_TIMEOUT_MS:
        connected = False
        _reason = STAT_BEACON_TIMEOUT
        if _requested:
            _start(time.ticks_add(_ap_lost_at, BEACON_TIMEOUT_MS))
    while _requested and not connected and _attempt_at is not None:
        end = time.ticks_add(_attempt_at, JOIN_MS if _attempt_ok else SCAN_MS)
        if time.ticks_diff(now, end) < 0:
            break
        if _attempt_ok and _there():
            connected = True
            _reason = 0
            _attempt_at = None
        else:
            _reason = STAT_NO_AP_FOUND if not _there() else _REASON_4WAY_TIMEOUT
            _start(end)  # the driver tries again at once, by itself


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface

    def active(self, on=None):
        global _active, connected, _requested, _attempt_at
        if on is None:
            return _active
        _active = bool(on)
        if not _active:
            connected = False
            _requested = False
            _attempt_at = None

    def connect(self, ssid=None, key=None, **kw):
        global _requested
        if not _active:
            raise OSError("Wifi Not Started")
        _update()
        if _requested and not connected and _attempt_at is not None:
            raise OSError("Wifi Internal Error")  # ESP_ERR_WIFI_CONN: already connecting
        joins.append((ssid, key))
        _requested = True
        if not connected:
            _start(_now())

    def disconnect(self):
        global connected, _requested, _attempt_at, _reason
        _requested = False
        _attempt_at = None
        if connected or _reason:
            _reason = _REASON_ASSOC_LEAVE
        connected = False

    def isconnected(self):
        _update()
        return bool(connected)

    def status(self, param=None):
        if param == "rssi":
            return rssi
        if param is not None:
            raise ValueError("unknown status param")
        _update()
        if connected:
            return STAT_GOT_IP
        if _reason in (STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD):
            return _reason
        if _reason == _REASON_ASSOC_LEAVE:
            return STAT_IDLE
        if _requested:
            return STAT_CONNECTING
        return STAT_IDLE if not _reason else _reason

    def config(self, *args, **kw):
        global _hostname
        if "hostname" in kw or "dhcp_hostname" in kw:
            _hostname = kw.get("hostname", kw.get("dhcp_hostname"))
        if not args:
            return None
        if args[0] == "mac":
            return b"\x24\x0a\xc4\x12\x34\x56"
        if args[0] in ("hostname", "dhcp_hostname"):
            return _hostname
        if args[0] == "essid":
            return joins[-1][0] if joins else ""
        raise ValueError("unknown config param")

    def ifconfig(self, *args):
        if connected:
            return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name
