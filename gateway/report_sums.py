"""The report from the rollups: sums aggregated in SQL, figures from kpi_core, same rows.

`compute(db, history, opts, counts, lost)` gives what `gateway.report_core.compute` gives from
every poll (tests/gateway/test_report_rollup.py proves it for random histories), reading:
- the rollup rows wholly inside the report range, summed in SQL per the report's grouping and
  period (gateway.rollup.sums): the answers, invalid and force-majeure-excluded polls, contact
  polls, time sources, force-majeure reports and their review status;
- the polls of the few rollup rows the range cuts through (a bound inside a local day), one
  by one (gateway.rollup.rows_cut / cut_items);
- for the rows that have transactions or visitors, the opening times of their contact polls
  (those are counted only inside the time the counts cover, which no day sum can tell).
Memory grows with the number of report rows and counts rows, not with the polls.
"""

import functools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from gateway import derive, i18n, review, rollup
from gateway.report_core import (
    _NOT_COUNTED,
    KINDS,
    Counted,
    Options,
    Row,
    Tally,
    _Frame,
    _Scope,
    bottleneck_row,
    bucket,
    counts_for,
    flag,
    lost_for,
    rank,
    report_dict,
    row_dict,
)
from gateway.site import History
from kpi_core import PollCounts, ScopeCounts

_PC = ("yes", "no", "unsure", "silent", "fm_no", "fm_silent")


class _Sums(_Scope):
    """A report row's scope, holding sums instead of polls."""

    def __init__(self, key: str, label: str, period: str, start: int | None, end: int | None):
        super().__init__(key, label, period, start, end)
        self.kinds: dict[str, dict[str, int]] = {}
        self.all = dict.fromkeys(rollup.POLL_SUMS, 0)
        self.fm = dict.fromkeys(rollup.FM_SUMS, 0)
        self.site_first: dict[str, int] = {}  # office -> its first poll time in the row
        self.poll_panels: set[tuple[str, str]] = set()

    def add_polls(self, item: Mapping[str, Any]) -> None:
        kind = self.kinds.get(item["kind"])
        if kind is None:
            kind = self.kinds[item["kind"]] = dict.fromkeys(rollup.POLL_SUMS, 0)
        every = self.all
        for name in rollup.POLL_SUMS:  # once per SQL row of a report: kept to plain dict adds
            n = item[name]
            kind[name] += n
            every[name] += n
        site = item["site"]
        if site not in self.site_first or item["min_ms"] < self.site_first[site]:
            self.site_first[site] = item["min_ms"]
        self.poll_panels.add((site, item["device"]))

    def add_reports(self, item: Mapping[str, Any]) -> None:
        for name in rollup.FM_SUMS:
            self.fm[name] += item[name]


def _range(db, frame: _Frame, opts: Options) -> rollup.Range:
    if frame.local:
        sites = [opts.site] if opts.site else rollup.sites(db)
        return rollup.Range(per_site={s: frame.bounds_of(s) for s in sites})
    lo, hi = frame.bounds_of(opts.site)
    return rollup.Range(lo, hi)


def _items(db, history: History, frame: _Frame, table: str, group: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rollup sums of the report's range per `group` and period, and the cut rows' polls /
    reports inside the range summed the same way; in time order (the first makes a row)."""
    opts = frame.opts
    rng = _range(db, frame, opts)
    items = rollup.sums(db, table, group, opts.period, rng, opts.site, opts.employee)  # fresh dicts: no copy
    items += cut_sums(db, history, frame, table, group, rng)
    items.sort(key=lambda r: (r["min_ms"], r["site"], r["device"]))
    return items


def cut_sums(db, history: History, frame: _Frame, table: str, group: tuple[str, ...], rng) -> list[dict[str, Any]]:
    """The polls / reports inside the range of the rollup rows the range cuts through, summed
    per `group` and period as rollup.sums sums whole rows (few: the rows at the range's ends)."""
    opts = frame.opts
    names = rollup.POLL_SUMS if table == "poll_rollup" else rollup.FM_SUMS
    cut: dict[tuple, dict[str, Any]] = {}
    panels: dict = {}
    for row in rollup.rows_cut(db, table, rng, opts.site, opts.employee):
        for key, sums, at in rollup.cut_items(db, history, table, row, panels):
            if not frame.inside(row["site"], at):
                continue
            k = rollup.key_dict(table, key)
            period = "all" if opts.period == "all" else k[opts.period]
            gk = tuple(k[g] for g in group) + (period,)
            item = cut.get(gk)
            if item is None:
                cut[gk] = dict(zip(group, gk, strict=False), period=period, min_ms=at, max_ms=at, **sums)
                continue
            for name in names:
                item[name] += sums[name]
            item["min_ms"], item["max_ms"] = min(item["min_ms"], at), max(item["max_ms"], at)
    return list(cut.values())


def _key_of(frame: _Frame, item: Mapping[str, Any]) -> tuple[str, str]:
    history, lang, by = frame.history, frame.opts.lang, frame.opts.by
    if by == "employee":
        emp = item["employee"]
        return emp, history.employee_name(emp) if emp else i18n.t(lang, "unassigned")
    if by == "question":
        qid = item["question"]
        q = history.question(qid or None, item["min_ms"]) or {}
        return qid, (q.get("text_" + lang) or qid or i18n.t(lang, "unassigned"))
    return frame.key_of(item)


def _group(frame, polls, fms, counts):
    groups: dict[tuple[str, str], _Sums] = {}
    total = _Sums("*", "*", "all", None, None)

    periods: dict[tuple, tuple[str, int | None, int | None]] = {}
    keys: dict[tuple, tuple[str, str]] = {}

    def period_of(item: Mapping[str, Any]) -> tuple[str, int | None, int | None]:
        # a rollup item's period is that of its label in its timezone (the same for each item)
        pk = (item["site"], item["tz"], item["period"])
        found = periods.get(pk)
        if found is None:
            found = periods[pk] = frame.period_of(item["site"], item["min_ms"])
        return found

    def key_of(item: Mapping[str, Any]) -> tuple[str, str]:
        kk = (item["site"], item["device"], item.get("employee"), item.get("question"))
        found = keys.get(kk)
        if found is None:
            found = keys[kk] = _key_of(frame, item)
        return found

    def scope_for(key: str, label: str, site: str, at: int, period=None) -> _Sums:
        plabel, pstart, pend = period or frame.period_of(site, at)
        scope = groups.get((key, plabel))
        if scope is None:
            scope = groups[(key, plabel)] = _Sums(key, label, plabel, pstart, pend)
        return scope

    for items, is_fm in ((polls, False), (fms, True)):
        for item in items:
            scope = scope_for(*key_of(item), item["site"], item["min_ms"], period_of(item))
            for sc in (scope, total):
                sc.add_reports(item) if is_fm else sc.add_polls(item)
                sc.panels.add((item["site"], item["device"]))
                sc.sites.add(item["site"])
    if frame.opts.by in ("site", "device") and frame.opts.employee is None:
        _counted_only(frame, counts, groups, total, scope_for)
    for scope in list(groups.values()) + [total]:
        if scope.period == "all":
            found = {frame.bounds_of(s) for s in scope.sites}
            if not found:
                found = {(None, None) if frame.local and not frame.opts.site else frame.bounds_of(frame.opts.site)}
            scope.start, scope.end = found.pop() if len(found) == 1 else (None, None)
    return groups, total


def _counted_only(frame, counts, groups, total, scope_for) -> None:
    """Offices / panels with counts but no polls still show (coverage 0 is news)."""
    for r in counts:
        if frame.opts.by == "device" and not r["device"]:
            continue
        key, label = frame.key_of({"site": r["site"], "device": r["device"]})
        before = len(groups)
        sc = scope_for(key, label, r["site"], r["from_ms"])
        if len(groups) > before:
            sc.sites.add(r["site"])
            if r["device"]:
                sc.panels.add((r["site"], r["device"]))
        total.sites.add(r["site"])


def _counted_spans(scope: _Sums, rule: str, counted: Counted, frame: _Frame) -> list[tuple[int, tuple]]:
    """The row's counted spans to count its contact polls in: (0 = transactions time |
    1 = visitors time, (site, device or None, employee or None ("" = nobody), from, to)). The
    spans of one office are either its site-wide ones or its panels' (report_core.counts_for
    picks one kind per office), merged, so they never overlap."""
    if (counted.transactions is None and counted.visitors is None) or not scope.all["contact"]:
        return []
    opts = frame.opts
    employee = scope.key if rule == "employee" else opts.employee
    device = scope.key.split("/", 1)[1] if rule == "device" else None
    out = []
    for site, lo, hi in _row_bounds(scope, frame):
        for i, (known, spans) in enumerate(((counted.transactions, counted.tx), (counted.visitors, counted.vis))):
            if known is None:
                continue
            for (s, dev), merged in spans.merged():
                if s != site or (device is not None and dev not in ("", device)):
                    continue
                for a, b in merged:
                    a, b = max(a, lo) if lo is not None else a, min(b, hi) if hi is not None else b
                    if a < b:
                        out.append((i, (site, dev or device, employee, a, b)))
    return out


def _row_bounds(scope: _Sums, frame: _Frame) -> list[tuple[str, int | None, int | None]]:
    """(office, from, to): the part of the report range of each of the row's offices in its period."""
    out = []
    for site, first in sorted(scope.site_first.items()):
        lo, hi = frame.bounds_of(site)
        if scope.period != "all":
            _label, start, end = bucket(first, frame.history.tz(site, first), frame.opts.period)
            lo = start if lo is None else max(lo, start or lo)
            hi = end if hi is None else min(hi, end or hi)
        out.append((site, lo, hi))
    return out


def _invalid_in_counted_time(scope: _Sums, rule: str, counted: Counted, frame: _Frame, invalid) -> list[int]:
    """[transactions, visitors]: the row's contact polls an expert marked invalid (`invalid`:
    rows) inside the counted time, which the span COUNTs include."""
    out = [0, 0]
    if not invalid or (counted.transactions is None and counted.visitors is None) or not scope.all["contact"]:
        return out
    employee = scope.key if rule == "employee" else frame.opts.employee
    device = scope.key.split("/", 1)[1] if rule == "device" else None
    for site, lo, hi in _row_bounds(scope, frame):
        for i, (known, spans) in enumerate(((counted.transactions, counted.tx), (counted.visitors, counted.vis))):
            if known is None:
                continue
            for p in invalid:
                if (
                    p["site"] == site
                    and (device is None or p["device"] == device)
                    and (employee is None or (p["employee"] or "") == employee)
                    and (lo is None or p["opened_ms"] >= lo)
                    and (hi is None or p["opened_ms"] < hi)
                    and spans.covers(site, p["device"], p["opened_ms"])
                ):
                    out[i] -= 1
    return out


def _counted_rows(db, scopes: Mapping[Any, _Sums], rules: Mapping[Any, str], frame, counts, invalid) -> dict:
    """{group: (its counts, contact polls in transactions time, in visitors time)} of every row,
    the contact polls of all rows' counted spans counted by one grouped query (one COUNT per
    span was thousands of statements for a chain's weekly report)."""
    if not counts:
        return {}
    counted, spans = {}, []
    for g, scope in scopes.items():
        counted[g] = counts_for(scope, rules[g], counts, frame)
        spans += [(g, i, span) for i, span in _counted_spans(scope, rules[g], counted[g], frame)]
    numbers = derive.count_contact_polls_in(db, [span for _g, _i, span in spans])
    out = {g: [c, *_invalid_in_counted_time(scopes[g], rules[g], c, frame, invalid)] for g, c in counted.items()}
    for (g, i, _span), n in zip(spans, numbers, strict=True):
        out[g][1 + i] += n
    return {g: tuple(v) for g, v in out.items()}


@functools.lru_cache(maxsize=4096)  # a chain's rows repeat their counts: checked once, one object for the figures' memo
def _poll_counts(values: tuple[int, ...]) -> PollCounts:
    """PollCounts of the sums of _PC, in that order."""
    return PollCounts(*values)


def _tally(scope: _Sums, kinds: Sequence[str], counted: Counted, conv: int, cov: int) -> Tally:
    per_kind = {}
    for kind in kinds:
        s = scope.kinds.get(kind)
        if s and s["polls"]:
            per_kind[kind] = _poll_counts(tuple([s[n] for n in _PC]))
    a, fm = scope.all, scope.fm
    valid = a["polls"] - a["invalid"]
    return Tally(
        scope=ScopeCounts(
            staff=per_kind.get("staff"),
            office=per_kind.get("office"),
            loyalty=per_kind.get("loyalty"),
            polls=valid,
            fm_reports=fm["reports"],
            conversion_polls=conv,
            coverage_polls=cov,
            transactions=counted.transactions,
            visitors=counted.visitors,
        ),
        invalid=a["invalid"],
        contact=a["contact"],
        fm_confirmed=fm["confirmed"],
        fm_rejected=fm["rejected"],
        fm_pending=fm["reports"] - fm["confirmed"] - fm["rejected"],
        time_device=a["t_device"],
        time_repaired=a["t_repaired"],
        time_arrival=a["t_arrival"],
    )


def _row(db, scope: _Sums, rule: str, frame: _Frame, counts, lost, counted_row) -> Row:
    """counted_row: (its counts, contact polls in transactions time, in visitors time), from
    _counted_rows; None: no counts."""
    opts = frame.opts
    counted, conv, cov = counted_row or (_NOT_COUNTED, 0, 0)
    people = rule == "employee"
    tally = _tally(scope, ("staff",) if people else KINDS, counted, conv, cov)
    lost_row = lost_for(scope, frame, lost) if rule in ("site", "device", "total") else None
    notes = []
    if people and scope.key == "" and scope.poll_panels:
        panels = ", ".join("%s/%s" % p for p in sorted(scope.poll_panels))
        notes = [flag(opts.lang, "no_roster", "employee", n=scope.all["polls"], panels=panels)]
    return row_dict(scope.head(frame.history), tally, opts, lost_row, counted, notes)


def compute(
    db,
    history: History,
    opts: Options,
    counts: Sequence[Mapping[str, Any]],
    lost: Mapping[tuple[str, str], Any],
    offices: Collection[str] | None = None,
    stream: bool = False,
) -> Row:
    """The report (docs/report-json.md) from the rollups. counts: the counts rows of the range
    (as gateway.report loads them); lost: (site, device) -> the panel's lost gaps; offices: only
    these offices (an account's scope; None: every office); stream: "rows" and "bottleneck"
    are iterators that make each row when it is read (report_export.write_* write them as they
    come), except with opts.sort (a rank needs every row)."""
    frame = _Frame(history, opts)
    extra = {"employee": ("employee",), "question": ("question",)}.get(opts.by, ())
    polls = _items(db, history, frame, "poll_rollup", ("site", "device", "kind", "tz") + extra)
    fms = _items(db, history, frame, "fm_rollup", ("site", "device", "tz") + extra)
    counts = [r for r in counts if frame.inside(r["site"], r["from_ms"])]
    if offices is not None:
        keep = set(offices)
        polls = [p for p in polls if p["site"] in keep]
        fms = [f for f in fms if f["site"] in keep]
        counts = [r for r in counts if r["site"] in keep]
        lost = {k: v for k, v in lost.items() if k[0] in keep}
    groups, total = _group(frame, polls, fms, counts)
    # the contact polls an expert marked invalid, of the report's offices only, and only when counts
    # make conversion/coverage (a chain's verdicts are many; a report is about few offices)
    sites = [opts.site] if opts.site else (None if offices is None else sorted(offices))
    invalid = _invalid_contact_polls(db, frame, sites) if counts else []
    scopes: dict[Any, _Sums] = {**groups, None: total}
    counted = _counted_rows(
        db, scopes, {g: opts.by if g is not None else "total" for g in scopes}, frame, counts, invalid
    )
    total_row = _row(db, total, "total", frame, counts, lost, counted.pop(None, None))
    rows: Iterable[Row] = _rows(db, groups, frame, counts, lost, counted)
    bneck: Iterable[Row] = () if opts.employee is not None else _bottlenecks(frame, _bottleneck_sums(frame, polls))
    del polls, fms  # the SQL items: what is left is the groups' and offices' sums
    if opts.sort:
        rows = rank(list(rows), opts.sort, opts.k, opts.thresholds.min_n)  # a rank needs every row
    elif not stream:
        rows = list(rows)
    if not stream:
        bneck = list(bneck)
    return report_dict(frame, total, rows, total_row, bneck)  # type: ignore[arg-type]


def _rows(db, groups: dict, frame: _Frame, counts, lost, counted: dict) -> Iterator[Row]:
    """The report rows in key and period order, each made when asked for (a streamed report
    holds only the current one: its group is let go as its row is made)."""
    for g in sorted(groups):
        yield _row(db, groups.pop(g), frame.opts.by, frame, counts, lost, counted.pop(g, None))


def _invalid_contact_polls(db, frame: _Frame, sites: list[str] | None) -> list[dict[str, Any]]:
    """The contact polls an expert marked invalid, of these offices (None: all) in the report's
    range (the widest of the offices' local ranges)."""
    bounds = [frame.bounds_of(s) for s in (sites if sites is not None else rollup.sites(db))] or [(None, None)]
    los = [lo for lo, _hi in bounds if lo is not None]
    his = [hi for _lo, hi in bounds if hi is not None]
    lo = min(los) if len(los) == len(bounds) else None
    hi = max(his) if len(his) == len(bounds) else None
    return derive.contact_polls_of(db, review.invalid_poll_ids_of(db, sites, lo), lo, hi)


def _bottleneck_sums(frame: _Frame, polls: Sequence[Mapping[str, Any]]) -> dict:
    """Per office and period: the staff and office answer sums the diagnosis reads (small: the
    SQL items it is made from can be let go before any row is made)."""
    opts, history = frame.opts, frame.history
    by_site: dict[tuple[str, str, int | None, int | None], dict[str, dict[str, int]]] = {}
    for p in polls:
        label, pstart, pend = bucket(p["min_ms"], history.tz(p["site"], p["min_ms"]), opts.period)
        kinds = by_site.setdefault((p["site"], label, pstart, pend), {})
        if p["kind"] in ("staff", "office"):
            s = kinds.setdefault(p["kind"], dict.fromkeys(_PC + ("polls",), 0))
            for n in _PC + ("polls",):
                s[n] += p[n]
    return by_site


def _bottlenecks(frame: _Frame, by_site: dict) -> Iterator[Row]:
    """Per office (and period): the bottleneck diagnosis from its DI-staff and DI-office."""
    for key in sorted(by_site, key=lambda x: (x[0], x[1])):
        site, label, pstart, pend = key
        kinds = by_site.pop(key)
        counts = {k: PollCounts(**{n: s[n] for n in _PC}) for k, s in kinds.items() if s["polls"]}
        yield bottleneck_row(frame, site, label, pstart, pend, counts.get("staff"), counts.get("office"))
