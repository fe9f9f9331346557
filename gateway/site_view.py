"""The settings in force, for people: as a site file (`rating site export`, which `rating site
apply` takes back without a change), as a summary (`rating site show`), what a change changes
(`site apply`'s old -> new) and which staff-question panels have no one on the roster while
their office is open. Pure: built from a gateway.site.History.
"""

import datetime as _dt
import json

from gateway import site as site_mod
from gateway import times
from gateway.i18n import _

# the order a site file is read in: later sections refer to earlier ones
_SECTIONS = (
    ("region", "regions"),
    ("site", "sites"),
    ("question", "questions"),
    ("employee", "employees"),
    ("panel", "panels"),
    ("roster", "roster"),
)


def in_force(history, t):
    """{kind: [(key, data)]} of every entity in force at `t` (removed ones left out)."""
    out = {}
    for kind, _section in _SECTIONS:
        out[kind] = []
        for _kind, key in history.keys(kind):
            data = history.get(kind, key, t)
            if data is not None:
                out[kind].append((key, data))
    return out


# --- TOML -------------------------------------------------------------------------------------


def _value(v):
    """A TOML value for what a site file may hold (text, whole numbers, numbers, booleans)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):  # lists of text (alerts.channels, alerts.email.to): a JSON array is TOML
        return "[%s]" % ", ".join(_value(x) for x in v)
    # a JSON string is a valid TOML basic string (same escapes; \\uXXXX for control characters)
    return json.dumps(v, ensure_ascii=False)


def _table(lines, head, fields):
    lines.append("")
    lines.append(head)
    for name, v in fields:
        if v is not None:
            lines.append("%s = %s" % (name, _value(v)))


def _roster_fields(key, data):
    panel, _hash, slot = key.partition("#")
    days, bar, hours = slot.rpartition("|") if "|" in slot else ("", "", slot)
    fields = [("panel", panel), ("employee", data.get("employee"))]
    if days or bar:
        fields.append(("days", days))
    if hours:
        fields.append(("hours", hours))
    return fields


def to_toml(history, t, note=""):
    """The settings in force at `t` as a site file. Entries carry no `from`: applied again, each
    equals the value in force, so nothing is recorded."""
    lines = ["# " + line for line in note.splitlines()] if note else []
    dep = history.get("deployment", site_mod.DEPLOYMENT_KEY, t) or dict(site_mod.DEFAULT_DEPLOYMENT)
    lines.append("[deployment]")
    for name in ("lang", "k", "review_share", "loyalty_days", "pos_before_minutes", "pos_after_minutes"):
        if dep.get(name) is not None:
            lines.append("%s = %s" % (name, _value(dep[name])))
    for table in ("thresholds", "reference"):
        if dep.get(table):
            _table(lines, "[deployment.%s]" % table, sorted(dep[table].items()))
    entities = in_force(history, t)
    for kind, section in _SECTIONS:
        for key, data in entities[kind]:
            head = "[[%s]]" % section
            if kind == "site":
                fields = [("id", key)] + sorted(
                    data.items(), key=lambda kv: ("name", "timezone", "region", "hours", "days").index(kv[0])
                )
            elif kind in ("region", "question", "employee"):
                fields = [("id", key)] + list(data.items())
            elif kind == "panel":
                site, device = key.split("/", 1)
                fields = [("site", site), ("device", device)] + list(data.items())
            else:
                fields = _roster_fields(key, data)
            _table(lines, head, fields)
    for name, table in (("alerts", history.alerts(t)), ("followups", history.followups(t))):
        if table is not None:
            _nested(lines, name, table)
    return "\n".join(lines) + "\n"


def _nested(lines, path, table):
    """A checked table with sub-tables ([alerts], gateway/alertconf.py) as TOML: its own values
    under [path] (the header also for an empty table, which the checker keeps as it is), then
    each sub-table. A table holding only sub-tables gets no header of its own."""
    values = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    subs = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    if values or not subs:
        _table(lines, "[%s]" % path, values)
    for name, sub in subs:
        if sub or name not in ("rules", "offices", "webhooks"):
            _nested(lines, "%s.%s" % (path, name), sub)


# --- what a change changes --------------------------------------------------------------------


def shown(v):
    """A value as `site apply` and `site show` print it."""
    if v is None:
        return "-"
    if isinstance(v, dict):
        return "{%s}" % ", ".join("%s=%s" % (k, shown(x)) for k, x in sorted(v.items()))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return _value(v)


def changes_text(old, new):
    """'field: old -> new' for every field that differs (new entity: every field; removed: the
    whole entity)."""
    if old is None and new is None:
        return []
    if new is None:
        return [_("removed (was %s)") % shown(old)]
    if old is None:
        return [_("new: %s") % ", ".join("%s=%s" % (k, shown(v)) for k, v in new.items() if v is not None)]
    out = []
    for name in list(old) + [k for k in new if k not in old]:
        if old.get(name) != new.get(name):
            out.append("%s: %s -> %s" % (name, shown(old.get(name)), shown(new.get(name))))
    return out


# --- the roster during opening hours ------------------------------------------------------------

WEEK_MS = 7 * 24 * 3600000


def _open_at(site_data, local):
    hours = site_data.get("hours")
    days = site_data.get("days")
    if days and times.DAYS[local.weekday()] not in days.split(","):
        return False
    return not hours or times.in_hours(local.hour * 60 + local.minute, times.parse_hours(hours))


def _breakpoints(history, roster_keys, office, tz, start, end):
    """The instants in [start, end) where the panel's staffing or its office's opening can
    change: local midnights, the starts and ends of its shifts and of the opening hours (each
    day, in the office's timezone, so a DST change is followed), and the `from` of its roster
    rows. Between two of them nothing changes: one look per stretch is enough."""
    minutes = {0}
    points = {start}
    if office.get("hours"):
        minutes.update(times.parse_hours(office["hours"]))
    for key in roster_keys:
        hours = key.split("#", 1)[1].rpartition("|")[2]
        if hours:
            minutes.update(times.parse_hours(hours))
        points.update(row[0] for row in history.rows("roster", key))  # each row's `from`
    first_day = times.local(start, tz).date()
    for offset in range(-1, 9):
        day = first_day + _dt.timedelta(days=offset)
        for m in minutes:
            if m < 24 * 60:  # (24:00 is the next day's midnight, there already)
                local = _dt.datetime(day.year, day.month, day.day, m // 60, m % 60, tzinfo=tz)
                points.add(int(local.timestamp() * 1000))
    return sorted(t for t in points if start <= t < end)


def unstaffed(history, now_ms):
    """[(panel key, uncovered ms, open ms, first uncovered ms)] for the staff-question panels in
    force that have no one on the roster at some time their office is open during the coming
    week (an office without opening hours: open all the time, so only a panel with no one at all
    is listed - a shift roster is not flagged for the night)."""
    out = []
    end = now_ms + WEEK_MS
    rosters = {}  # "site/device" -> its roster keys
    for _kind, key in history.keys("roster"):
        rosters.setdefault(key.split("#", 1)[0], []).append(key)
    for site, device in history.panels(now_ms):
        panel = history.panel(site, device, now_ms) or {}
        question = history.question(panel.get("question"), now_ms) or {}
        if question.get("kind") != "staff":
            continue
        office = history.get("site", site, now_ms) or {}
        tz = history.tz(site, now_ms)
        has_hours = bool(office.get("hours") or office.get("days"))
        key = "%s/%s" % (site, device)
        points = _breakpoints(history, rosters.get(key, []), office, tz, now_ms, end)
        open_ms = missing = 0
        first = None
        for t, nxt in zip(points, points[1:] + [end], strict=True):
            if has_hours and not _open_at(office, times.local(t, tz)):
                continue
            open_ms += nxt - t
            if history.employee_at(site, device, t) is None:
                missing += nxt - t
                first = t if first is None else first
        if missing and (has_hours or missing == open_ms):
            out.append((key, missing, open_ms, first))
    return out
