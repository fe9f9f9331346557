"""/config.json: schema, defaults, validation; remote config from the gateway on top of it.

Pure: takes text/dicts, returns dicts. Every problem is a ConfigError naming the field, so the
serial console can say exactly what to fix ("pins.led_rate: GPIO 34 is input-only ...").
The pin rules and default pins are per chip (the plain ESP32, one whose GPIO 16/17 are PSRAM or
flash, or the ESP32-S3); the caller detects the chip (firmware.boot.chip) and passes it in.
"""

import json

from protocol import ProtocolError, topics
from protocol import config as pconfig

# Defaults (the file's shape, see the README field table); REQUIRED ones have no default.
REQUIRED = ("site", "device", "wifi.ssid", "mqtt.host")
DEFAULTS = {
    "site": None,
    "device": None,
    "wifi": {"ssid": None, "password": ""},
    "mqtt": {
        "host": None,
        "port": 1883,
        "user": None,
        "password": None,
        "root": topics.DEFAULT_ROOT,
        "keepalive": 60,
        "ssl": False,
    },
    "ntp": {"host": "pool.ntp.org", "resync_h": 6},
    "pins": {
        "yes": 32,
        "no": 33,
        "unsure": 25,
        "seller": 26,
        "led_rate": 18,
        "led_thanks": 19,
        "led_status": 23,
        "led_seller": 21,
        "active_low": True,
        "external_pull": False,
    },
    "timings": {
        "debounce_ms": 30,
        "long_ms": 1500,
        "stuck_ms": 30000,
        "heartbeat_s": 60,
        "ack_timeout_s": 20,
        "window_s": 30,
    },
    "journal": {"capacity": 20000},
    "led_brightness": 60,
}

BUTTON_PINS = ("yes", "no", "unsure", "seller")
LED_PINS = ("led_rate", "led_thanks", "led_status", "led_seller")
# The ESP32-S3's default map, in BUTTON_PINS + LED_PINS order: plain GPIOs on every S3 module
# (none is flash, PSRAM, USB, UART0 or strapping), side by side on the DevKitC-1's left header.
S3_PINS = (4, 5, 6, 7, 15, 16, 17, 18)

# Pin rules per chip, flat (one tuple, not one per rule: smaller at boot): first GPIO, last,
# 0 = any pin / 1 = buttons / 2 = LEDs, "GPIO n " + why. Refused besides the missing ones: pins
# whose level at reset can keep the firmware from starting, and the serial console the
# technician reads these errors on.
_GONE = "cannot be used (6..11 are the flash, 20/24/28..31 do not exist)"
_BOOT = "is the BOOT strapping pin: low at reset, the chip waits for a flasher instead of starting"
_UART = "is UART0 (1/3), the serial console"
ESP32_RULES = (
    6,
    11,
    0,
    _GONE,
    20,
    20,
    0,
    _GONE,
    24,
    24,
    0,
    _GONE,
    28,
    31,
    0,
    _GONE,
    34,
    39,
    2,
    "is input-only (34..39); an LED needs an output pin",  # a button: external pull-up
    0,
    0,
    0,
    _BOOT,
    1,
    1,
    0,
    _UART,
    3,
    3,
    0,
    _UART,
    # MTDI: an LED to GND keeps it low (its safe level), a button can pull it high
    12,
    12,
    1,
    "is a strapping pin: high at reset it sets the flash voltage to 1.8 V and the module does not boot",
)
ESP32S3_RULES = (
    22,
    25,
    0,
    "does not exist on the ESP32-S3 (0..21, 26..48)",
    26,
    32,
    0,
    "is the SPI flash/PSRAM (26..32)",
    33,
    37,
    0,
    "is the octal flash/PSRAM on -R8/-R16 and WROOM-2 modules (33..37)",
    19,
    20,
    0,
    "is USB D-/D+ (19/20), the USB serial console",
    43,
    44,
    0,
    "is UART0 (43/44), the serial console on boards with a USB-UART chip",
    0,
    0,
    0,
    _BOOT,
    3,
    3,
    0,
    "is a strapping pin (JTAG select at reset)",
    45,
    46,
    0,
    "is a strapping pin: at reset 45 sets the flash voltage, 46 the boot mode",
)

# ESP32 boards whose 16/17 are taken (boot.chip: "esp32wrover" from the image's board name): the
# PSRAM of WROVER modules (the SPIRAM images) or the embedded flash of PICO-D4 ones (M5Stack ATOM)
WROVER_RULES = (16, 17, 0, "is the PSRAM (WROVER) or the flash (PICO-D4) on this board")
# GPIO 34..39 have no internal pull resistors (ESP32 datasheet; MicroPython ignores the request
# without a word): a button there floats and reads as random presses
_NO_PULL = "has no internal pull-up/down (34..39): a button there floats; wire a resistor and set pins.external_pull"

# Integer ranges (inclusive). Remote-settable knobs share the protocol's ranges.
_R = pconfig.CONFIG_RANGES
RANGES = {
    "mqtt.port": (1, 65535),
    "mqtt.keepalive": (10, 3600),
    "ntp.resync_h": (1, 168),
    "timings.debounce_ms": _R["debounce_ms"],
    "timings.long_ms": _R["long_ms"],
    "timings.stuck_ms": (5000, 600000),
    "timings.heartbeat_s": _R["heartbeat_s"],
    "timings.ack_timeout_s": (5, 600),
    "timings.window_s": _R["window_s"],
    "journal.capacity": (100, 40000),  # 48 B a record: 40,000 is ~2 MB of flash
    "led_brightness": _R["brightness"],
}

# remote knob -> (section or None, key) it overrides; the other knobs live in cfg["remote"] only
REMOTE_MAP = {
    "debounce_ms": ("timings", "debounce_ms"),
    "long_ms": ("timings", "long_ms"),
    "heartbeat_s": ("timings", "heartbeat_s"),
    "window_s": ("timings", "window_s"),
    "brightness": (None, "led_brightness"),
}


class ConfigError(ValueError):
    """str(e) reads "mqtt.port: must be an integer 1..65535, got 0"."""

    def __init__(self, field, problem):
        super().__init__("%s: %s" % (field, problem))
        self.field = field
        self.problem = problem


def _show(x):
    try:
        return json.dumps(x)
    except Exception:
        return repr(x)


def _merge(field, defaults, given):
    """Defaults overlaid with `given` (a dict); unknown keys and missing required ones fail."""
    if type(given) is not dict:
        raise ConfigError(field or "config.json", "must be a JSON object {...}, got %s" % _show(given))
    for key in given:
        if key not in defaults:
            name = field + "." + key if field else key
            raise ConfigError(name, "unknown field (known: %s)" % ", ".join(sorted(defaults)))
    out = {}
    for key in defaults:
        name = field + "." + key if field else key
        d = defaults[key]
        if type(d) is dict:
            out[key] = _merge(name, d, given.get(key, {}))
        elif key in given:
            out[key] = given[key]
        elif name in REQUIRED:
            raise ConfigError(name, "missing (required)")
        else:
            out[key] = d
    return out


def _get(cfg, name):
    if "." in name:
        section, key = name.split(".")
        return cfg[section][key]
    return cfg[name]


def _int(cfg, name, lo, hi):
    x = _get(cfg, name)
    if type(x) is not int or not lo <= x <= hi:
        raise ConfigError(name, "must be an integer %d..%d, got %s" % (lo, hi, _show(x)))


def _str(cfg, name, null=False, empty=False):
    x = _get(cfg, name)
    if x is None and null:
        return
    if type(x) is not str or (not x and not empty):
        what = "a string" if empty else "a non-empty string"
        raise ConfigError(name, "must be %s%s, got %s" % (what, " or null" if null else "", _show(x)))


def _bool(cfg, name):
    x = _get(cfg, name)
    if x is not True and x is not False:
        raise ConfigError(name, "must be true or false, got %s" % _show(x))


def _check_ids(cfg):
    try:
        topics.check_id(cfg["site"], "site")
        topics.check_id(cfg["device"], "device")
        topics.check_root(cfg["mqtt"]["root"])
    except ProtocolError as e:
        raise ConfigError("mqtt.root" if e.field == "root" else e.field, e.problem)


def _check_pins(pins, chip):
    s3 = chip == "esp32s3"
    top = 48 if s3 else 39
    seen = {}
    rules = ESP32S3_RULES if s3 else ESP32_RULES + WROVER_RULES if chip == "esp32wrover" else ESP32_RULES
    for key in BUTTON_PINS + LED_PINS:
        name = "pins." + key
        p = pins[key]
        if type(p) is not int or not 0 <= p <= top:
            raise ConfigError(
                name, "must be an %s GPIO number 0..%d, got %s" % ("ESP32-S3" if s3 else "ESP32", top, _show(p))
            )
        kind = 2 if key in LED_PINS else 1
        for i in range(0, len(rules), 4):  # int(): the flat table's type mixes ints and strs
            if int(rules[i]) <= p <= int(rules[i + 1]) and rules[i + 2] in (0, kind):
                raise ConfigError(name, "GPIO %d %s" % (p, rules[i + 3]))
        if kind == 1 and not s3 and 34 <= p <= 39 and not pins["external_pull"]:
            raise ConfigError(name, "GPIO %d %s" % (p, _NO_PULL))
        if p in seen:
            raise ConfigError(name, "GPIO %d is already used by pins.%s; every pin must differ" % (p, seen[p]))
        seen[p] = key


def defaults(chip="esp32"):
    """DEFAULTS, with the chip's own pin map ("esp32" or "esp32s3"; anything else is "esp32")."""
    if chip != "esp32s3":
        return DEFAULTS
    out = dict(DEFAULTS)
    out["pins"] = pins = {}
    for key, p in zip(BUTTON_PINS + LED_PINS, S3_PINS):
        pins[key] = p
    pins["active_low"] = True
    pins["external_pull"] = False
    return out


def validate(cfg, chip=None):
    """Check a full cfg dict (shape as DEFAULTS) for `chip` (default: the cfg's own "chip", else
    "esp32"); raise ConfigError on the first problem."""
    _check_ids(cfg)
    _str(cfg, "wifi.ssid")
    _str(cfg, "wifi.password", empty=True)
    _str(cfg, "mqtt.host")
    _str(cfg, "mqtt.user", null=True)
    _str(cfg, "mqtt.password", null=True)
    m = cfg["mqtt"]
    if m["user"] is not None and m["password"] is None:
        raise ConfigError("mqtt.password", "missing: a user needs its password (the broker refuses anonymous panels)")
    if m["password"] is not None and m["user"] is None:
        raise ConfigError("mqtt.user", "missing: a password is sent only with a user name (MQTT 3.1.1)")
    _bool(cfg, "mqtt.ssl")
    if m["ssl"]:
        raise ConfigError(
            "mqtt.ssl",
            "TLS is not supported on the panel (firmware/README.md, TLS); set false and keep the broker's "
            "plain listener on the shop network",
        )
    _str(cfg, "ntp.host")
    _bool(cfg, "pins.active_low")
    _bool(cfg, "pins.external_pull")
    for name in RANGES:
        lo, hi = RANGES[name]
        _int(cfg, name, lo, hi)
    _check_pins(cfg["pins"], chip or cfg.get("chip"))
    t = cfg["timings"]
    if t["long_ms"] <= t["debounce_ms"]:
        raise ConfigError(
            "timings.long_ms", "must be longer than timings.debounce_ms (%d), got %d" % (t["debounce_ms"], t["long_ms"])
        )
    if t["stuck_ms"] <= t["long_ms"]:
        raise ConfigError(
            "timings.stuck_ms", "must be longer than timings.long_ms (%d), got %d" % (t["long_ms"], t["stuck_ms"])
        )
    return cfg


def load(text, chip="esp32"):
    """/config.json text -> cfg dict with every default filled in; ConfigError if anything is off.
    `chip` ("esp32" or "esp32s3", which the caller detects) picks the pin rules and defaults."""
    try:
        given = json.loads(text)
    except Exception as e:  # ValueError on both ports; its text differs
        raise ConfigError("config.json", "not valid JSON (%s); check quotes, commas and braces" % e)
    cfg = validate(_merge("", defaults(chip), given), chip)
    # the file's own values, restored before each remote config is laid on top
    cfg["local"] = {"timings": dict(cfg["timings"]), "led_brightness": cfg["led_brightness"]}
    cfg["remote"] = {}
    cfg["chip"] = chip  # merge_remote re-validates the whole cfg with the same rules
    return cfg


def _copy(cfg):
    out = {}
    for key in cfg:
        v = cfg[key]
        out[key] = dict(v) if type(v) is dict else v
    return out


def merge_remote(cfg, remote):
    """Apply a decoded remote config (protocol.config.decode_config) -> (new_cfg, None) or
    (cfg, error).

    The new remote replaces the previous one: a knob it leaves out falls back to /config.json.
    On error the old cfg is returned unchanged and error is "field: problem" for state.cfg_err.
    """
    new = _copy(cfg)
    local = cfg["local"]
    new["timings"] = dict(local["timings"])
    new["led_brightness"] = local["led_brightness"]
    try:
        if type(remote) is not dict:
            raise ConfigError("config", "must be an object, got %s" % _show(remote))
        if type(remote.get("ver")) is not int:
            raise ConfigError("ver", "must be an integer, got %s" % _show(remote.get("ver")))
        for knob in REMOTE_MAP:
            if knob in remote:
                section, key = REMOTE_MAP[knob]
                lo, hi = _R[knob]
                x = remote[knob]
                if type(x) is not int or not lo <= x <= hi:
                    raise ConfigError(knob, "must be an integer %d..%d, got %s" % (lo, hi, _show(x)))
                if section:
                    new[section][key] = x
                else:
                    new[key] = x
        try:
            validate(new)
        except ConfigError as e:
            # name the remote knob that broke a cross-field rule, not the local field
            field = e.field.split(".")[-1]
            raise ConfigError(field if field in remote else e.field, e.problem)
    except ConfigError as e:
        return cfg, str(e)
    new["remote"] = dict(remote)
    return new, None


def persist_remote(cfg):
    """Bytes for /remote.json (the applied remote config), or None when there is none."""
    if not cfg["remote"]:
        return None
    return pconfig.encode_config(cfg["remote"])


def load_remote(cfg, text):
    """Re-apply a saved /remote.json at boot -> (cfg, error or None); a bad file is ignored."""
    try:
        remote = pconfig.decode_config(text)
    except ProtocolError as e:
        return cfg, "remote.json: " + str(e)
    return merge_remote(cfg, remote)
