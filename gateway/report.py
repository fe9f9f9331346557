"""`rating report`: every KPI of METHOD.md per employee / panel / office / question and period.

`build_report(db, ...)` = `load_inputs` (the I/O: settings history, polls, force-majeure
reports, verdicts, counts, lost events) + `gateway.report_core.compute` (pure: the rules and
every figure, through kpi_core, so the simulator's ground truth and this report count the same
way). It returns a plain dict (documented in docs/report-json.md); `render_table` and
`render_csv` turn it into text.
"""

import dataclasses
import time
from collections.abc import Collection
from typing import Any

import kpi_core
from gateway import derive, i18n, report_stream, report_sums, review, rollup, store
from gateway import site as site_mod
from gateway.db import Database
from gateway.i18n import _
from gateway.report_core import (  # noqa: F401  (the report's vocabulary, re-exported)
    BYS,
    FIGURES,
    FORMAT_VERSION,
    KINDS,
    PERIODS,
    TIME_SHARE_MAX,
    Bound,
    Gap,
    Inputs,
    Options,
    bucket,
    compute,
    instant,
    is_local,
)
from gateway.report_export import render_csv, render_table  # noqa: F401  (the report's text forms)
from kpi_core import Thresholds

# A local range bound becomes one instant per office; every such instant lies within this much
# of the bound read as UTC (UTC offsets run from -12 h to +14 h), so one query covers all offices.
_LOCAL_SLACK_MS = 26 * 3600 * 1000


def _query_range(history: site_mod.History, start: Bound, end: Bound) -> tuple[int | None, int | None]:
    """The range to query: the bounds as instants, widened by a day each way for local ones."""
    if is_local(start) or is_local(end):
        lo = instant(history, None, start)
        hi = instant(history, None, end)
        return (None if lo is None else lo - _LOCAL_SLACK_MS), (None if hi is None else hi + _LOCAL_SLACK_MS)
    return instant(history, None, start), instant(history, None, end)


def load_inputs(
    db: Database,
    history: site_mod.History,
    start: Bound = None,
    end: Bound = None,
    site: str | None = None,
    now_ms: int | None = None,
) -> Inputs:
    """Read what a report over [start, end) (of office `site`, None = all) is computed from."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    q_start, q_end = _query_range(history, start, end)
    polls, fms = derive.polls_and_reports(db, site, q_start, q_end)
    counts_rows = store.counts(db, site, q_start, q_end)
    verdicts = review.latest(db)
    all_fms = derive.force_majeure_reports(db)  # a confirmed period may reach into the range
    fm_status = {}
    for f in all_fms:
        status = review.fm_status(verdicts, f["site"], f["device"], f["seq"])
        if status != "pending":
            fm_status[(f["site"], f["device"], f["seq"])] = status
    lost = lost_events(db, {(p["site"], p["device"]) for p in polls}, site, now_ms, read_all=True)
    return Inputs(
        history=history,
        polls=polls,
        fms=fms,
        counts=counts_rows,
        invalid=frozenset(review.invalid_poll_ids(verdicts)),
        fm_periods=review.confirmed_periods(all_fms, verdicts),
        fm_status=fm_status,
        lost=lost,
    )


def lost_events(
    db: Database, panels: set[tuple[str, str]], site: str | None, now_ms: int, read_all: bool = False
) -> dict:
    """(site, device) -> the lost gaps of every panel with events (and of `panels`), of office
    `site` only when given. Only the events above what derivation knows complete are read
    (read_all: every event, the reference path)."""
    lost = {}
    through = {} if read_all else derive.stored_through(db)
    candidates = [(s, d) for s, d in sorted(set(store.event_panels(db)) | panels) if not site or s == site]
    # the panels gaps() would find nothing for, in a few statements for all (read_all: none)
    clean = set() if read_all else store.gapless(db, {p: through.get(p, 0) for p in candidates})
    for s, d in candidates:
        if (s, d) in clean:
            continue
        gaps = [g for g in store.gaps(db, s, d, now_ms, stored_through=through.get((s, d), 0)) if g["status"] == "lost"]
        if gaps:
            lost[(s, d)] = _timed_gaps(db, s, d, gaps)
    return lost


def _timed_gaps(db: Database, site: str, device: str, gaps: list[dict[str, Any]]) -> list[Gap]:
    """Lost gaps with the times of the stored events around them: a gap's events were made
    between the event just before it and the first stored one after it."""
    out = []
    run_first = None
    for i, g in enumerate(gaps):
        # adjacent gaps (lost for different reasons) share the events around the whole run
        if run_first is None or gaps[i - 1]["last"] + 1 != g["first"]:
            run_first = g["first"]
        run_last = g["last"]
        for nxt in gaps[i + 1 :]:
            if nxt["first"] != run_last + 1:
                break
            run_last = nxt["last"]
        before = store.timed_events(db, site, device, after_seq=max(run_first - 2, 0), limit=1)
        after = store.timed_events(db, site, device, after_seq=run_last, limit=1)
        after_ms = before[0]["at_ms"] if before and before[0]["seq"] == run_first - 1 else None
        before_ms = after[0]["at_ms"] if after else None
        out.append(Gap(g["first"], g["last"], g["count"], after_ms, before_ms))
    return out


def options(
    history: site_mod.History,
    by: str = "site",
    period: str = "all",
    start: Bound = None,
    end: Bound = None,
    k: float | None = None,
    lang: str | None = None,
    now_ms: int | None = None,
    thresholds: dict[str, Any] | None = None,
    site: str | None = None,
    employee: str | None = None,
    sort: str | None = None,
) -> Options:
    """The report options, with the site file's defaults for k, lang, thresholds and references."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    dep = history.deployment(now_ms)
    th_values = dict(dep.get("thresholds") or {})
    th_values.update(thresholds or {})
    if "min_n" in th_values:
        th_values["min_n"] = int(th_values["min_n"])
    return Options(
        by=by,
        period=period,
        start=start,
        end=end,
        site=site,
        k=dep.get("k", kpi_core.DEFAULT_K) if k is None else k,
        lang=i18n.lang_or_default(lang or dep.get("lang")),
        thresholds=Thresholds(**th_values),
        reference=dep.get("reference") or {},
        now_ms=now_ms,
        employee=employee,
        sort=sort,
    )


def _prepare(db, by, period, start, end, k, lang, now_ms, thresholds, site, employee, sort):
    """What both report paths start from: the time, the settings history (ids checked against
    it) and the Options."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    history = site_mod.load(db)
    check_ids(db, history, site, employee)
    return now_ms, history, options(history, by, period, start, end, k, lang, now_ms, thresholds, site, employee, sort)


def build_report(
    db: Database,
    by: str = "site",
    period: str = "all",
    start: Bound = None,
    end: Bound = None,
    k: float | None = None,
    lang: str | None = None,
    now_ms: int | None = None,
    thresholds: dict[str, Any] | None = None,
    site: str | None = None,
    employee: str | None = None,
    sort: str | None = None,
    offices: Collection[str] | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """The report as a plain dict (docs/report-json.md). start/end: epoch ms (None = open), or
    a naive datetime.datetime: that wall-clock time in each office's own timezone;
    k, lang, thresholds (dict of kpi_core.Thresholds fields) default to the site file's.
    site / employee: only that office / person (ValueError listing the known ids when there is
    no such one); sort: a figure name, rows then ranked best first within each period;
    offices: only these offices (an account's scope; None: every office); stream: "rows" and
    "bottleneck" are iterators making each row when read (report_export.write_table / write_csv
    / write_json write them as they come); by office, panel or employee the memory is one row's
    sums (with `sort`: one period's rows; gateway/report_stream.py) and "total" is filled in once
    the last row is read; else it holds every row's sums (gateway/report_sums.py)."""
    now_ms, history, opts = _prepare(db, by, period, start, end, k, lang, now_ms, thresholds, site, employee, sort)
    if not rollup.built(db) and derive.latest_poll_ms(db) is not None:
        raise ValueError(
            _("the polls of this store have no rollup yet (derived by gateway 0.1.0): run `rating rebuild` once")
        )
    q_start, q_end = _query_range(history, start, end)
    counts_rows = store.counts(db, site, q_start, q_end)
    lost = lost_events(db, set(rollup.panels(db)), site, now_ms)
    if stream and report_stream.streams(opts):  # memory of one row whatever the range
        return report_stream.compute(db, history, opts, counts_rows, lost, offices)
    return report_sums.compute(db, history, opts, counts_rows, lost, offices, stream)


def build_report_by_polls(
    db: Database,
    by: str = "site",
    period: str = "all",
    start: Bound = None,
    end: Bound = None,
    k: float | None = None,
    lang: str | None = None,
    now_ms: int | None = None,
    thresholds: dict[str, Any] | None = None,
    site: str | None = None,
    employee: str | None = None,
    sort: str | None = None,
    offices: Collection[str] | None = None,
) -> dict[str, Any]:
    """build_report computed poll by poll (every poll loaded): the reference the rollup-based
    report is tested against (tests/gateway/test_report_rollup.py)."""
    now_ms, history, opts = _prepare(db, by, period, start, end, k, lang, now_ms, thresholds, site, employee, sort)
    inputs = load_inputs(db, history, start, end, site, now_ms)
    if offices is not None:
        inputs = within(inputs, set(offices))
    return compute(inputs, opts)


def within(inputs: Inputs, offices: set[str]) -> Inputs:
    """The inputs of these offices only: every row of another office left out."""
    return dataclasses.replace(
        inputs,
        polls=[p for p in inputs.polls if p["site"] in offices],
        fms=[f for f in inputs.fms if f["site"] in offices],
        counts=[c for c in inputs.counts if c["site"] in offices],
        fm_periods=[f for f in inputs.fm_periods if f["site"] in offices],
        lost={k: v for k, v in inputs.lost.items() if k[0] in offices},
    )


def _listing(ids: list[str], names: dict[str, str]) -> str:
    if not ids:
        return "none"
    shown = ["%s (%s)" % (i, names[i]) if names.get(i) and names[i] != i else i for i in ids[:20]]
    return ", ".join(shown) + (" and %d more" % (len(ids) - 20) if len(ids) > 20 else "")


def check_ids(db: Database, history: site_mod.History, site: str | None, employee: str | None) -> None:
    """A report for an office or person nobody knows would be empty: refuse it, listing the
    known ones (the site file's, and offices that only sent events)."""
    if site is not None:
        known = sorted({k for _, k in history.keys("site")} | {s for s, _ in store.event_panels(db)})
        if site not in known:
            names = {s: history.site_name(s) for s in known}
            raise ValueError("--site: no office %r; known offices: %s" % (site, _listing(known, names)))
    if employee is not None:
        known = sorted(k for _, k in history.keys("employee"))
        if employee not in known:
            names = {e: history.employee_name(e) for e in known}
            raise ValueError(
                "--employee: no employee %r in the site file; known: %s" % (employee, _listing(known, names))
            )
