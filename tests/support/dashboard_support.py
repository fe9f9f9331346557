"""A four-week chain for the dashboard tests (tests/console/test_dashboards*.py): two offices in two
timezones, three employees (two with enough polls to be ranked, one with too few), an hour of the
week with enough polls for a coloured heat-map cell, an invalid poll and a confirmed
force-majeure period (the heat map must leave them out as the report does)."""

import datetime as _dt
import zoneinfo

from console_support import PASSWORD
from gw_site_support import MIN, SITE_TOML, Panel, apply_site, store_events

from gateway import derive, review, users

MSK = zoneinfo.ZoneInfo("Europe/Moscow")
BER = zoneinfo.ZoneInfo("Europe/Berlin")
FIRST_DAY = _dt.date(2025, 3, 3)  # a Monday
DAYS = 28
FROM, TO = "2025-03-03", "2025-03-30"
BUSY_HOUR = 10  # Monday 10:00-10:59 Moscow time: 9 polls each Monday -> 36 in that cell

DASH_TOML = (
    SITE_TOML.replace(
        "[[questions]]", '[[sites]]\nid = "ber"\nname = "Berlin Mitte"\ntimezone = "Europe/Berlin"\n\n[[questions]]', 1
    ).replace("[[employees]]", '[[employees]]\nid = "sidorov"\nname = "Ivan Sidorov"\n\n[[employees]]', 1)
    + """
[[panels]]
site = "msk"
device = "desk-2"
question = "staff"

[[panels]]
site = "ber"
device = "desk-1"
question = "staff"

[[roster]]
panel = "msk/desk-2"
employee = "sidorov"
from = 2025-01-01T00:00:00Z

[[roster]]
panel = "ber/desk-1"
employee = "petrov"
from = 2025-01-01T00:00:00Z
"""
)

ACCOUNTS = (
    ("analyst", "analyst", {"all_offices": True}),
    ("manager", "store-manager", {"offices": ["msk"]}),
)

# answers cycle through this pattern (None: silent)
PATTERN = ["yes", "yes", "no", "yes", None, "yes", "unsure", "yes", "no", "yes", "yes"]


def _ms(day, hour, minute, tz):
    return int(_dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp() * 1000)


def build(db):
    """The chain; returns {"busy": [answers of the Monday 10 h Moscow polls, valid ones]}."""
    apply_site(db, DASH_TOML, now_ms=_ms(FIRST_DAY, 0, 0, MSK) - 7 * 24 * 60 * MIN)
    boot = _ms(FIRST_DAY, 0, 0, MSK) - 48 * 60 * MIN
    iva, sid = Panel("msk", "desk-1", booted_at=boot), Panel("msk", "desk-2", booted_at=boot)
    pet = Panel("ber", "desk-1", booted_at=boot)
    exit_ = Panel("msk", "exit", booted_at=boot)
    busy, i = [], 0
    invalid_id = fm_at = None
    for d in range(DAYS):
        day = FIRST_DAY + _dt.timedelta(days=d)
        if day.weekday() >= 5:
            continue
        slots = [(9, 15), (11, 0), (14, 30), (16, 45)]
        if day.weekday() == 0:
            slots += [(BUSY_HOUR, 5 * m) for m in range(1, 10)]
        for hour, minute in sorted(slots):
            answer = PATTERN[i % len(PATTERN)]
            i += 1
            at = _ms(day, hour, minute, MSK)
            iva.poll(at, answer)
            seq = iva.seq - (1 if answer else 0)
            if hour == BUSY_HOUR and d == 7 and minute == 5:  # the second Monday's first busy poll
                invalid_id = "msk/desk-1/%d" % seq
            else:
                if hour == BUSY_HOUR:
                    busy.append(answer)
        for hour, minute in ((10, 0), (12, 20), (15, 40)):
            pet.poll(_ms(day, hour, minute, BER), PATTERN[(i + hour) % len(PATTERN)])
        if day.weekday() == 0:
            sid.poll(_ms(day, 13, 0, MSK), "no")
        exit_.poll(_ms(day, 12, 0, MSK), PATTERN[d % len(PATTERN)])
        if d == 14:  # a confirmed force-majeure report with a silent and a No poll inside
            fm_at = _ms(day, 17, 30, MSK)
            iva.press(fm_at, "seller_long")
            iva.poll(fm_at + 2 * MIN, None)
            iva.poll(fm_at + 4 * MIN, "no")
    store_events(db, iva.events + sid.events + pet.events + exit_.events)
    end = _ms(FIRST_DAY + _dt.timedelta(days=DAYS + 1), 0, 0, MSK)
    derive.rebuild(db, end)
    polls, fms = derive.polls_and_reports(db, "msk")
    assert invalid_id and fms, "the chain needs its invalid poll and its report"
    review.record(db, "poll", invalid_id, "invalid", "staff test", "expert", end)
    fm = fms[0]
    review.record(db, "fm", "%s/%s/%d" % (fm["site"], fm["device"], fm["seq"]), "confirm", "", "expert", end)
    for name, role, scope in ACCOUNTS:
        users.add(db, name, PASSWORD, role, end, name=name.title(), lang="en", **scope)
    return {"busy": busy}
