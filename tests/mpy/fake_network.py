"""Fake of MicroPython's `network` module (ESP32 station) for the unix port.

Install with `import install_fakes` (see fake_machine for why). Test controls (module-level,
reset by reset_state()):
  connected   what WLAN.isconnected() returns (a test flips it to simulate Wi-Fi loss)
  join_ok     whether WLAN.connect() makes `connected` True (False: status() reports NO_AP_FOUND)
  rssi        what status('rssi') returns (dBm)
  joins       list of (ssid, password) passed to connect()
"""

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203


def reset_state():
    global connected, join_ok, rssi, joins, _active, _hostname
    connected = False
    join_ok = True
    rssi = -55
    joins = []
    _active = False
    _hostname = "esp32"


reset_state()


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface

    def active(self, on=None):
        global _active, connected
        if on is None:
            return _active
        _active = bool(on)
        if not _active:
            connected = False

    def connect(self, ssid=None, key=None, **kw):
        global connected
        joins.append((ssid, key))
        connected = bool(join_ok)

    def disconnect(self):
        global connected
        connected = False

    def isconnected(self):
        return bool(connected)

    def status(self, param=None):
        if param == "rssi":
            return rssi
        if param is not None:
            raise ValueError("unknown status param")
        if connected:
            return STAT_GOT_IP
        if joins and not join_ok:
            return STAT_NO_AP_FOUND
        return STAT_CONNECTING if joins else STAT_IDLE

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
