# Stand-in `network` (ESP32 station) for the WebAssembly panel: joining always works and the
# signal is -55 dBm. The VM has no sockets, so MQTT and NTP fail for real (self-test says so).
STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203

_state = {"active": False, "connected": False, "ssid": ""}


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface

    def active(self, on=None):
        if on is None:
            return _state["active"]
        _state["active"] = bool(on)

    def connect(self, ssid=None, key=None, **kw):
        _state["ssid"] = ssid
        _state["connected"] = True

    def disconnect(self):
        _state["connected"] = False

    def isconnected(self):
        return _state["connected"]

    def status(self, param=None):
        if param == "rssi":
            return -55
        return STAT_GOT_IP if _state["connected"] else STAT_IDLE

    def config(self, *args, **kw):
        if args and args[0] == "essid":
            return _state["ssid"]
        if args and args[0] == "mac":
            return b"\x24\x0a\xc4\x00\x00\x01"
        return None

    def ifconfig(self, *args):
        return ("192.0.2.50", "255.255.255.0", "192.0.2.1", "192.0.2.1")


def hostname(name=None):
    return "standin"
