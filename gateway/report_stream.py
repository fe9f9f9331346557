"""The report from the rollups in bounded memory: rows made as the SQL sums arrive.

`compute` gives the same report as `gateway.report_sums.compute` (byte for byte once written:
tests/gateway/test_report_stream.py), but reads the SQL sums ordered by the report's key and
period (a server-side cursor on PostgreSQL, SQLite's own cursor) and makes each row as soon as
its key and period are complete. Held at any time: one group's sums, the total's additive sums,
the rows of a batch of groups waiting for their counted-time COUNTs, and what is small whatever
the range (the polls of the rollup rows the range cuts through, the counts rows, lost gaps,
invalid contact polls). The bottleneck diagnosis is a second ordered read, after the rows.

Used for a streamed report (`rating report` as text, CSV or JSON) grouped by office, panel or
employee without a ranking. A ranking (--sort), the questions grouping (a question's label
is its text at the first poll of the whole range) and the reports built whole (pivot, xlsx,
html, pdf, the console) go through report_sums.compute, which holds every row's sums.
"""

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from gateway import report_sums, rollup
from gateway.report_core import Options, Row, _Frame, bottleneck_row, bucket, report_dict
from gateway.report_sums import _PC, _Sums
from gateway.site import History
from kpi_core import PollCounts

BATCH = 500  # groups whose counted-time COUNTs go in one grouped query

# the report key in SQL, as report_core._Frame.key_of makes it (in code point order on both databases)
_KEY_SQL = {"site": "r.site", "device": "r.site || '/' || r.device", "employee": "COALESCE(r.employee, '')"}


def streams(opts: Options) -> bool:
    """Whether a streamed report of these options is made here (else report_sums holds it)."""
    return opts.by in _KEY_SQL and not opts.sort


class _Report:
    """What the rows need while they are made: the frame, the inputs held whole (small), and
    the total's sums."""

    def __init__(self, db, history: History, opts: Options, counts, lost, offices):
        self.db, self.frame = db, _Frame(history, opts)
        self.keep = None if offices is None else set(offices)
        self.counts = [r for r in counts if self.frame.inside(r["site"], r["from_ms"]) and self._kept(r)]
        self.lost = lost if self.keep is None else {k: v for k, v in lost.items() if k[0] in self.keep}
        self.rng = report_sums._range(db, self.frame, opts)
        self.extra = ("employee",) if opts.by == "employee" else ()
        self.cut_polls = self._cut("poll_rollup", ("site", "device", "kind", "tz") + self.extra)
        self.cut_fms = self._cut("fm_rollup", ("site", "device", "tz") + self.extra)
        self.counted_only = opts.by in ("site", "device") and opts.employee is None
        sites = [opts.site] if opts.site else (None if offices is None else sorted(offices))
        self.invalid = report_sums._invalid_contact_polls(db, self.frame, sites) if self.counts else []
        self.total = _Sums("*", "*", "all", None, None)
        self.total.start, self.total.end = self._total_bounds()
        self._periods: dict[tuple, tuple[str, int | None, int | None]] = {}

    def _kept(self, item: Mapping[str, Any]) -> bool:
        return self.keep is None or item["site"] in self.keep

    def _cut(self, table: str, group: tuple[str, ...]) -> list[dict[str, Any]]:
        items = report_sums.cut_sums(self.db, self.frame.history, self.frame, table, group, self.rng)
        return [i for i in items if self._kept(i)]

    def _total_bounds(self) -> tuple[int | None, int | None]:
        """The total's start and end (the report's from_ms / to_ms), known before any row: the
        range of its offices if they share one, else open (report_sums._group's rule)."""
        frame, opts = self.frame, self.frame.opts
        if not frame.local or opts.site:
            return frame.bounds_of(opts.site)  # one range for every office
        sites = {
            s
            for s in rollup.sites_in(self.db, self.rng, opts.site, opts.employee)
            if self.keep is None or s in self.keep
        }
        sites |= {i["site"] for i in self.cut_polls + self.cut_fms}
        sites |= self.counted_sites()
        found = {frame.bounds_of(s) for s in sites}
        return found.pop() if len(found) == 1 else (None, None)

    def counted_sites(self) -> set[str]:
        """The offices whose counts make rows (and count in the total) even without polls."""
        if not self.counted_only:
            return set()
        device = self.frame.opts.by == "device"
        return {r["site"] for r in self.counts if r["device"] or not device}

    def period_of(self, item: Mapping[str, Any]) -> tuple[str, int | None, int | None]:
        pk = (item["site"], item["tz"], item["period"])  # one period per office, timezone and label
        found = self._periods.get(pk)
        if found is None:
            if len(self._periods) >= 4096:  # bounded: one entry per office and period would grow with the rows
                self._periods.clear()
            found = self._periods[pk] = self.frame.period_of(item["site"], item["min_ms"])
        return found

    def group_key(self, item: Mapping[str, Any]) -> tuple[str, str]:
        # the rollup's period label is bucket()'s (rollup._labels), the order the SQL sums come in
        return self._key(item), item["period"]

    def _key(self, item: Mapping[str, Any]) -> str:
        by = self.frame.opts.by
        if by == "site":
            return item["site"]
        if by == "device":
            return "%s/%s" % (item["site"], item["device"])
        return item["employee"] or ""


def _runs(items: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], tuple]) -> Iterator[tuple]:
    """(key, [items]) of consecutive items with one key; the keys must come in order."""
    last = None
    for k, run in itertools.groupby(items, key):
        if last is not None and k < last:
            raise RuntimeError("rollup sums out of order: %r after %r" % (k, last))
        last = k
        yield k, list(run)


def _sorted_runs(items: list[dict[str, Any]], key: Callable[[Mapping[str, Any]], tuple]) -> list[tuple]:
    return list(_runs(sorted(items, key=key), key))


def _merged(sources: list[Iterable[tuple]]) -> Iterator[tuple[tuple, list[list]]]:
    """(key, [the payloads of each source with that key]) in key order, from sources of
    (key, payload) in key order."""
    tagged = [_tagged(i, src) for i, src in enumerate(sources)]
    for k, run in itertools.groupby(heapq.merge(*tagged, key=lambda x: (x[0], x[1])), key=lambda x: x[0]):
        parts: list[list] = [[] for _ in sources]
        for _k, i, p in run:
            parts[i].append(p)
        yield k, parts


def _tagged(i: int, source: Iterable[tuple]) -> Iterator[tuple]:
    for k, p in source:
        yield k, i, p


def _first(items: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The item report_sums._group meets first (its items are in time, office, panel order)."""
    return min(items, key=lambda r: (r["min_ms"], r["site"], r["device"]))


def _scope(rep: _Report, polls: list, fms: list, counts: list) -> _Sums:
    """One report row's sums, as report_sums._group makes them (polls first, then reports, then
    an office / panel with counts only)."""
    frame = rep.frame
    if polls or fms:
        first = _first(polls) if polls else _first(fms)
        key, label = report_sums._key_of(frame, first)
        scope = _Sums(key, label, *rep.period_of(first))
    else:
        r = counts[0]
        key, label = frame.key_of({"site": r["site"], "device": r["device"]})
        scope = _Sums(key, label, *frame.period_of(r["site"], r["from_ms"]))
        scope.sites.add(r["site"])
        if r["device"]:
            scope.panels.add((r["site"], r["device"]))
    total = rep.total
    for items, is_fm in ((polls, False), (fms, True)):
        for item in items:
            for sc in (scope, total):
                sc.add_reports(item) if is_fm else sc.add_polls(item)
                sc.panels.add((item["site"], item["device"]))
                sc.sites.add(item["site"])
    if scope.period == "all":
        found = {frame.bounds_of(s) for s in scope.sites}
        scope.start, scope.end = found.pop() if len(found) == 1 else (None, None)
    return scope


def _counted_only_runs(rep: _Report) -> list[tuple]:
    """(group key, [counts rows]) of the offices / panels with counts (a row even without polls)."""
    if not rep.counted_only:
        return []
    out: dict[tuple, list] = {}
    for r in rep.counts:
        if rep.frame.opts.by == "device" and not r["device"]:
            continue
        key, _label = rep.frame.key_of({"site": r["site"], "device": r["device"]})
        out.setdefault((key, rep.frame.period_of(r["site"], r["from_ms"])[0]), []).append(r)
    return sorted(out.items())


def _groups(rep: _Report) -> Iterator[_Sums]:
    """Every report row's sums in key and period order, one group at a time."""
    db, opts = rep.db, rep.frame.opts
    order = _KEY_SQL[opts.by]
    polls = rollup.sums(
        db,
        "poll_rollup",
        ("site", "device", "kind", "tz") + rep.extra,
        opts.period,
        rep.rng,
        opts.site,
        opts.employee,
        order,
    )
    fms = rollup.sums(
        db, "fm_rollup", ("site", "device", "tz") + rep.extra, opts.period, rep.rng, opts.site, opts.employee, order
    )
    sources = [
        _runs(filter(rep._kept, polls), rep.group_key),
        _runs(filter(rep._kept, fms), rep.group_key),
        _sorted_runs(rep.cut_polls, rep.group_key),
        _sorted_runs(rep.cut_fms, rep.group_key),
        _counted_only_runs(rep),
    ]
    for _gk, (p, f, cp, cf, c) in _merged(sources):
        yield _scope(rep, sum(p + cp, []), sum(f + cf, []), sum(c, []))


def _rows(rep: _Report, report: dict[str, Any]) -> Iterator[Row]:
    """The rows, BATCH groups at a time (their counted-time COUNTs in one query); when the last
    is made, the total row is put into `report` (written after the rows in every format)."""
    frame, opts = rep.frame, rep.frame.opts
    with rep.db.reading():
        groups = _groups(rep)
        while batch := list(itertools.islice(groups, BATCH)):
            scopes = dict(enumerate(batch))
            counted = report_sums._counted_rows(
                rep.db, scopes, dict.fromkeys(scopes, opts.by), frame, rep.counts, rep.invalid
            )
            for g, scope in scopes.items():
                yield report_sums._row(rep.db, scope, opts.by, frame, rep.counts, rep.lost, counted.get(g))
            del batch, scopes
    total = rep.total
    total.sites |= rep.counted_sites()
    counted = report_sums._counted_rows(rep.db, {None: total}, {None: "total"}, frame, rep.counts, rep.invalid)
    report["total"] = report_sums._row(rep.db, total, "total", frame, rep.counts, rep.lost, counted.get(None))


def _bottlenecks(rep: _Report) -> Iterator[Row]:
    """Per office and period, in that order: the diagnosis from its DI-staff and DI-office
    (report_sums._bottlenecks' rows), from a second read of the sums ordered by office."""
    db, frame, opts = rep.db, rep.frame, rep.frame.opts
    with db.reading():
        items = rollup.sums(
            db, "poll_rollup", ("site", "device", "kind", "tz"), opts.period, rep.rng, opts.site, None, "r.site"
        )

        def site_period(p: Mapping[str, Any]) -> tuple[str, str]:
            return p["site"], p["period"]

        sources = [_runs(filter(rep._kept, items), site_period), _sorted_runs(rep.cut_polls, site_period)]
        for (site, _label), parts in _merged(sources):
            yield from _site_bottlenecks(frame, site, sum(sum(parts, []), []))


def _site_bottlenecks(frame: _Frame, site: str, items: list[Mapping[str, Any]]) -> Iterator[Row]:
    """One office's rows of one period label (more than one only if its timezone changed in it)."""
    by_bounds: dict[tuple, tuple[tuple, dict[str, dict[str, int]]]] = {}
    for p in items:
        label, pstart, pend = bucket(p["min_ms"], frame.history.tz(site, p["min_ms"]), frame.opts.period)
        order = (p["min_ms"], p["site"], p["device"])
        first, kinds = by_bounds.get((label, pstart, pend), (order, {}))
        by_bounds[(label, pstart, pend)] = (min(first, order), kinds)
        if p["kind"] in ("staff", "office"):
            s = kinds.setdefault(p["kind"], dict.fromkeys(_PC + ("polls",), 0))
            for n in _PC + ("polls",):
                s[n] += p[n]
    for (label, pstart, pend), (_first_at, kinds) in sorted(by_bounds.items(), key=lambda x: x[1][0]):
        counts = {k: PollCounts(**{n: s[n] for n in _PC}) for k, s in kinds.items() if s["polls"]}
        yield bottleneck_row(frame, site, label, pstart, pend, counts.get("staff"), counts.get("office"))


def compute(db, history: History, opts: Options, counts, lost, offices=None) -> Row:
    """The report (docs/report-json.md) whose "rows" and "bottleneck" are iterators making each
    row as the sums arrive; "total" is filled in when the last row has been read."""
    rep = _Report(db, history, opts, counts, lost, offices)
    report = report_dict(rep.frame, rep.total, [], {}, [])
    report["rows"] = _rows(rep, report)
    report["bottleneck"] = () if opts.employee is not None else _bottlenecks(rep)
    return report
