"""Additive rollups of the derived polls and force-majeure reports: what `rating report` sums.

Every KPI of the method is a ratio of sums (METHOD.md, kpi_core.ScopeCounts). This module keeps
those sums per panel x employee x question (and kind) x local day of the office, in
`poll_rollup` and `fm_rollup` (gateway/migrations/015_rollup.sql), and answers the report's
aggregate queries over them; it owns those two tables.

Why that grain: every report groups by office, panel, employee or question (all of them key
columns, so any grouping is a GROUP BY) and by local day, ISO week or month of the office (each
a set of whole local days; the day, week and month labels are columns). A day of a panel holds
~10 polls in a busy chain, so a month of 3,000 panels is ~90,000 rows instead of ~1M polls.
An hour grain would hold less than one poll per row at that rate and save nothing. The office
timezone in force at the poll's time is a key column too, so a timezone change of the site file
never mixes two different days. Each row also keeps its first and last poll time (min_ms,
max_ms): a report range that cuts through a row's day (a --from/--to that is no midnight, or a
local range read in another office's zone) takes that row's polls one by one instead (`rows_cut`).

What each row counts is decided per poll with the rules of the poll-by-poll report
(gateway.report_core.tally_polls): a poll an expert marked invalid counts only as invalid; a
staff-question No or silent poll opened inside a confirmed force-majeure period of its panel
counts into fm_no / fm_silent too; contact: the poll counts toward conversion and coverage
(its panel's `conversion` setting at its time, stored on the poll by gateway.derive).

Maintenance (`refresh`): gateway.derive calls it in the transaction that writes a panel's
polls, from the earliest local day it touched (the whole panel after a re-derivation from
scratch); gateway.review calls it for the whole panel with every verdict (an invalid mark or a
confirmed period changes what the panel's rows count). `rating rebuild` re-derives every panel,
which refreshes every panel's rows.
"""

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from gateway import derive, review
from gateway.db import panel_filters

POLL_SUMS: tuple[str, ...] = (
    "polls",
    "invalid",
    "yes",
    "no",
    "unsure",
    "silent",
    "fm_no",
    "fm_silent",
    "contact",
    "t_device",
    "t_repaired",
    "t_arrival",
)
FM_SUMS = ("reports", "confirmed", "rejected")
_POLL_KEY = ("site", "device", "employee", "question", "kind", "tz", "day", "week", "month")
_FM_KEY = ("site", "device", "employee", "question", "tz", "day", "week", "month")
# polls of a local day lie within this much of any instant of that day in any timezone
_DAY_SLACK_MS = 4 * 86400 * 1000
_OPEN_LO, _OPEN_HI = -(2**62), 2**62
PERIOD_COLUMNS = {"day": "day", "week": "week", "month": "month", "all": None}


def _labels(t_ms: int, tz: _dt.tzinfo) -> tuple[str, str, str]:
    """(day, ISO week, month) labels of t_ms in tz, as gateway.report_core.bucket writes them."""
    day = _dt.datetime.fromtimestamp(t_ms / 1000.0, tz).date()
    iso = (day - _dt.timedelta(days=day.weekday())).isocalendar()
    return day.isoformat(), "%04d-W%02d" % (iso[0], iso[1]), "%04d-%02d" % (day.year, day.month)


class Panel:
    """What one panel's polls count for: its verdicts in force and confirmed periods."""

    def __init__(self, db, site: str, device: str, verdicts=None, fms=None):
        """The panel's verdicts and reports as stored (db), or as given (verdicts: its
        review.latest_of_panel(); fms: its report rows in seq order; db None)."""
        self.site, self.device = site, device
        if db is not None:
            verdicts = review.latest_of_panel(db, site, device)
            fms = derive.panel_reports(db, site, device)
        self.fms = fms or []
        verdicts = verdicts or {}
        self.invalid = review.invalid_poll_ids(verdicts)
        self.periods = [(p["start"], p["end"]) for p in review.confirmed_periods(self.fms, verdicts)]
        self.status = {
            (f["site"], f["device"], f["seq"]): review.fm_status(verdicts, f["site"], f["device"], f["seq"])
            for f in self.fms
        }

    def poll_key_sums(self, history, p: Mapping[str, Any]) -> tuple[tuple, dict[str, int]]:
        """(rollup key, sums) of one poll row."""
        at = p["opened_ms"]
        tz = history.tz(p["site"], at)
        key = (p["site"], p["device"], p["employee"] or "", p["question"] or "", p["kind"] or "", str(tz))
        key += _labels(at, tz)
        sums: dict[str, int] = dict.fromkeys(POLL_SUMS, 0)
        sums["polls"] = 1
        if "%s/%s/%s" % (p["site"], p["device"], p["open_seq"]) in self.invalid:
            sums["invalid"] = 1
            return key, sums
        answer = p["answer"] or "silent"
        sums[answer] = 1
        if p["kind"] == "staff" and answer in ("no", "silent") and any(a <= at < b for a, b in self.periods):
            sums["fm_" + answer] = 1
        sums["contact"] = 1 if p["contact"] else 0
        sums["t_" + p["time_source"]] = 1
        return key, sums

    def fm_key_sums(self, history, f: Mapping[str, Any]) -> tuple[tuple, dict[str, int]]:
        at = f["start_ms"]
        tz = history.tz(f["site"], at)
        qid = (history.panel(f["site"], f["device"], f["pressed_ms"]) or {}).get("question")
        key = (f["site"], f["device"], f["employee"] or "", qid or "", str(tz)) + _labels(at, tz)
        status = self.status.get((f["site"], f["device"], f["seq"]), "pending")
        return key, {"reports": 1, "confirmed": int(status == "confirmed"), "rejected": int(status == "rejected")}


def add_up(
    items: Iterable[tuple[tuple, dict[str, int]]], at_of: Iterable[int], names: tuple[str, ...]
) -> dict[tuple, dict[str, int]]:
    """{key: sums + min_ms / max_ms} of (key, sums) items and their times."""
    out: dict[tuple, dict[str, int]] = {}
    for (key, sums), at in zip(items, at_of, strict=True):
        row = out.get(key)
        if row is None:
            out[key] = dict(sums, min_ms=at, max_ms=at)
            continue
        for name in names:
            row[name] += sums[name]
        row["min_ms"] = min(row["min_ms"], at)
        row["max_ms"] = max(row["max_ms"], at)
    return out


def refresh(db, site: str, device: str, history, since_ms: int | None = None, until_ms: int | None = None) -> None:
    """Recompute the panel's rollup rows of the local days from `since_ms`'s through
    `until_ms`'s (a day more on each side, so a timezone change cannot leave a day half done);
    None: from the first / through the last row of the panel."""
    where, params = "site = ? AND device = ?", [site, device]
    days: list[str | None] = [None, None]
    window: list[int | None] = [None, None]
    for i, (t, step) in enumerate(((since_ms, -1), (until_ms, 1))):
        if t is None:
            continue
        day = _dt.datetime.fromtimestamp(t / 1000.0, history.tz(site, t)).date() + _dt.timedelta(days=step)
        days[i] = label = day.isoformat()
        window[i] = t + step * _DAY_SLACK_MS
        where += " AND day %s ?" % (">=" if step < 0 else "<=")
        params.append(label)
    for table in ("poll_rollup", "fm_rollup"):
        db.execute("DELETE FROM %s WHERE %s" % (table, where), tuple(params))
    panel = Panel(db, site, device)
    polls = derive.panel_polls_between(db, site, device, window[0], window[1])
    _insert(
        db,
        "poll_rollup",
        _POLL_KEY,
        POLL_SUMS,
        add_up((panel.poll_key_sums(history, p) for p in polls), (p["opened_ms"] for p in polls), POLL_SUMS),
        days,
    )
    fms = [
        f
        for f in panel.fms
        if (window[0] is None or f["start_ms"] >= window[0]) and (window[1] is None or f["start_ms"] <= window[1])
    ]
    _insert(
        db,
        "fm_rollup",
        _FM_KEY,
        FM_SUMS,
        add_up((panel.fm_key_sums(history, f) for f in fms), (f["start_ms"] for f in fms), FM_SUMS),
        days,
    )


def _values(key_cols, sum_cols, rows, days):
    day_at = key_cols.index("day")
    first, last = days
    return [
        key + (sums["min_ms"], sums["max_ms"]) + tuple(sums[c] for c in sum_cols)
        for key, sums in rows.items()
        if (first is None or key[day_at] >= first) and (last is None or key[day_at] <= last)
    ]


def _insert(db, table, key_cols, sum_cols, rows, days):
    values = _values(key_cols, sum_cols, rows, days)
    if values:
        cols = key_cols + ("min_ms", "max_ms") + sum_cols
        db.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join("?" * len(cols))), values)


ROLLUP_COLUMNS = {
    "poll_rollup": _POLL_KEY + ("min_ms", "max_ms") + POLL_SUMS,
    "fm_rollup": _FM_KEY + ("min_ms", "max_ms") + FM_SUMS,
}


def panel_rows(history, panel: Panel, polls: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple]]:
    """Pure: {"poll_rollup": rows, "fm_rollup": rows} (tuples in ROLLUP_COLUMNS order) of a
    panel from its polls (every one) and `panel` (its verdicts and reports): what refresh()
    of the whole panel writes, for a rebuild that derives the panel in memory and writes its
    rows with many other panels' (insert_rows)."""
    polls = list(polls)
    poll_sums = add_up((panel.poll_key_sums(history, p) for p in polls), (p["opened_ms"] for p in polls), POLL_SUMS)
    fm_sums = add_up((panel.fm_key_sums(history, f) for f in panel.fms), (f["start_ms"] for f in panel.fms), FM_SUMS)
    return {
        "poll_rollup": _values(_POLL_KEY, POLL_SUMS, poll_sums, (None, None)),
        "fm_rollup": _values(_FM_KEY, FM_SUMS, fm_sums, (None, None)),
    }


def insert_rows(db, rows_by_table: Mapping[str, list[tuple]]) -> None:
    """Write panel_rows() of panels whose rollup rows were cleared (clear_panels)."""
    for table, rows in rows_by_table.items():
        db.insert_rows(table, ROLLUP_COLUMNS[table], rows)


def clear_panels(db, panels) -> None:
    """clear_panel() of several panels, a statement a table (per 200 panels)."""
    for where, params in panel_filters(panels):
        for table in ("poll_rollup", "fm_rollup"):
            db.execute("DELETE FROM %s WHERE %s" % (table, where), params)


def clear(db) -> None:
    """Drop every rollup row (`rating rebuild` refreshes each panel as it re-derives it)."""
    for table in ("poll_rollup", "fm_rollup"):
        db.execute("DELETE FROM %s" % table)


def clear_panel(db, site: str, device: str) -> None:
    for table in ("poll_rollup", "fm_rollup"):
        db.execute("DELETE FROM %s WHERE site = ? AND device = ?" % table, (site, device))


# ---- the report's queries --------------------------------------------------------------------


class Range:
    """The report range in SQL: one [lo, hi) for every office, or one per office (`per_site`:
    {site: (lo, hi)}, for a range of local times), None = open."""

    def __init__(self, lo: int | None = None, hi: int | None = None, per_site: Mapping[str, tuple] | None = None):
        self.lo, self.hi, self.per_site = lo, hi, per_site

    def sql(self, inside: bool) -> tuple[str, str, list[Any]]:
        """(CTE, condition, params): the rows wholly inside the range (inside=True), or those
        that reach into it without lying wholly inside (False: their polls are taken one by one)."""
        if self.per_site is not None:
            if not self.per_site:
                return "%s", " WHERE 1 = 0", []
            cte = "WITH b (bsite, lo, hi) AS (VALUES %s) " % ", ".join(["(?, ?, ?)"] * len(self.per_site))
            params: list[Any] = []
            for site, (lo, hi) in sorted(self.per_site.items()):
                params += [site, _OPEN_LO if lo is None else lo, _OPEN_HI if hi is None else hi]
            whole = "r.min_ms >= b.lo AND r.max_ms < b.hi"
            touch = "r.max_ms >= b.lo AND r.min_ms < b.hi"
            if inside:
                return cte + "%s", " JOIN b ON b.bsite = r.site WHERE " + whole, params
            return cte + "%s", " JOIN b ON b.bsite = r.site WHERE %s AND NOT (%s)" % (touch, whole), params
        lo = _OPEN_LO if self.lo is None else self.lo
        hi = _OPEN_HI if self.hi is None else self.hi
        if inside:
            return "%s", " WHERE r.min_ms >= ? AND r.max_ms < ?", [lo, hi]
        return "%s", " WHERE r.max_ms >= ? AND r.min_ms < ? AND NOT (r.min_ms >= ? AND r.max_ms < ?)", [lo, hi, lo, hi]


def _filters(site: str | None, employee: str | None) -> tuple[str, list[Any]]:
    sql, params = "", []
    if site is not None:
        sql += " AND r.site = ?"
        params.append(site)
    if employee is not None:
        sql += " AND r.employee = ?"
        params.append(employee)
    return sql, params


def sums(
    db,
    table: str,
    group: tuple[str, ...],
    period: str,
    rng: Range,
    site: str | None,
    employee: str | None,
    order: str | None = None,
    tuples: bool = False,
    period_first: bool = False,
) -> Any:
    """The rows of `table` (poll_rollup | fm_rollup) wholly inside the range, summed per
    `group` columns (of site, device, employee, question, kind, tz) and the period's label
    (column "period"; "all" for the whole range), with MIN(min_ms) / MAX(max_ms). A list; with
    `order` (an SQL expression of the group columns, e.g. "r.site"), an iterator of the sums
    ordered by it and then the period label, in code point order on either database (read it
    inside `db.reading()`); tuples: those rows as tuples (columns: `group`, period, min_ms,
    max_ms, then the sums); period_first: ordered by the period label, then by `order`."""
    names = POLL_SUMS if table == "poll_rollup" else FM_SUMS
    pcol = PERIOD_COLUMNS[period]
    label = "r.%s" % pcol if pcol else "'all'"
    by_period = ", " + label if pcol else ""
    cte, where, params = rng.sql(inside=True)
    extra, extra_params = _filters(site, employee)
    cols = ", ".join("r.%s" % g for g in group)
    sql = cte % (
        "SELECT %s, %s AS period, MIN(r.min_ms) AS min_ms, MAX(r.max_ms) AS max_ms, %s FROM %s r%s%s GROUP BY %s"
        % (
            cols,
            label,
            # SUM of an INTEGER is a BIGINT kept in place; of a BIGINT, a NUMERIC state per group and
            # sum on PostgreSQL (2x the memory: a chain's weekly sums spilled to disk). A rollup
            # row's counts are one panel's polls of one day, far below 2**31.
            ", ".join("CAST(SUM(CAST(r.%s AS INTEGER)) AS BIGINT) AS %s" % (n, n) for n in names),
            table,
            where,
            extra,
            cols + by_period,
        )
    )
    if order is None:
        return db.query(sql, tuple(params + extra_params))
    keys = [order] + ([label] if pcol else [])
    if period_first:
        keys.reverse()
    collate = ' COLLATE "C"' if db.dialect == "postgresql" else ""  # PostgreSQL: code point order, as Python's
    sql += " ORDER BY " + ", ".join("(%s)%s" % (k, collate) for k in keys)
    return db.stream(sql, tuple(params + extra_params), tuples=tuples)


def sites_in(db, rng: Range, site: str | None, employee: str | None) -> list[str]:
    """The offices with rollup rows wholly inside the range."""
    cte, where, params = rng.sql(inside=True)
    extra, extra_params = _filters(site, employee)
    sql = cte % " UNION ".join(
        "SELECT DISTINCT r.site FROM %s r%s%s" % (t, where, extra) for t in ("poll_rollup", "fm_rollup")
    )
    both = params + extra_params * 2 if rng.per_site is not None else (params + extra_params) * 2  # VALUES once
    return [r["site"] for r in db.query(sql, tuple(both))]


def rows_cut(db, table: str, rng: Range, site: str | None, employee: str | None) -> list[dict[str, Any]]:
    """The rows of `table` that reach into the range without lying wholly inside it (key
    columns and min_ms / max_ms): their polls / reports are counted one by one."""
    key = _POLL_KEY if table == "poll_rollup" else _FM_KEY
    cte, where, params = rng.sql(inside=False)
    extra, extra_params = _filters(site, employee)
    sql = cte % (
        "SELECT %s, r.min_ms, r.max_ms FROM %s r%s%s" % (", ".join("r.%s" % k for k in key), table, where, extra)
    )
    return db.query(sql, tuple(params + extra_params))


def cut_items(db, history, table: str, row: Mapping[str, Any], panels: dict) -> list[tuple[tuple, dict, int]]:
    """The polls (or reports) of one cut rollup row, each as (key, sums, time)."""
    site, device = row["site"], row["device"]
    panel = panels.get((site, device))
    if panel is None:
        panel = panels[(site, device)] = Panel(db, site, device)
    key_cols = _POLL_KEY if table == "poll_rollup" else _FM_KEY
    want = tuple(row[k] for k in key_cols)
    out = []
    if table == "poll_rollup":
        for p in derive.panel_polls(db, site, device, row["min_ms"], row["max_ms"] + 1):
            key, s = panel.poll_key_sums(history, p)
            if key == want:
                out.append((key, s, p["opened_ms"]))
    else:
        for f in panel.fms:
            if row["min_ms"] <= f["start_ms"] <= row["max_ms"]:
                key, s = panel.fm_key_sums(history, f)
                if key == want:
                    out.append((key, s, f["start_ms"]))
    return out


def key_dict(table: str, key: tuple) -> dict[str, Any]:
    return dict(zip(_POLL_KEY if table == "poll_rollup" else _FM_KEY, key, strict=True))


def sites(db) -> list[str]:
    """The offices that have rollup rows."""
    return [
        r["site"] for r in db.query("SELECT DISTINCT site FROM poll_rollup UNION SELECT DISTINCT site FROM fm_rollup")
    ]


def panels(db) -> list[tuple[str, str]]:
    """The panels that have rollup rows."""
    return [
        (r["site"], r["device"])
        for r in db.query(
            "SELECT DISTINCT site, device FROM poll_rollup UNION SELECT DISTINCT site, device FROM fm_rollup"
        )
    ]


def built(db) -> bool:
    """Whether any rollup row exists (a store derived before the rollups has polls and none)."""
    return db.query_one("SELECT 1 AS x FROM poll_rollup LIMIT 1") is not None
