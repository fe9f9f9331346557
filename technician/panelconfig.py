"""The panel's /config.json as deploy builds it: the file already on the panel, with the
technician's overrides laid on top, validated by the firmware's own rules (firmware.config).

Pure functions: no device, no files.
"""

import json

from protocol import ProtocolError, mqtturl
from technician.errors import DeviceError
from technician.i18n import _

# config field -> the deploy option that sets it (for error messages)
FLAGS = {
    "site": "--site",
    "device": "--device",
    "wifi.ssid": "--wifi-ssid",
    "wifi.password": "--wifi-password",
    "mqtt.host": "--broker",
    "mqtt.port": "--broker",
    "mqtt.ssl": "--broker (mqtts://...)",
    "mqtt.user": "--mqtt-user",
    "mqtt.password": "--mqtt-password",
}


def parse_broker(url):
    """'mqtt://host:port' / 'mqtts://host' / 'host[:port]' -> (host, port, ssl) (protocol.mqtturl).
    A user name and password belong in --mqtt-user/--mqtt-password, not in the URL."""
    try:
        host, port, user, _password, ssl = mqtturl.parse(url)
    except ProtocolError as exc:
        raise DeviceError(_("--broker %s (or mqtts://HOST:PORT for TLS)") % exc.problem) from None
    if user is not None:
        raise DeviceError(
            _("--broker %s: give the user with --mqtt-user and the password with --mqtt-password") % mqtturl.redact(url)
        )
    return host, port, ssl


def overrides_from(
    site=None, device=None, wifi_ssid=None, wifi_password=None, broker=None, mqtt_user=None, mqtt_password=None
):
    """The technician's options as a partial config dict (only what was given)."""
    over = {}
    if site is not None:
        over["site"] = site
    if device is not None:
        over["device"] = device
    if wifi_ssid is not None:
        over.setdefault("wifi", {})["ssid"] = wifi_ssid
    if wifi_password is not None:
        over.setdefault("wifi", {})["password"] = wifi_password
    if broker is not None:
        host, port, ssl = parse_broker(broker)
        over.setdefault("mqtt", {}).update({"host": host, "port": port, "ssl": ssl})
    if mqtt_user is not None:
        over.setdefault("mqtt", {})["user"] = mqtt_user
    if mqtt_password is not None:
        over.setdefault("mqtt", {})["password"] = mqtt_password
    return over


def parse_existing(text):
    """The panel's current /config.json as a dict, or {} when missing or unreadable."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def merge(existing, overrides):
    """existing with overrides on top (sections merged key by key); neither is changed."""
    out = {}
    for key, value in existing.items():
        out[key] = dict(value) if isinstance(value, dict) else value
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = dict(value) if isinstance(value, dict) else value
    return out


# Valid stand-ins for the required settings a dry-run cannot know (they come from the panel)
PLACEHOLDER = {"site": "site", "device": "panel", "wifi": {"ssid": "wifi"}, "mqtt": {"host": "broker.invalid"}}


def _paired(cfg):
    """The firmware takes an MQTT user only with its password and the reverse (firmware.config).
    The half not given comes later (the prompt or a password file, read after this check) or
    from the panel's file: a placeholder stands in for it here, and the real run checks the
    merged file, whose error then names the option to give."""
    m = cfg.get("mqtt")
    if not isinstance(m, dict) or (m.get("user") is None) == (m.get("password") is None):
        return cfg
    pair = {"user": "user", "password": "password"}
    return merge(cfg, {"mqtt": {k: v for k, v in pair.items() if m.get(k) is None}})


def check_given(given, chip="esp32"):
    """Check every setting given (ids, broker, ...) with the firmware's rules, as a real deploy
    does, although the panel's own file is not known: what is missing is filled with valid
    placeholders, so an error is always about something the technician gave. Returns the text a
    deploy to a blank panel would write (a placeholder in place of a password not read yet)."""
    text, _full = validate(_paired(merge(PLACEHOLDER, given)), chip)
    if all(k in given for k in PLACEHOLDER):
        return validate(_paired(given), chip)[0]
    return text


def validate(given, chip="esp32"):
    """Check with the firmware's rules for `chip` (firmware.boot.chip of the board's
    sys.implementation._machine) -> (text to write, full cfg with defaults).
    DeviceError names the option that sets the bad field."""
    from firmware import config as fwconfig

    text = json.dumps(given, indent=1, sort_keys=True) + "\n"
    try:
        full = fwconfig.load(text, chip)
    except fwconfig.ConfigError as exc:
        flag = FLAGS.get(exc.field)
        how = _("Set it with %s.") % flag if flag else _("Fix it in the panel's /config.json.")
        raise DeviceError(_("config.json would be invalid: %(error)s. %(how)s") % {"error": exc, "how": how}) from None
    return text, full
