"""Pure: the hour x weekday grid of one office's polls (the heat map page, /heatmap).

build_report groups by day, week or month only, so the grid is counted here, poll by poll,
with the same rules as the report (kpi_core.count_polls: invalid polls left out, No/silent
staff polls under a confirmed force-majeure period left out of DI-staff): the DI-staff of
all cells together is the report's DI-staff for the same office and range. The pages read the
polls of one office and one range only (derive's read API); when the SQL rollups arrive they
should feed this grid (per-hour-of-week sums) instead of the polls.
"""

import datetime as _dt

import kpi_core

WEEKDAYS = 7
HOURS = 24


def _cell_key(opened_ms, tz):
    local = _dt.datetime.fromtimestamp(opened_ms / 1000.0, tz)
    return local.weekday(), local.hour


def grid(polls, tz, k, min_n, fm_periods=(), invalid=()):
    """{(weekday 0=Monday, local hour): cell} over the polls (derive rows: site, device,
    open_seq, opened_ms, answer, kind) in the office's timezone tz. A cell:
    polls (valid polls of every question), staff (valid staff-question polls), silent_share
    (silent / valid polls, a kpi_core Figure or None), di_staff (kpi_core Figure or None),
    small (fewer valid staff polls than min_n: show "too few", not a colour).
    Every hour of the week is present, empty ones with zeros."""
    by_cell = {}
    for p in polls:
        by_cell.setdefault(_cell_key(p["opened_ms"], tz), []).append(dict(p, opened_at=p["opened_ms"]))
    invalid = frozenset(invalid)
    periods = list(fm_periods)
    out = {}
    for day in range(WEEKDAYS):
        for hour in range(HOURS):
            records = by_cell.get((day, hour), [])
            out[(day, hour)] = cell(records, k, min_n, periods, invalid)
    return out


def cell(records, k, min_n, periods, invalid):
    """One cell's figures from its poll records (with opened_at)."""
    every = kpi_core.count_polls(records, invalid=invalid)
    staff_records = [r for r in records if r.get("kind") == "staff"]
    staff = kpi_core.count_polls(staff_records, fm_periods=periods, invalid=invalid) if staff_records else None
    di = kpi_core.di_staff(staff, k) if staff is not None and staff.valid else None
    silent = None
    if every.valid:
        low, high = kpi_core.wilson(every.silent, every.valid)
        silent = kpi_core.Figure(every.silent / every.valid, low, high, every.valid)
    staff_n = staff.valid if staff is not None else 0
    return {
        "polls": every.valid,
        "staff": staff_n,
        "silent_share": silent,
        "di_staff": di,
        "small": staff_n < min_n,
    }


def total(polls, k, min_n, fm_periods=(), invalid=()):
    """The same figures over every poll (one cell for the whole grid)."""
    records = [dict(p, opened_at=p["opened_ms"]) for p in polls]
    return cell(records, k, min_n, list(fm_periods), frozenset(invalid))
