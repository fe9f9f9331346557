"""`rating report`: every KPI of METHOD.md per employee / panel / office / question and period.

`build_report(db, ...)` = `load_inputs` (the I/O: settings history, polls, force-majeure
reports, verdicts, counts, lost events) + `gateway.report_core.compute` (pure: the rules and
every figure, through kpi_core, so the simulator's ground truth and this report count the same
way). It returns a plain dict (documented in docs/report-json.md); `render_table` and
`render_csv` turn it into text.
"""

import time
from typing import Any

import kpi_core
from gateway import derive, i18n, review, store
from gateway import site as site_mod
from gateway.db import Database
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
    lost = {}
    panels = sorted(set(store.event_panels(db)) | {(p["site"], p["device"]) for p in polls})
    for s, d in panels:
        if site and s != site:
            continue
        gaps = [g for g in store.gaps(db, s, d, now_ms) if g["status"] == "lost"]
        if gaps:
            lost[(s, d)] = [Gap(g["first"], g["last"], g["count"]) for g in gaps]
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
    )


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
) -> dict[str, Any]:
    """The report as a plain dict (docs/report-json.md). start/end: epoch ms (None = open), or
    a naive datetime.datetime: that wall-clock time in each office's own timezone;
    k, lang, thresholds (dict of kpi_core.Thresholds fields) default to the site file's."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    history = site_mod.load(db)
    opts = options(history, by, period, start, end, k, lang, now_ms, thresholds, site)
    return compute(load_inputs(db, history, start, end, site, now_ms), opts)


# --- rendering ----------------------------------------------------------------------------


def _cell(fig, lang):
    if fig is None:
        return "-"
    if fig["value"] is None:
        return "%s (%s)" % (i18n.t(lang, "na"), fig["reason"])
    return fig["text"]


def render_table(report):
    lang = report["lang"]
    lines = []
    head = "%s (%s: %s; %s: %s; k = %s)" % (
        i18n.t(lang, "report_title"),
        i18n.t(lang, "by"),
        i18n.t(lang, report["by"]),
        i18n.t(lang, "period"),
        i18n.t(lang, "period_" + report["period"]),
        report["k"],
    )
    lines.append(head)
    if not report["rows"]:
        lines.append(i18n.t(lang, "no_rows"))
    for row in report["rows"] + ([dict(report["total"], label="=" * 3)] if len(report["rows"]) > 1 else []):
        lines.append("")
        title = row["label"] if row["key"] != "*" else i18n.t(lang, "total")
        if row["period"] != "all":
            title += "  [%s]" % row["period"]
        lines.append("%s  (%s: %d)" % (title, i18n.t(lang, "polls"), row["polls"]["valid"]))
        for name in FIGURES:
            fig = row["kpi"][name]
            if fig is None:
                continue
            lines.append("  %-20s %s" % (i18n.t(lang, name), _cell(fig, lang)))
        for f in row["flags"]:
            lines.append("  ! %s" % f["message"])
    if report["bottleneck"]:
        lines.append("")
        lines.append("%s:" % i18n.t(lang, "bottleneck"))
        for b in report["bottleneck"]:
            period = "" if b["period"] == "all" else " [%s]" % b["period"]
            if b["verdict"] in (None, "not enough data"):
                lines.append("  %s%s: %s" % (b["label"], period, b["verdict_text"]))
            else:
                lines.append("  %s%s: %s" % (b["label"], period, b["reason"]))
    return "\n".join(lines).rstrip() + "\n"


CSV_FIELDS = ["key", "label", "period", "period_start_ms", "period_end_ms", "polls_valid", "polls_invalid"]
for _name in FIGURES:
    CSV_FIELDS += [_name, _name + "_low", _name + "_high", _name + "_n"]
CSV_FIELDS += [
    "transactions",
    "visitors",
    "fm_reports",
    "fm_confirmed",
    "fm_pending",
    "time_device",
    "time_repaired",
    "time_arrival",
    "lost_events",
    "flags",
]


def render_csv(report):
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in report["rows"]:
        out = {
            "key": row["key"],
            "label": row["label"],
            "period": row["period"],
            "period_start_ms": row["period_start_ms"],
            "period_end_ms": row["period_end_ms"],
            "polls_valid": row["polls"]["valid"],
            "polls_invalid": row["polls"]["invalid"],
            "transactions": row["counts"]["transactions"],
            "visitors": row["counts"]["visitors"],
            "fm_reports": row["force_majeure"]["reports"],
            "fm_confirmed": row["force_majeure"]["confirmed"],
            "fm_pending": row["force_majeure"]["pending"],
            "time_device": row["time_sources"]["device"],
            "time_repaired": row["time_sources"]["repaired"],
            "time_arrival": row["time_sources"]["arrival"],
            "lost_events": row["lost_events"],
            "flags": ";".join(f["code"] for f in row["flags"]),
        }
        for name in FIGURES:
            fig = row["kpi"][name] or {}
            out[name], out[name + "_low"] = fig.get("value"), fig.get("low")
            out[name + "_high"], out[name + "_n"] = fig.get("high"), fig.get("n")
        w.writerow(out)
    return buf.getvalue()
