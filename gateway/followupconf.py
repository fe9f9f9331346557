"""The site file's `[followups]` table: when a No or silent poll becomes a CRM follow-up (the
hold, the wait for a force-majeure verdict, the age after which it is no use) and the webhook
integrations that receive them, checked.

Called by gateway/site.py (`_followups`); stored in the settings history as the entity
("followups", "followups") and read by gateway/followups.py. Like the alert channels
(gateway/alertconf.py), a webhook's HMAC key never goes in the site file: each integration names
a secrets file (TOML, `webhook_key = "..."`, mode 0600) or the key comes from the environment
variable $RATING_FOLLOWUPS_KEY_<NAME> (the integration's name in upper case, `-` as `_`).
"""

from gateway.alertconf import SECRET_WORDS, _has_password, _safe_url
from gateway.i18n import _

DEFAULTS = {"hold_min": 30, "fm_wait_h": 24, "max_age_h": 48}
# (lowest, highest) of each knob
KNOBS = {"hold_min": (1, 1440), "fm_wait_h": (0, 168), "max_age_h": (1, 720)}
ALLOWED = ("enabled", *KNOBS, "webhooks")
WEBHOOK_FIELDS = ("url", "secrets", "offices")


def check(table, err, is_site):
    """The [followups] table checked -> config dict; problems go to err(path, text)."""
    config: dict = dict(DEFAULTS, enabled=True, webhooks={})
    if not isinstance(table, dict):
        err("followups", _("must be a table ([followups])"))
        return config
    for key, value in table.items():
        path = "followups.%s" % key
        if key not in ALLOWED:
            err(path, _("unknown field (allowed: %s)") % ", ".join(ALLOWED))
        elif key == "enabled":
            if not isinstance(value, bool):
                err(path, _("must be true or false, got %r") % (value,))
            config["enabled"] = value is True
        elif key in KNOBS:
            lo, hi = KNOBS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                err(path, _("must be between %s and %s, got %s") % (lo, hi, value))
            else:
                config[key] = value
    if config["fm_wait_h"] > config["max_age_h"]:
        err("followups.fm_wait_h", _("must not be longer than followups.max_age_h (a follow-up that old is no use)"))
    hooks = table.get("webhooks", {})
    if not isinstance(hooks, dict):
        err("followups.webhooks", _("must be a table of integrations ([followups.webhooks.NAME])"))
        return config
    for name, item in hooks.items():
        hook = _webhook(err, "followups.webhooks.%s" % name, item, is_site)
        if hook is not None:
            config["webhooks"][name] = hook
    return config


def _webhook(err, path, item, is_site):
    if not isinstance(item, dict):
        err(path, _("must be a table ([%s])") % path)
        return None
    for name, value in item.items():
        if name not in WEBHOOK_FIELDS:
            err("%s.%s" % (path, name), _("unknown field (allowed: %s)") % ", ".join(WEBHOOK_FIELDS))
        if any(word in name for word in SECRET_WORDS if word != "secret") or (
            isinstance(value, str) and _has_password(value)
        ):
            err("%s.%s" % (path, name), _("secrets go in the file named by `secrets`, never in the site file"))
    url = item.get("url")
    if not isinstance(url, str) or not _safe_url(url):
        err(path + ".url", _("must be an https:// URL (http:// only to this machine), got %r") % (url,))
    secrets = item.get("secrets")
    if secrets is not None and (not isinstance(secrets, str) or not secrets.startswith("/")):
        err(path + ".secrets", _("must be an absolute file path, got %r") % (secrets,))
    offices = item.get("offices")
    if offices is not None:
        if not isinstance(offices, list) or not all(isinstance(s, str) and is_site(s) for s in offices):
            err(path + ".offices", _("must be a list of office ids listed in [[sites]], got %r") % (offices,))
            offices = None
    return {"url": url, "secrets": secrets, "offices": offices}


def settings(config) -> dict:
    """The config in force (the defaults where the site file has no [followups])."""
    out: dict = dict(DEFAULTS, enabled=True, webhooks={})
    out.update(config or {})
    return out
