"""`rating report`: every KPI of METHOD.md per employee / panel / office / question and period.

`build_report(db, ...)` returns a plain dict (documented in docs/report-json.md); `render_table`
and `render_csv` turn it into text. All counting goes through kpi_core.count_polls, all
figures through kpi_core, so the simulator's ground truth and this report count the same way.

Rules (see docs/report-json.md for the details):
- a poll belongs to the period that contains its opening time, in its office's timezone;
- a report range given as local times (a `datetime` without tzinfo: what `--from/--to` without
  a UTC offset mean when no office is chosen) is read in each office's own timezone: a report
  "for 2025-01-06" covers 6 January in Moscow for the Moscow office and 6 January in Los
  Angeles for the LA office;
- DI-staff is computed over polls whose question kind is staff, DI-office over office polls,
  ELI over loyalty polls; invalid polls (expert verdict) count nowhere; confirmed force-majeure
  periods take that panel's No/silent polls out of DI-staff only;
- exact conversion / visitor coverage / force-majeure rate use all valid polls of the scope;
  transactions and visitors are known per office (site-wide counts, else the sum of its panels'
  counts) and per panel; a counts interval belongs to the period containing its start.
"""

import datetime as _dt
import time

import kpi_core
from gateway import derive, i18n, review, store
from gateway import site as site_mod
from kpi_core import Thresholds
from kpi_core.indices import check_k

BYS = ("employee", "device", "site", "question")
PERIODS = ("day", "week", "month", "all")
KINDS = ("staff", "office", "loyalty")
FORMAT_VERSION = 1

# Share of polls whose time was repaired or taken on arrival above which a row is flagged.
TIME_SHARE_MAX = 0.05


def bucket(t_ms, tz, period):
    """(label, start_ms, end_ms) of the period containing t_ms, in timezone tz."""
    if period == "all":
        return "all", None, None
    local = _dt.datetime.fromtimestamp(t_ms / 1000.0, tz)
    day = local.date()
    if period == "day":
        first, nxt, label = day, day + _dt.timedelta(days=1), day.isoformat()
    elif period == "week":
        first = day - _dt.timedelta(days=day.weekday())
        nxt = first + _dt.timedelta(days=7)
        iso = first.isocalendar()
        label = "%04d-W%02d" % (iso[0], iso[1])
    elif period == "month":
        first = day.replace(day=1)
        nxt = (first + _dt.timedelta(days=32)).replace(day=1)
        label = "%04d-%02d" % (first.year, first.month)
    else:
        raise ValueError("period: must be one of %s, got %r" % (", ".join(PERIODS), period))

    def ms(d):
        return int(_dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000)

    return label, ms(first), ms(nxt)


# A local range bound becomes one instant per office; every such instant lies within this much
# of the bound read as UTC (UTC offsets run from -12 h to +14 h), so one query covers all offices.
_LOCAL_SLACK_MS = 26 * 3600 * 1000


def _is_local(bound):
    return isinstance(bound, _dt.datetime) and bound.tzinfo is None


def _instant(history, site, bound):
    """A range bound as epoch ms for one office: ints (and None) as they are, a naive datetime
    in the office's timezone (at that time), an aware one as its instant."""
    if not isinstance(bound, _dt.datetime):
        return bound
    if bound.tzinfo is None:
        as_utc = int(bound.replace(tzinfo=_dt.UTC).timestamp() * 1000)
        bound = bound.replace(tzinfo=history.tz(site, as_utc))
    return int(bound.timestamp() * 1000)


def _fig(f):
    return (
        None
        if f is None
        else {"value": f.value, "low": f.low, "high": f.high, "n": f.n, "reason": f.reason, "text": f.format()}
    )


class _Scope:
    """What one report row is about: a group key, a period, its polls, reports and counts."""

    def __init__(self, key, label, period, start, end):
        self.key, self.label, self.period, self.start, self.end = key, label, period, start, end
        self.polls = []
        self.fms = []
        self.panels = set()
        self.sites = set()


def _counts_for(scope, by, counts_rows, history=None):
    """(transactions, visitors) of the scope, None when not known for this kind of scope.

    Employees get the per-panel counts of the intervals that start while they are on that
    panel's roster (a seller's own sales); offices their site-wide counts, else the sum of
    their panels' counts; panels their own."""
    if by not in ("site", "device", "total", "employee"):
        return None, None

    def in_range(r):
        return (scope.start is None or r["from_ms"] >= scope.start) and (scope.end is None or r["from_ms"] < scope.end)

    if by == "employee":
        if history is None:
            return None, None
        picked = [
            r
            for r in counts_rows
            if r["device"]
            and in_range(r)
            and (history.employee_at(r["site"], r["device"], r["from_ms"]) or "") == scope.key
        ]
    else:
        picked = []
        for site in sorted(scope.sites):
            rows = [r for r in counts_rows if r["site"] == site and in_range(r)]
            site_wide = [r for r in rows if r["device"] == ""]
            if by == "device" or not site_wide:
                rows = [r for r in rows if r["device"] and (site, r["device"]) in scope.panels]
            else:
                rows = site_wide
            picked += rows
    return _total(r["transactions"] for r in picked), _total(r["visitors"] for r in picked)


def _total(values):
    """The sum of the known values; None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _row(scope, by, ctx):
    lang, k, th = ctx["lang"], ctx["k"], ctx["thresholds"]
    invalid, periods, verdicts = ctx["invalid"], ctx["periods"], ctx["verdicts"]
    records = [dict(p, opened_at=p["opened_ms"]) for p in scope.polls]
    valid = [r for r in records if review.format_id(r["site"], r["device"], r["open_seq"]) not in invalid]
    by_kind = {}
    figures = {}
    for kind in KINDS:
        of_kind = [r for r in records if r["kind"] == kind]
        if not of_kind:
            continue
        counts = kpi_core.count_polls(of_kind, fm_periods=periods if kind == "staff" else (), invalid=invalid)
        by_kind[kind] = counts.as_dict()
        if kind == "staff":
            figures["di_staff"] = kpi_core.di_staff(counts, k)
        elif kind == "office":
            figures["di_office"] = kpi_core.di_office(counts, k)
        else:
            figures["eli"] = kpi_core.eli(counts, k)
    n_valid = len(valid)
    tx, vis = _counts_for(scope, by, ctx["counts"], ctx["history"])
    conversion = kpi_core.exact_conversion(n_valid, tx) if tx is not None else None
    coverage = kpi_core.visitor_coverage(n_valid, vis) if vis is not None else None
    rate = kpi_core.fm_rate(len(scope.fms), n_valid) if (n_valid or scope.fms) else None
    flag_list = kpi_core.flags(
        di_staff=figures.get("di_staff"),
        di_office=figures.get("di_office"),
        eli=figures.get("eli"),
        conversion=conversion,
        coverage=coverage,
        fm_rate=rate,
        thresholds=th,
    )
    out_flags = [
        {
            "code": f.code,
            "subject": f.subject,
            "message": f.message_ru if lang == "ru" else f.message_en,
            "message_en": f.message_en,
            "message_ru": f.message_ru,
        }
        for f in flag_list
    ]

    def add_flag(code, subject, **values):
        out_flags.append(
            {
                "code": code,
                "subject": subject,
                "message": i18n.flag_text(lang, code, **values),
                "message_en": i18n.flag_text("en", code, **values),
                "message_ru": i18n.flag_text("ru", code, **values),
            }
        )

    status = {"confirmed": 0, "rejected": 0, "pending": 0}
    for f in scope.fms:
        status[review.fm_status(verdicts, f["site"], f["device"], f["seq"])] += 1
    if status["pending"]:
        add_flag("fm_pending", "force-majeure rate", n=status["pending"])
    sources = {"device": 0, "repaired": 0, "arrival": 0}
    for r in valid:
        sources[r["time_source"]] = sources.get(r["time_source"], 0) + 1
    not_device = sources["repaired"] + sources["arrival"]
    if n_valid and not_device / n_valid > TIME_SHARE_MAX:
        add_flag(
            "time_not_device",
            "time",
            share="%.0f %%" % (100.0 * not_device / n_valid),
            repaired=sources["repaired"],
            arrival=sources["arrival"],
        )
    lost = None
    if by in ("site", "device", "total"):
        lost_n, ranges = 0, []
        for panel in sorted(scope.panels):
            n, rng = ctx["lost"].get(panel, (0, ""))
            if n:
                lost_n += n
                ranges.append("%s/%s: %s" % (panel[0], panel[1], rng))
        lost = lost_n
        if lost_n:
            add_flag("lost_events", "events", n=lost_n, ranges="; ".join(ranges))
    return {
        "key": scope.key,
        "label": scope.label,
        "period": scope.period,
        "period_start_ms": scope.start,
        "period_end_ms": scope.end,
        "polls": {"valid": n_valid, "invalid": len(records) - n_valid, "by_kind": by_kind},
        "kpi": {
            "di_staff": _fig(figures.get("di_staff")),
            "di_office": _fig(figures.get("di_office")),
            "eli": _fig(figures.get("eli")),
            "exact_conversion": _fig(conversion),
            "visitor_coverage": _fig(coverage),
            "fm_rate": _fig(rate),
        },
        "counts": {"transactions": tx, "visitors": vis},
        "force_majeure": dict(status, reports=len(scope.fms)),
        "time_sources": sources,
        "lost_events": lost,
        "flags": out_flags,
    }


def _key_of(by, item, history, lang, is_fm=False):
    """(key, label) of a poll or force-majeure row for grouping `by`."""
    site, device = item["site"], item["device"]
    if by == "site":
        return site, history.site_name(site)
    if by == "device":
        return "%s/%s" % (site, device), "%s / %s" % (history.site_name(site), device)
    if by == "employee":
        emp = item.get("employee")
        return (emp or "", history.employee_name(emp) if emp else i18n.t(lang, "unassigned"))
    # question
    if is_fm:
        at = item["pressed_ms"]
        qid = (history.panel(site, device, at) or {}).get("question")
    else:
        at = item["opened_ms"]
        qid = item.get("question")
    q = history.question(qid, at) or {}
    return qid or "", (q.get("text_" + lang) or qid or i18n.t(lang, "unassigned"))


def build_report(
    db, by="site", period="all", start=None, end=None, k=None, lang=None, now_ms=None, thresholds=None, site=None
):
    """The report as a plain dict (docs/report-json.md). start/end: epoch ms (None = open), or
    a naive datetime.datetime: that wall-clock time in each office's own timezone;
    k, lang, thresholds (dict of kpi_core.Thresholds fields) default to the site file's."""
    if by not in BYS:
        raise ValueError("by: must be one of %s, got %r" % (", ".join(BYS), by))
    if period not in PERIODS:
        raise ValueError("period: must be one of %s, got %r" % (", ".join(PERIODS), period))
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    history = site_mod.load(db)
    dep = history.deployment(now_ms)
    lang = i18n.lang_or_default(lang or dep.get("lang"))
    k = dep.get("k", kpi_core.DEFAULT_K) if k is None else k
    check_k(k)
    th_values = {}
    th_values.update(dep.get("thresholds") or {})
    th_values.update(thresholds or {})
    if "min_n" in th_values:
        th_values["min_n"] = int(th_values["min_n"])
    th = Thresholds(**th_values)
    reference = dep.get("reference") or {}

    local = {"from": start.isoformat() if _is_local(start) else None, "to": end.isoformat() if _is_local(end) else None}
    office_bounds = {}

    def bounds_of(s):
        """(start_ms, end_ms) of the report range for office s."""
        b = office_bounds.get(s)
        if b is None:
            b = office_bounds[s] = (_instant(history, s, start), _instant(history, s, end))
        return b

    if local["from"] or local["to"]:
        q_start = None if start is None else _instant(history, None, start) - _LOCAL_SLACK_MS
        q_end = None if end is None else _instant(history, None, end) + _LOCAL_SLACK_MS

        def inside(s, t):
            lo, hi = bounds_of(s)
            return (lo is None or t >= lo) and (hi is None or t < hi)

        polls, fms = derive.polls_and_reports(db, site, q_start, q_end)
        polls = [p for p in polls if inside(p["site"], p["opened_ms"])]
        fms = [f for f in fms if inside(f["site"], f["start_ms"])]
        counts_rows = [r for r in store.counts(db, site, q_start, q_end) if inside(r["site"], r["from_ms"])]
    else:
        polls, fms = derive.polls_and_reports(db, site, start, end)
        counts_rows = store.counts(db, site, start, end)
    verdicts = review.latest(db)
    all_fms = derive.force_majeure_reports(db)  # a period may reach into the range
    ctx = {
        "lang": lang,
        "k": k,
        "thresholds": th,
        "verdicts": verdicts,
        "history": history,
        "invalid": review.invalid_poll_ids(verdicts),
        "periods": review.confirmed_periods(all_fms, verdicts),
        "counts": counts_rows,
        "lost": {},
    }
    panels = sorted(set(store.event_panels(db)) | {(p["site"], p["device"]) for p in polls})
    for s, d in panels:
        if site and s != site:
            continue
        ctx["lost"][(s, d)] = store.lost_summary(store.gaps(db, s, d, now_ms))

    groups = {}
    total = _Scope("*", "*", "all", None, None)

    def place(item, at, is_fm):
        key, label = _key_of(by, item, history, lang, is_fm)
        plabel, pstart, pend = bucket(at, history.tz(item["site"], at), period)
        if period == "all":
            pstart, pend = bounds_of(item["site"])
        scope = groups.get((key, plabel))
        if scope is None:
            scope = groups[(key, plabel)] = _Scope(key, label, plabel, pstart, pend)
        for sc in (scope, total):
            (sc.fms if is_fm else sc.polls).append(item)
            sc.panels.add((item["site"], item["device"]))
            sc.sites.add(item["site"])

    for p in polls:
        place(p, p["opened_ms"], False)
    for f in fms:
        place(f, f["start_ms"], True)
    if by in ("site", "device"):
        # offices/panels with counts but no polls still show (coverage 0 is news)
        for r in ctx["counts"]:
            if by == "device" and not r["device"]:
                continue
            fake = {"site": r["site"], "device": r["device"]}
            key, label = _key_of(by, fake, history, lang)
            plabel, pstart, pend = bucket(r["from_ms"], history.tz(r["site"], r["from_ms"]), period)
            if period == "all":
                pstart, pend = bounds_of(r["site"])
            if (key, plabel) not in groups:
                sc = groups[(key, plabel)] = _Scope(key, label, plabel, pstart, pend)
                sc.sites.add(r["site"])
                if r["device"]:
                    sc.panels.add((r["site"], r["device"]))
            total.sites.add(r["site"])
    for scope in list(groups.values()) + [total]:
        if scope.period == "all":
            # the report range as instants: one office's, or the same for all of the row's
            # offices; None when local dates mean different instants in its offices
            found = {bounds_of(s) for s in scope.sites}
            if not found:  # an empty report: the range as asked, if it is one range
                found = {(None, None) if (local["from"] or local["to"]) and not site else bounds_of(site)}
            scope.start, scope.end = found.pop() if len(found) == 1 else (None, None)
    rows = [_row(groups[g], by, ctx) for g in sorted(groups, key=lambda g: (g[0], g[1]))]
    total_row = _row(total, "total", ctx)

    return {
        "version": FORMAT_VERSION,
        "generated_ms": now_ms,
        "lang": lang,
        "by": by,
        "period": period,
        "from_ms": total.start,
        "to_ms": total.end,
        "from_local": local["from"],
        "to_local": local["to"],
        "site": site,
        "k": k,
        "thresholds": {f: getattr(th, f) for f in ("fm_rate_max", "coverage_min", "conversion_min", "min_n")},
        "reference": reference,
        "rows": rows,
        "total": total_row,
        "bottleneck": _bottlenecks(polls, history, period, bounds_of, ctx, reference, th),
    }


def _bottlenecks(polls, history, period, bounds_of, ctx, reference, th):
    """Per office (and period): the bottleneck diagnosis from its DI-staff and DI-office."""
    by_site = {}
    for p in polls:
        label, pstart, pend = bucket(p["opened_ms"], history.tz(p["site"], p["opened_ms"]), period)
        by_site.setdefault((p["site"], label, pstart, pend), []).append(dict(p, opened_at=p["opened_ms"]))
    out = []
    lang = ctx["lang"]
    for (site, label, pstart, pend), records in sorted(by_site.items(), key=lambda x: (x[0][0], x[0][1])):
        staff = [r for r in records if r["kind"] == "staff"]
        office = [r for r in records if r["kind"] == "office"]
        di_s = kpi_core.di_staff(kpi_core.count_polls(staff, ctx["periods"], ctx["invalid"]), ctx["k"])
        di_o = kpi_core.di_office(kpi_core.count_polls(office, (), ctx["invalid"]), ctx["k"])
        item = {
            "site": site,
            "label": history.site_name(site),
            "period": label,
            "period_start_ms": bounds_of(site)[0] if period == "all" else pstart,
            "period_end_ms": bounds_of(site)[1] if period == "all" else pend,
            "di_staff": _fig(di_s),
            "di_office": _fig(di_o),
        }
        if "di_staff" not in reference or "di_office" not in reference:
            item.update(verdict=None, verdict_text=i18n.t(lang, "no_reference"), reason=i18n.t(lang, "no_reference"))
        else:
            d = kpi_core.bottleneck(di_s, di_o, reference["di_staff"], reference["di_office"], min_n=th.min_n)
            item.update(
                verdict=d.verdict,
                verdict_text=d.verdict_ru if lang == "ru" else d.verdict,
                reason=d.reason_ru if lang == "ru" else d.reason_en,
            )
        out.append(item)
    return out


# --- rendering ----------------------------------------------------------------------------

FIGURES = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")


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
