"""The site file's `[alerts]` table: opening hours, rule settings and channels, checked.

Called by gateway/site.py (`_alerts`); the result is stored in the settings history as the
entity ("alerts", "alerts") and read by gateway/alerts.py. Secrets (the SMTP password, the
webhook's HMAC key, the MQTT password) never go in the site file: it names a file
(`alerts.secrets`) that the gateway reads when it delivers (gateway/alertsend.py).
"""

import urllib.parse

from gateway.alertrules import CHANNELS, KNOBS, RULES, SEVERITIES
from gateway.i18n import _


def _safe_url(url):
    """https, or plain http to this machine (a local relay): alerts name offices and people."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _has_password(value):
    """A URL with a password in it (scheme://user:password@host)."""
    if "://" not in value:
        return False
    try:
        return urllib.parse.urlsplit(value).password is not None
    except ValueError:
        return False


ALLOWED = ("hours", "days", "offices", "rules", "channels", "email", "webhook", "mqtt", "secrets")
REQUIRED = {"email": ("host", "to", "from"), "webhook": ("url",), "mqtt": ("url", "topic")}
SECRET_WORDS = ("password", "secret", "key", "token")


def check(table, err, is_site, check_hours, check_days):
    """The [alerts] table checked -> config dict; problems go to err(path, text). is_site(id),
    check_hours(text) and check_days(value) (ValueError when bad) are the site file's."""
    config = {"rules": {}, "offices": {}, "channels": []}
    if not isinstance(table, dict):
        err("alerts", _("must be a table ([alerts])"))
        return config
    for key in table:
        if key not in ALLOWED:
            err("alerts.%s" % key, _("unknown field (allowed: %s)") % ", ".join(ALLOWED))
    _hours_days(err, "alerts", table, config, check_hours, check_days)
    offices = table.get("offices", {})
    if isinstance(offices, dict):
        for site, item in offices.items():
            path = "alerts.offices.%s" % site
            if not is_site(site):
                err(path, _("%r is not listed in [[sites]]") % site)
            elif isinstance(item, dict):
                config["offices"][site] = {}
                _hours_days(err, path, item, config["offices"][site], check_hours, check_days)
    rules = table.get("rules", {})
    if isinstance(rules, dict):
        for rule, item in rules.items():
            if rule not in RULES or not isinstance(item, dict):
                err("alerts.rules.%s" % rule, _("unknown rule (known: %s)") % ", ".join(RULES))
            else:
                config["rules"][rule] = _rule(err, "alerts.rules.%s" % rule, rule, item)
    _channels(err, table, config)
    if "secrets" in table:
        if not isinstance(table["secrets"], str) or not table["secrets"].startswith("/"):
            err("alerts.secrets", _("must be an absolute file path, got %r") % (table["secrets"],))
        else:
            config["secrets"] = table["secrets"]
    return config


def _hours_days(err, path, item, into, check_hours, check_days):
    for name, fn in (("hours", check_hours), ("days", check_days)):
        if name in item:
            try:
                fn(item[name])
                into[name] = item[name]
            except ValueError as exc:
                err("%s.%s" % (path, name), str(exc))


def _rule(err, path, rule, item):
    known = ("enabled", "severity", *RULES[rule])
    settings = {}
    for name, value in item.items():
        where = "%s.%s" % (path, name)
        if name not in known:
            err(where, _("unknown field (allowed: %s)") % ", ".join(known))
        elif name == "enabled":
            if not isinstance(value, bool):
                err(where, _("must be true or false, got %r") % (value,))
            settings[name] = value is True
        elif name == "severity":
            if value not in SEVERITIES:
                err(where, _("must be one of %s, got %r") % (", ".join(SEVERITIES), value))
            settings[name] = value
        else:
            lo, hi = KNOBS[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                err(where, _("must be between %s and %s, got %s") % (lo, hi, value))
            else:
                settings[name] = value
    return settings


def _channels(err, table, config):
    channels = table.get("channels", [])
    if not isinstance(channels, list) or any(ch not in CHANNELS for ch in channels):
        err("alerts.channels", _("must be a list of %s, got %r") % (", ".join(CHANNELS), channels))
    else:
        config["channels"] = list(channels)
        for ch in channels:
            if not isinstance(table.get(ch), dict):
                err("alerts." + ch, _("the channel is listed in alerts.channels but has no [alerts.%s] table") % ch)
    for ch, required in REQUIRED.items():
        item = table.get(ch)
        if item is None:
            continue
        if not isinstance(item, dict):
            err("alerts." + ch, _("must be a table ([alerts.%s])") % ch)
            continue
        for name in required:
            if not item.get(name):
                err("alerts.%s.%s" % (ch, name), _("is required (text)"))
        if ch == "webhook" and isinstance(item.get("url"), str) and not _safe_url(item["url"]):
            err("alerts.webhook.url", _("must be an https:// URL (http:// only to this machine), got %r") % item["url"])
        for name, value in item.items():
            if any(word in name for word in SECRET_WORDS) or (isinstance(value, str) and _has_password(value)):
                err(
                    "alerts.%s.%s" % (ch, name),
                    _("secrets go in the file named by alerts.secrets, never in the site file"),
                )
        config[ch] = dict(item)
