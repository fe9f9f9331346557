"""The alert rules page (`/alerts/rules`): every rule in force with its settings, the opening
hours the operations rules use, the channels, and who changed the settings when; an admin
changes one rule at `/alerts/rules/RULE`.

The rules live in the site file's `[alerts]` table (the settings history, gateway/site.py). A
change here is checked by the site file's own checker (gateway/alertconf.py, through
`site.apply_alerts`) and recorded as a new settings revision under the admin's name: `rating
site show` / `site export` show it, a later `rating site apply` compares its file with it, and
the gateway's worker reads it on its next evaluation (it loads the history every time).

Who sees what: every signed-in account reads the rules (the people who act on alerts need to
know why one fired); only admins change them, and only admins see where the channels deliver
(recipients, hosts). Secrets are never in the settings (alertconf refuses them): the page says
only whether a secrets file is named.

Its words are here, in both languages (WORDS), like console/alerts_page.py."""

import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from console import fmt
from console.web import NotFound, context
from gateway import alertrules, alerts, i18n, site_view
from gateway import site as site_mod
from gateway.cli_alerts import RULE_TITLES, SEVERITY_WORDS

router = APIRouter(include_in_schema=False)

WORDS = {
    "title": ("Правила оповещений", "Alert rules"),
    "back": ("← Оповещения", "← Alerts"),
    "intro": (
        "Правила заданы в файле настроек (раздел [alerts]) и здесь; каждое изменение — новая "
        "редакция настроек, её видно в «rating site show» и «rating site export».",
        "The rules are set in the site file ([alerts]) and here; every change is a new settings "
        "revision, shown by `rating site show` and `rating site export`.",
    ),
    "read_only": (
        "Менять правила может только администратор.",
        "Only an admin can change the rules.",
    ),
    "rule": ("Правило", "Rule"),
    "rules": ("Правила", "Rules"),
    "enabled": ("Включено", "Enabled"),
    "on": ("да", "yes"),
    "off": ("нет", "no"),
    "severity": ("Важность", "Severity"),
    "cooldown_min": ("Пауза после закрытия, мин", "Cooldown after resolve, min"),
    "settings": ("Настройки", "Settings"),
    "default": ("по умолчанию", "default"),
    "changed": ("изменено", "changed"),
    "edit": ("Изменить", "Change"),
    "edit_title": ("Правило «%(rule)s»", "Rule “%(rule)s”"),
    "save": ("Сохранить", "Save"),
    "cancel": ("Отмена", "Cancel"),
    "saved": ("Сохранено: редакция настроек %(rev)s.", "Saved: settings revision %(rev)s."),
    "unchanged": ("Ничего не изменилось.", "Nothing changed."),
    "stale": (
        "Ничего не сохранено: настройки только что изменил кто-то другой. Вот они сейчас; внесите изменение снова.",
        "Nothing was saved: someone else changed the settings meanwhile. Here they are now; make your change again.",
    ),
    "has_errors": ("Ничего не сохранено: исправьте поля ниже.", "Nothing was saved: fix the fields below."),
    "scope": ("Где действует", "Scope"),
    "scope_all": (
        "Правила одни на всю систему; часы работы (по ним судят операционные правила) — свои у офисов ниже.",
        "The rules apply to the whole deployment; the opening hours the operations rules use may differ per office (below).",
    ),
    "hours": ("Часы работы", "Opening hours"),
    "office": ("Офис", "Office"),
    "zone": ("Часовой пояс", "Time zone"),
    "days": ("Дни", "Days"),
    "all_day": ("круглосуточно", "all day"),
    "every_day": ("каждый день", "every day"),
    "own": ("свои", "own"),
    "common": ("общие", "common"),
    "channels": ("Каналы", "Channels"),
    "no_channels": (
        "Каналов нет: оповещения только видны здесь и в «rating alerts».",
        "No channels: alerts are only listed here and by `rating alerts`.",
    ),
    "channel_email": ("e-mail", "e-mail"),
    "channel_webhook": ("webhook", "webhook"),
    "channel_mqtt": ("MQTT", "MQTT"),
    "destination": ("Куда", "Where to"),
    "secrets": ("Файл секретов", "Secrets file"),
    "set": ("задан", "set"),
    "not_set": ("не задан", "not set"),
    "hidden": ("видно администратору", "shown to admins"),
    "history": ("Изменения", "Changes"),
    "revision": ("Редакция", "Revision"),
    "when": ("Когда", "When"),
    "who": ("Кто", "Who"),
    "what": ("Что изменилось", "What changed"),
    "from_file": ("файл %(file)s", "file %(file)s"),
    "from_console": ("%(who)s, в консоли", "%(who)s, in the console"),
    "no_history": (
        "Раздела [alerts] ещё не было: все правила по умолчанию.",
        "No [alerts] table yet: every rule at its defaults.",
    ),
    "removed": ("раздел [alerts] убран из файла", "the [alerts] table was removed from the file"),
    # the rules' own knobs (docs/alerts.md)
    "after_min": ("Через сколько минут", "After, min"),
    "max_skew_s": ("Допустимое расхождение часов, с", "Allowed clock skew, s"),
    "odds_ratio": ("Отношение шансов плохой серии", "Odds ratio of a bad run"),
    "h": ("Порог CUSUM h", "CUSUM threshold h"),
    "baseline_days": ("Дней в базе сравнения", "Baseline days"),
    "min_baseline": ("Минимум опросов в базе", "Minimum baseline polls"),
    "max": ("Порог", "Threshold"),
    "window_h": ("Окно, ч", "Window, h"),
    "age_min": ("Старше, мин", "Older than, min"),
}

FIELDS_BEFORE = ("enabled", "severity", "cooldown_min")


def _words(lang):
    i = 0 if lang == "ru" else 1
    gettext = i18n.catalogue(lang).gettext

    def w(key, **values):
        text = WORDS[key][i]
        return text % values if values else text

    return w, gettext


def _num(value, lang):
    """A knob's value for people: 0,3 / 1 440 (ru), 0.3 / 1,440 (en)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and value != int(value):
        text = repr(value)
        return text.replace(".", ",") if lang == "ru" else text
    return fmt.number(value, lang)


def _input_text(value, lang):
    """A knob's value in a form field (no thousands separators: typed back as it is)."""
    if isinstance(value, float) and value != int(value):
        text = repr(value)
        return text.replace(".", ",") if lang == "ru" else text
    return str(int(value)) if isinstance(value, (int, float)) else str(value)


def _rules(config, effective):
    """[(rule, settings in force, the names the settings history sets explicitly)]; `effective`
    is the config as the worker uses it (alerts.with_thresholds: fm_rate's max from the
    deployment's fm_rate_max unless the rule sets its own)."""
    explicit = (config or {}).get("rules", {})
    return [(rule, alertrules.rule_settings(effective, rule), set(explicit.get(rule, {}))) for rule in alertrules.RULES]


def _effective(c, config):
    return alerts.with_thresholds(config, c.history.deployment(c.now_ms))


def _knobs(rule):
    return [name for name in alertrules.RULES[rule] if name not in ("severity", "cooldown_min")]


def _offices(c, config):
    """[(site, name, zone, days, hours, own)] of the offices in scope, by name."""
    config = config or {}
    out = []
    for site, name in c.offices():
        own = config.get("offices", {}).get(site, {})
        out.append(
            (
                site,
                name,
                fmt.zone(c.now_ms, c.tz(site)),
                own.get("days", config.get("days")),
                own.get("hours", config.get("hours")),
                bool(own),
            )
        )
    return out


def _destination(channel, table, admin):
    """Where a channel delivers, for admins; never a secret (the checker keeps them out)."""
    if not admin or not isinstance(table, dict):
        return None
    if channel == "email":
        return "%s → %s" % (table.get("host", ""), ", ".join(table.get("to") or []))
    if channel == "webhook":
        parts = urllib.parse.urlsplit(str(table.get("url", "")))
        return "%s://%s%s" % (parts.scheme, parts.hostname or "", parts.path)  # no query: it may carry a token
    parts = urllib.parse.urlsplit(str(table.get("url", "")))
    port = ":%s" % parts.port if parts.port else ""
    return "%s://%s%s %s" % (parts.scheme, parts.hostname or "", port, table.get("topic", ""))


def flat(table, prefix=""):
    """{"rules.negative_run.h": 12.5, "channels": [...], ...}: a nested table as dotted paths, so
    that a change names exactly the knob it changed. Secrets are never in it (alertconf)."""
    out = {}
    for name, value in (table or {}).items():
        if isinstance(value, dict):
            out.update(flat(value, "%s%s." % (prefix, name)))
        else:
            out[prefix + name] = value
    return out


def _shown_flat(table, admin, w):
    """flat(table) as the page may show it: the secrets file only as set, URLs without their
    query (it may carry a token), and where the channels deliver only to admins."""
    out = {}
    for path, value in flat(table).items():
        if path.startswith(("email.", "webhook.", "mqtt.")) and not admin:
            continue
        if path == "secrets":
            value = w("set")
        elif path in ("webhook.url", "mqtt.url"):
            parts = urllib.parse.urlsplit(str(value))
            value = "%s://%s%s" % (parts.scheme, parts.hostname or "", parts.path)
        out[path] = value
    return out


def _changes(c, w):
    """[(rev, when, who, what changed)] of the revisions that changed [alerts], newest first."""
    rows = site_mod.changes_of(c.db, "alerts", site_mod.ALERTS_KEY)
    out = []
    with i18n.speaking(c.lang):
        for i, ch in enumerate(rows):
            who = w("from_console", who=ch["by"]) if ch["by"] else w("from_file", file=ch["source"] or "-")
            older = rows[i + 1]["data"] if i + 1 < len(rows) else None
            if ch["data"] is None:
                what = [w("removed")]
            else:
                admin = c.me["role"] == "admin"
                before = _shown_flat(older, admin, w) if older is not None else None
                what = site_view.changes_text(before, _shown_flat(ch["data"], admin, w))
            out.append((ch["rev"], fmt.time(ch["applied_ms"], c.history.home_tz(), c.lang), who, what))
    return out


def _page(c, values=None, errors=None, rule=None, status=200, message=None):
    config = c.history.alerts(c.now_ms)
    w, g = _words(c.lang)
    admin = c.me["role"] == "admin"
    return c.render(
        "alert_rules.html",
        status_code=status,
        w=w,
        g=g,
        num=lambda v: _num(v, c.lang),
        input_text=lambda v: _input_text(v, c.lang),
        rules=_rules(config, _effective(c, config)),
        knobs=_knobs,
        rule_titles=RULE_TITLES,
        severity_words=SEVERITY_WORDS,
        severities=alertrules.SEVERITIES,
        defaults=alertrules.RULES,
        admin=admin,
        editing=rule,
        values=values or {},
        errors=errors or {},
        message=message,
        offices=_offices(c, config),
        common=(config or {}).get("days"),
        common_hours=(config or {}).get("hours"),
        channels=[(ch, _destination(ch, (config or {}).get(ch), admin)) for ch in (config or {}).get("channels", [])],
        secrets_set=bool((config or {}).get("secrets")),
        changes=_changes(c, w),
    )


@router.get("/alerts/rules")
def rules_page(request: Request, saved: str = ""):
    with context(request, "signed-in") as c:
        message = None
        if saved == "none":
            message = "unchanged"
        elif saved.isdigit():
            message = "saved"
        return _page(c, message=message, values={"rev": saved})


@router.get("/alerts/rules/{rule}")
def rule_form(request: Request, rule: str):
    with context(request, "admin") as c:
        if rule not in alertrules.RULES:
            raise NotFound()
        return _page(c, values=_form_values(c, rule), rule=rule)


def _form_values(c, rule):
    """The rule's settings in force as the form shows them, with the revision they come from."""
    settings = alertrules.rule_settings(_effective(c, c.history.alerts(c.now_ms)), rule)
    values: dict = {k: (v if k in ("enabled", "severity") else _input_text(v, c.lang)) for k, v in settings.items()}
    values["rev"] = site_mod.revision(c.db)
    return values


def _typed(text):
    """A number typed in a form ("0,3", "1 440", "12") as the site file would hold it; text that
    is no number is passed on as it is, for the checker to refuse in its own words."""
    cleaned = (text or "").strip().replace("\u202f", "").replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        return float(cleaned)
    except ValueError:
        return (text or "").strip()


def submitted(form, rule, config, effective):
    """The rule's table after the form: what the settings history (`config`) set explicitly,
    plus every field the form changed from the value in force (`effective`; a field left alone
    stays as it was, so a default is not written into the history)."""
    in_force = alertrules.rule_settings(effective, rule)
    table = dict((config or {}).get("rules", {}).get(rule, {}))
    given = {"enabled": form.get("enabled") == "on", "severity": form.get("severity") or ""}
    for name in ("cooldown_min", *_knobs(rule)):
        given[name] = _typed(form.get(name))
    for name, value in given.items():
        if name in table and value == table[name]:
            continue  # as the history has it (9 and 9.0 are one value: no new revision)
        if value != in_force.get(name) or name in table:
            table[name] = value
    return table


@router.post("/alerts/rules/{rule}")
async def rule_change(request: Request, rule: str):
    form = await request.form()
    with context(request, "admin") as c:
        c.check_csrf(form.get("csrf"))
        if rule not in alertrules.RULES:
            raise NotFound()
        if str(form.get("rev") or "") != str(site_mod.revision(c.db)):
            # the settings changed since the form was shown: saving it would undo that change
            return _page(c, _form_values(c, rule), {"": _words(c.lang)[0]("stale")}, rule, 409)
        config = c.history.alerts(c.now_ms)
        rule_table = submitted(form, rule, config, _effective(c, config))
        changed = []
        if rule_table != (config or {}).get("rules", {}).get(rule, {}):  # a form left as it is records nothing
            table: dict = dict(config or {"channels": []})
            table["rules"] = dict(table.get("rules", {}), **{rule: rule_table})
            try:
                with i18n.speaking(c.lang):  # the checker's words in the reader's language
                    changed = site_mod.apply_alerts(c.db, table, c.now_ms, c.me["username"])
            except site_mod.SiteFileError as exc:
                values: dict = {k: form.get(k) for k in form if k != "csrf"}
                values["enabled"] = form.get("enabled") == "on"
                return _page(c, values, _field_errors(exc.errors, rule), rule, 400)
        saved = site_mod.revision(c.db) if changed else "none"
        return RedirectResponse("/alerts/rules?saved=%s#rule-%s" % (saved, rule), status_code=303)


def _field_errors(errors, rule):
    """{field: one-line error} from the checker's "alerts.rules.RULE.FIELD: text" lines; a
    problem elsewhere in the table (there should be none: it was checked when stored) under ""."""
    out = {}
    prefix = "alerts.rules.%s." % rule
    for line in errors:
        path, _sep, text = line.partition(": ")
        if path.startswith(prefix):
            out.setdefault(path[len(prefix) :], text)
        else:
            out[""] = out.get("", "") + line + " "
    return out
