"""Time as people read and write it: the one place the gateway reads the clock, parses a time a
person typed and formats one for a person.

Every time a user sees is in an office's timezone and says which zone it is in
(`format_time(ms, tz)` -> "2025-01-06 09:00:00 MSK"); every time a user types without a UTC
offset is read in an office's timezone (`parse_instant`, `parse_bound`, `parse_since`). Which
office's timezone applies is the caller's business (gateway.site.History.tz / home_tz).

Also the daily-shift vocabulary the site file and the simulator's scenarios share:
`parse_hours("09:00-14:00")` and `parse_days(["mon-fri", "sat"])`.

Everything here is pure except `now_ms()`.
"""

import datetime as _dt
import time
import zoneinfo

from gateway.i18n import _

UTC = _dt.UTC
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MS = 86400000
_AGE_UNITS = {"s": 1000, "m": 60000, "h": 3600000, "d": DAY_MS}


def now_ms() -> int:
    """The wall clock in Unix epoch milliseconds."""
    return int(time.time() * 1000)


def zone(name: str) -> _dt.tzinfo:
    """The IANA timezone `name` ("Europe/Moscow"); ValueError naming it when it is unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(_("%r is not a known IANA timezone (e.g. Europe/Moscow)") % (name,)) from None


# ---- parsing -------------------------------------------------------------------------------


def parse_instant(value: object, tz: _dt.tzinfo | None = None) -> int:
    """A TOML date-time or date, an ISO 8601 string or Unix epoch ms -> epoch ms. A value
    without a UTC offset is read in `tz`; without `tz` it is a ValueError."""
    if isinstance(value, bool):
        raise ValueError(_("must be a date-time, got %r") % (value,))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(_("%r is not an ISO 8601 date-time like 2025-01-06T09:00:00+03:00") % (value,)) from None
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, _dt.datetime):
        raise ValueError(_("must be a date-time like 2025-01-06T09:00:00+03:00, got %r") % (value,))
    if value.tzinfo is None:
        if tz is None:
            raise ValueError(_("%s has no UTC offset; write it like 2025-01-06T09:00:00+03:00") % value.isoformat())
        value = value.replace(tzinfo=tz)
    return int(round(value.timestamp() * 1000))


def parse_bound(text: str, tz: _dt.tzinfo, end: bool = False, local: bool = False) -> int | _dt.datetime:
    """A range bound a person typed (--from/--to) -> epoch ms.

    Digits are epoch ms. A date (2025-01-06) is the start of that day in `tz`; with end=True the
    start of the next day (a `--to` date includes the whole day). A date-time without an offset
    is read in `tz`. local=True (a range over offices in several timezones) returns a date or a
    date-time without an offset as a naive datetime instead, for the caller to read in each
    office's own timezone (`at`). ValueError says what is wrong."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if len(text) == 10:
        try:
            day = _dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(_("%r is not a date like 2025-01-06") % text) from None
        if end:
            day += _dt.timedelta(days=1)
        start = _dt.datetime(day.year, day.month, day.day)
        return start if local else parse_instant(start, tz)
    if local:
        try:
            when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            when = None  # parse_instant below says what is wrong
        if when is not None and when.tzinfo is None:
            return when
    return parse_instant(text, tz)


def is_local(bound: object) -> bool:
    """A bound parse_bound(local=True) left as a local date-time (no instant yet)."""
    return isinstance(bound, _dt.datetime) and bound.tzinfo is None


def at(bound: int | _dt.datetime | None, tz: _dt.tzinfo) -> int | None:
    """A bound as epoch ms: a local one read in `tz`; ms (and None) as they are."""
    if isinstance(bound, _dt.datetime):
        return parse_instant(bound, tz)
    return bound


def parse_age(text: str) -> int | None:
    """'45s', '30m', '2h', '7d', '1.5h' -> milliseconds; None when `text` is not an age."""
    text = text.strip()
    unit = _AGE_UNITS.get(text[-1:])
    number = text[:-1]
    if unit is None or not number.replace(".", "", 1).isdigit():
        return None
    return int(float(number) * unit)


def parse_since(text: str, now: int, tz: _dt.tzinfo) -> int:
    """An age ('2h': that long before `now`) or a bound (a date or date-time, read in `tz`
    without an offset) -> epoch ms."""
    age = parse_age(text)
    if age is not None:
        return now - age
    bound = parse_bound(text, tz)
    assert isinstance(bound, int)
    return bound


# ---- formatting ----------------------------------------------------------------------------


def local(ms: int, tz: _dt.tzinfo) -> _dt.datetime:
    """The aware local date-time of epoch ms in `tz`."""
    return _dt.datetime.fromtimestamp(ms / 1000.0, tz)


def zone_label(when: _dt.datetime) -> str:
    """The zone of an aware date-time as people know it: its abbreviation (MSK, UTC, PST) or,
    for zones whose tz database has none (Asia/Yekaterinburg reads "+05"), UTC+05."""
    abbr = when.strftime("%Z")
    if abbr and abbr.isalpha():
        return abbr
    offset = when.strftime("%z")  # +0500
    if not offset:
        return "UTC"
    return "UTC%s%s" % (offset[:3], "" if offset[3:] == "00" else ":" + offset[3:])


def format_time(ms: int | None, tz: _dt.tzinfo, seconds: bool = True, missing: str = "-") -> str:
    """'2025-01-06 09:00:00 MSK': epoch ms in `tz`, with the zone shown; `missing` for None."""
    if ms is None:
        return missing
    when = local(ms, tz)
    return "%s %s" % (when.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"), zone_label(when))


def format_span(start: int, end: int | None, tz: _dt.tzinfo) -> str:
    """'2025-01-06 09:00:00-09:15:00 MSK' (the end's date too when it is another day)."""
    if end is None:
        return "%s-" % format_time(start, tz)
    a, b = local(start, tz), local(end, tz)
    tail = b.strftime("%H:%M:%S") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M:%S")
    label = zone_label(a) if zone_label(a) == zone_label(b) else ""
    if not label:
        return "%s-%s" % (format_time(start, tz), format_time(end, tz))
    return "%s-%s %s" % (a.strftime("%Y-%m-%d %H:%M:%S"), tail, label)


def format_iso(ms: int, tz: _dt.tzinfo) -> str:
    """ISO 8601 with the offset: '2025-01-06T09:00:00+03:00' (machine-readable output)."""
    return local(ms, tz).isoformat(timespec="seconds")


# ---- daily shifts --------------------------------------------------------------------------


def parse_hours(text: object) -> tuple[int, int]:
    """'09:00-14:00' -> (540, 840): minutes of the day, end exclusive. An end before the start
    crosses midnight ('22:00-06:00'); '-24:00' and '-23:59' mean to the end of the day."""
    if not isinstance(text, str):
        raise ValueError(_('%r is not a time range like "09:00-14:00"') % (text,))
    try:
        start, end = text.split("-")
        a, b = _minute_of_day(start), _minute_of_day(end)
    except ValueError:
        raise ValueError(_('%r is not a time range like "09:00-14:00"') % (text,)) from None
    if b == 23 * 60 + 59:
        b = 24 * 60  # "...-23:59" means to the end of the day
    if a == b:
        raise ValueError(_("%r is an empty time range") % (text,))
    return a, b


def _minute_of_day(part: str) -> int:
    h, m = part.strip().split(":")
    if not (h.isdigit() and m.isdigit() and len(m) == 2 and 1 <= len(h) <= 2):
        raise ValueError(part)
    minutes = int(h) * 60 + int(m)
    if int(m) >= 60 or minutes > 24 * 60:
        raise ValueError(part)
    return minutes


def in_hours(minute: int, hours: tuple[int, int]) -> bool:
    """Whether a minute of the day lies in a range from parse_hours (which may cross midnight)."""
    a, b = hours
    return a <= minute < b if a < b else (minute >= a or minute < b)


def parse_days(value: object) -> tuple[int, ...]:
    """Days of the week -> sorted weekday numbers (Monday = 0). Accepts "mon-fri", "mon,wed,sat",
    or a list of such items (["mon", "tue"], ["mon-fri", "sun"]); a range may wrap ("fri-mon")."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(_("must be days of the week (%s; ranges like mon-fri), got %r") % (", ".join(DAYS), value))
    out = set()
    for item in items:
        part = item.strip() if isinstance(item, str) else item
        first, dash, last = part.partition("-") if isinstance(part, str) else (part, "", "")
        if first not in DAYS or (dash and last not in DAYS):
            raise ValueError(_("must be days of the week (%s; ranges like mon-fri), got %r") % (", ".join(DAYS), value))
        i = DAYS.index(first)
        j = DAYS.index(last) if dash else i
        out.update(range(i, j + 1) if i <= j else list(range(i, 7)) + list(range(0, j + 1)))
    return tuple(sorted(out))


def day_names(days: tuple[int, ...]) -> str:
    """(0, 1, 4) -> 'mon,tue,fri'."""
    return ",".join(DAYS[d] for d in days)
