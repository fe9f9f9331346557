"""The report from the rollups in bounded memory: rows made as the SQL sums arrive.

`compute` gives the same report as `gateway.report_sums.compute` (byte for byte once written:
tests/gateway/test_report_stream.py), but reads the SQL sums ordered by the report's key and
period (a server-side cursor on PostgreSQL, SQLite's own cursor; rows as tuples) and makes each
row as soon as its key and period are complete. Held at any time: one group's sums, the total's
additive sums, the rows of a batch of groups waiting for their counted-time COUNTs, and what is
small whatever the range (the polls of the rollup rows the range cuts through, the counts rows,
lost gaps, invalid contact polls). The bottleneck diagnosis is a second ordered read, after the
rows. A ranking (--sort) reads the sums ordered by period, then key, and ranks one period's rows
at a time (a rank needs every row of its period, no other).

Used for a streamed report (`rating report` as text, CSV or JSON) grouped by office, panel or
employee. The questions grouping (a question's label is its text at the first poll of the whole
range) and the reports built whole (pivot, xlsx, html, pdf, the console) go through
report_sums.compute, which holds every row's sums.
"""

import heapq
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from gateway import report_sums, rollup
from gateway.report_core import Options, Row, _Frame, bottleneck_row, bucket, rank, report_dict
from gateway.report_sums import _PC, _poll_counts, _Sums
from gateway.site import History

BATCH = 500  # groups whose counted-time COUNTs go in one grouped query

# the report key in SQL, as report_core._Frame.key_of makes it (in code point order on both databases)
_KEY_SQL = {"site": "r.site", "device": "r.site || '/' || r.device", "employee": "COALESCE(r.employee, '')"}


def streams(opts: Options) -> bool:
    """Whether a streamed report of these options is made here (else report_sums holds it)."""
    return opts.by in _KEY_SQL


class _Cols:
    """Where each column is in a row of rollup.sums(..., tuples=True): `group`, period, min_ms,
    max_ms, then the sums (a tuple per SQL row: a dict each cost more than adding it up)."""

    def __init__(self, group: tuple[str, ...], sums: tuple[str, ...]):
        self.names = group + ("period", "min_ms", "max_ms") + sums
        at = {n: i for i, n in enumerate(self.names)}
        self.site, self.device, self.tz, self.period, self.min_ms = (
            at[n] for n in ("site", "device", "tz", "period", "min_ms")
        )
        self.kind, self.employee = at.get("kind"), at.get("employee")
        self.sums = slice(len(group) + 3, len(self.names))
        self.first = operator.itemgetter(self.min_ms, self.site, self.device)  # report_sums._group's order

    def row(self, item: Mapping[str, Any]) -> tuple:
        """A dict item (report_sums.cut_sums) as such a tuple."""
        return tuple(item[n] for n in self.names)

    def item(self, row: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(self.names, row, strict=True))


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
        self.poll_group = ("site", "device", "kind", "tz") + self.extra
        self.fm_group = ("site", "device", "tz") + self.extra
        self.pc, self.fc = _Cols(self.poll_group, rollup.POLL_SUMS), _Cols(self.fm_group, rollup.FM_SUMS)
        self.cut_polls = self._cut("poll_rollup", self.poll_group)
        self.cut_fms = self._cut("fm_rollup", self.fm_group)
        self.counted_only = opts.by in ("site", "device") and opts.employee is None
        sites = [opts.site] if opts.site else (None if offices is None else sorted(offices))
        self.invalid = report_sums._invalid_contact_polls(db, self.frame, sites) if self.counts else []
        self.total = _Sums("*", "*", "all", None, None)
        self.totals = _Totals(self.total)
        self.total.start, self.total.end = self._total_bounds()
        self._periods: dict[tuple, tuple[str, int | None, int | None]] = {}
        self._keys: dict[tuple, tuple[str, str]] = {}

    def _kept(self, item: Mapping[str, Any]) -> bool:
        return self.keep is None or item["site"] in self.keep

    def _cut(self, table: str, group: tuple[str, ...]) -> list[dict[str, Any]]:
        """The cut rows' sums as dicts (made into tuples of the SQL rows' layout by _groups)."""
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
        sites |= {i["site"] for i in self.cut_polls + self.cut_fms}  # dicts here; tuples once the rows are read
        sites |= self.counted_sites()
        found = {frame.bounds_of(s) for s in sites}
        return found.pop() if len(found) == 1 else (None, None)

    def counted_sites(self) -> set[str]:
        """The offices whose counts make rows (and count in the total) even without polls."""
        if not self.counted_only:
            return set()
        device = self.frame.opts.by == "device"
        return {r["site"] for r in self.counts if r["device"] or not device}

    def period_of(self, row: Sequence[Any], c: _Cols) -> tuple[str, int | None, int | None]:
        site = row[c.site]
        # one period per timezone and label (bucket() of any instant of it in that timezone);
        # "all" is the office's own range
        pk = (site,) if self.frame.opts.period == "all" else (row[c.tz], row[c.period])
        found = self._periods.get(pk)
        if found is None:
            if len(self._periods) >= 4096:  # bounded: an entry per office (period "all") grows with the rows
                self._periods.clear()
            found = self._periods[pk] = self.frame.period_of(site, row[c.min_ms])
        return found

    def group_key(self, c: _Cols) -> Callable[[Sequence[Any]], tuple[str, str]]:
        """The report key and period label of a row of layout `c` (the rollup's period label is
        bucket()'s, rollup._labels: the order the SQL sums come in); ranked (`--sort`): the
        period label, then the key (a rank needs one period's rows, all of them)."""
        by, site, period = self.frame.opts.by, c.site, c.period
        if self.frame.opts.sort:
            if by == "site":
                return operator.itemgetter(period, site)
            if by == "device":
                device = c.device
                return lambda r: (r[period], "%s/%s" % (r[site], r[device]))
            employee = c.employee
            assert employee is not None  # by employee: the rows have the column
            return lambda r: (r[period], r[employee] or "")
        if by == "site":
            return operator.itemgetter(site, period)
        if by == "device":
            device = c.device
            return lambda r: ("%s/%s" % (r[site], r[device]), r[period])
        employee = c.employee
        assert employee is not None  # by employee: the rows have the column
        return lambda r: (r[employee] or "", r[period])

    def kept(self, rows: Iterable[Sequence[Any]], c: _Cols) -> Iterable[Sequence[Any]]:
        """The rows of the account's offices."""
        keep, site = self.keep, c.site
        return rows if keep is None else (r for r in rows if r[site] in keep)

    def key_label(self, row: Sequence[Any], c: _Cols) -> tuple[str, str]:
        """(key, label) of the row's group (report_sums._key_of), looked up once per key."""
        kk = (row[c.site], row[c.device], None if c.employee is None else row[c.employee])
        found = self._keys.get(kk)
        if found is None:
            if len(self._keys) >= 4096:  # bounded, as the periods
                self._keys.clear()
            found = self._keys[kk] = report_sums._key_of(self.frame, c.item(row))
        return found


def _runs(items: Iterable[Any], key: Callable[[Any], tuple]) -> Iterator[tuple]:
    """(key, [items]) of consecutive items with one key; the keys must come in order."""
    last = None
    for k, run in itertools.groupby(items, key):
        if last is not None and k < last:
            raise RuntimeError("rollup sums out of order: %r after %r" % (k, last))
        last = k
        yield k, list(run)


def _sorted_runs(items: list, key: Callable[[Any], tuple]) -> list[tuple]:
    return list(_runs(sorted(items, key=key), key))


def _merged(sources: list[Iterable[tuple]]) -> Iterator[tuple[tuple, list[list]]]:
    """(key, [the payloads of each source with that key]) in key order, from sources of
    (key, payload) in key order."""
    # an empty list (no cut rows, no counts: the usual case) is left out of the merge
    tagged = [_tagged(i, src) for i, src in enumerate(sources) if not (isinstance(src, list) and not src)]
    for k, run in itertools.groupby(heapq.merge(*tagged, key=operator.itemgetter(0, 1)), key=operator.itemgetter(0)):
        parts: list[list] = [[] for _ in sources]
        for _k, i, p in run:
            parts[i].append(p)
        yield k, parts


def _tagged(i: int, source: Iterable[tuple]) -> Iterator[tuple]:
    for k, p in source:
        yield k, i, p


def _scope(rep: _Report, polls: list, fms: list, counts: list) -> _Sums:
    """One report row's sums, as report_sums._group makes them (polls first, then reports, then
    an office / panel with counts only); the total's sums grow by the row's."""
    frame = rep.frame
    if polls or fms:
        c = rep.pc if polls else rep.fc
        first = min(polls or fms, key=c.first)  # the item report_sums._group meets first
        key, label = rep.key_label(first, c)
        scope = _Sums(key, label, *rep.period_of(first, c))
        _add_polls(scope, polls, rep.pc, rep.totals)
        _add_reports(scope, fms, rep.fc, rep.totals)
        rep.totals.add(scope)
    else:
        r = counts[0]
        key, label = frame.key_of({"site": r["site"], "device": r["device"]})
        scope = _Sums(key, label, *frame.period_of(r["site"], r["from_ms"]))
        scope.sites.add(r["site"])
        if r["device"]:
            scope.panels.add((r["site"], r["device"]))
    if scope.period == "all":
        found = {frame.bounds_of(s) for s in scope.sites}
        scope.start, scope.end = found.pop() if len(found) == 1 else (None, None)
    return scope


def _add_polls(scope: _Sums, rows: list, c: _Cols, total: "_Totals") -> None:
    """_Sums.add_polls of every row (tuples of layout c): the sums added as tuples per kind (one
    C-level map per row, not a dict add per sum), made dicts once; the total's grow by them."""
    by_kind: dict[str, tuple[int, ...]] = {}
    sums, kind_at, site_at, device_at, min_at = c.sums, c.kind, c.site, c.device, c.min_ms
    site_first, poll_panels, sites = scope.site_first, scope.poll_panels, scope.sites
    for r in rows:
        kind, values = r[kind_at], r[sums]
        before = by_kind.get(kind)
        by_kind[kind] = values if before is None else tuple(map(operator.add, before, values))
        site = r[site_at]
        if site not in site_first or r[min_at] < site_first[site]:
            site_first[site] = r[min_at]
        poll_panels.add((site, r[device_at]))
        sites.add(site)
    scope.panels |= poll_panels
    if by_kind:
        names = rollup.POLL_SUMS
        for kind, values in by_kind.items():
            scope.kinds[kind] = dict(zip(names, values, strict=True))
            before = total.kinds.get(kind)
            total.kinds[kind] = values if before is None else tuple(map(operator.add, before, values))
        scope.all = dict(zip(names, map(sum, zip(*by_kind.values(), strict=True)), strict=True))


def _add_reports(scope: _Sums, rows: list, c: _Cols, total: "_Totals") -> None:
    if not rows:
        return
    sums, site_at, device_at = c.sums, c.site, c.device
    values = rows[0][sums]
    for r in rows[1:]:
        values = tuple(map(operator.add, values, r[sums]))
    for r in rows:
        scope.panels.add((r[site_at], r[device_at]))
        scope.sites.add(r[site_at])
    scope.fm = dict(zip(rollup.FM_SUMS, values, strict=True))
    total.fm = tuple(map(operator.add, total.fm, values))


class _Totals:
    """The total's additive sums as tuples (per kind, reports) while the rows are made; its sets
    and first poll times in its _Sums. `done` makes them the _Sums' dicts after the last row."""

    def __init__(self, total: _Sums):
        self.sums = total
        self.kinds: dict[str, tuple[int, ...]] = {}
        self.fm: tuple[int, ...] = (0,) * len(rollup.FM_SUMS)

    def add(self, scope: _Sums) -> None:
        """The sets and first poll times of one row (its sums: _add_polls / _add_reports)."""
        total = self.sums
        first = total.site_first
        for site, at in scope.site_first.items():
            if site not in first or at < first[site]:
                first[site] = at
        total.poll_panels |= scope.poll_panels
        total.panels |= scope.panels
        total.sites |= scope.sites

    def done(self) -> _Sums:
        total, names = self.sums, rollup.POLL_SUMS
        total.kinds = {kind: dict(zip(names, values, strict=True)) for kind, values in self.kinds.items()}
        if self.kinds:
            total.all = dict(zip(names, map(sum, zip(*self.kinds.values(), strict=True)), strict=True))
        total.fm = dict(zip(rollup.FM_SUMS, self.fm, strict=True))
        return total


def _counted_only_runs(rep: _Report) -> list[tuple]:
    """(group key, [counts rows]) of the offices / panels with counts (a row even without polls)."""
    if not rep.counted_only:
        return []
    out: dict[tuple, list] = {}
    for r in rep.counts:
        if rep.frame.opts.by == "device" and not r["device"]:
            continue
        key, _label = rep.frame.key_of({"site": r["site"], "device": r["device"]})
        label = rep.frame.period_of(r["site"], r["from_ms"])[0]
        out.setdefault((label, key) if rep.frame.opts.sort else (key, label), []).append(r)
    return sorted(out.items())


def _groups(rep: _Report) -> Iterator[_Sums]:
    """Every report row's sums in key and period order (ranked: period and key), one group at a
    time."""
    db, opts = rep.db, rep.frame.opts
    order, ranked = _KEY_SQL[opts.by], bool(opts.sort)
    polls = rollup.sums(
        db, "poll_rollup", rep.poll_group, opts.period, rep.rng, opts.site, opts.employee, order, True, ranked
    )
    fms = rollup.sums(
        db, "fm_rollup", rep.fm_group, opts.period, rep.rng, opts.site, opts.employee, order, True, ranked
    )
    pkey, fkey = rep.group_key(rep.pc), rep.group_key(rep.fc)
    sources = [
        _runs(rep.kept(polls, rep.pc), pkey),
        _runs(rep.kept(fms, rep.fc), fkey),
        _sorted_runs([rep.pc.row(i) for i in rep.cut_polls], pkey),
        _sorted_runs([rep.fc.row(i) for i in rep.cut_fms], fkey),
        _counted_only_runs(rep),
    ]
    for _gk, (p, f, cp, cf, c) in _merged(sources):
        yield _scope(rep, _joined(p + cp), _joined(f + cf), _joined(c))


def _joined(runs: list[list]) -> list:
    return runs[0] if len(runs) == 1 else sum(runs, [])


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
    total = rep.totals.done()
    total.sites |= rep.counted_sites()
    counted = report_sums._counted_rows(rep.db, {None: total}, {None: "total"}, frame, rep.counts, rep.invalid)
    report["total"] = report_sums._row(rep.db, total, "total", frame, rep.counts, rep.lost, counted.get(None))


def _bottlenecks(rep: _Report) -> Iterator[Row]:
    """Per office and period, in that order: the diagnosis from its DI-staff and DI-office
    (report_sums._bottlenecks' rows), from a second read of the sums ordered by office."""
    db, opts = rep.db, rep.frame.opts
    group = ("site", "device", "kind", "tz")
    c = _Cols(group, rollup.POLL_SUMS)
    buckets: dict[tuple, tuple[str, int | None, int | None]] = {}
    with db.reading():
        items = rollup.sums(db, "poll_rollup", group, opts.period, rep.rng, opts.site, None, "r.site", tuples=True)
        site_period = operator.itemgetter(c.site, c.period)
        sources = [
            _runs(rep.kept(items, c), site_period),
            _sorted_runs([c.row(i) for i in rep.cut_polls], site_period),
        ]
        for (site, _label), parts in _merged(sources):
            if len(buckets) >= 4096:  # bounded: one entry per office and period would grow with the rows
                buckets.clear()
            yield from _site_bottlenecks(rep.frame, site, sum(sum(parts, []), []), c, buckets)


_BOTTLENECK_SUMS = tuple(rollup.POLL_SUMS.index(n) for n in _PC + ("polls",))


def _site_bottlenecks(frame: _Frame, site: str, items: list, c: _Cols, buckets: dict) -> Iterator[Row]:
    """One office's rows of one period label (more than one only if its timezone changed in it).
    buckets: the period of each (office, timezone, label) met, bucket() once for each."""
    by_bounds: dict[tuple, tuple[tuple, dict[str, list[int]]]] = {}
    start = c.sums.start
    for p in items:
        # bucket() of the row's first poll: one per office, timezone and label (as _Report.period_of)
        bk = (site, p[c.tz], p[c.period])
        bounds = buckets.get(bk)
        if bounds is None:
            at = p[c.min_ms]
            bounds = buckets[bk] = bucket(at, frame.history.tz(site, at), frame.opts.period)
        order = c.first(p)
        first, kinds = by_bounds.get(bounds, (order, {}))
        by_bounds[bounds] = (min(first, order), kinds)
        kind = p[c.kind]
        if kind in ("staff", "office"):
            s = kinds.get(kind)
            if s is None:
                s = kinds[kind] = [0] * len(_BOTTLENECK_SUMS)
            for i, at in enumerate(_BOTTLENECK_SUMS):
                s[i] += p[start + at]
    for (label, pstart, pend), (_first_at, kinds) in sorted(by_bounds.items(), key=lambda x: x[1][0]):
        counts = {k: _poll_counts(tuple(s[:-1])) for k, s in kinds.items() if s[-1]}
        yield bottleneck_row(frame, site, label, pstart, pend, counts.get("staff"), counts.get("office"))


def _ranked(rows: Iterator[Row], opts: Options) -> Iterator[Row]:
    """The rows (in period, then key order) ranked within each period, one period held at a
    time: report_core.rank of every row gives the same, period by period."""
    for _period, these in itertools.groupby(rows, key=operator.itemgetter("period")):
        yield from rank(list(these), opts.sort or "", opts.k, opts.thresholds.min_n)


def compute(db, history: History, opts: Options, counts, lost, offices=None) -> Row:
    """The report (docs/report-json.md) whose "rows" and "bottleneck" are iterators making each
    row as the sums arrive; "total" is filled in when the last row has been read."""
    rep = _Report(db, history, opts, counts, lost, offices)
    report = report_dict(rep.frame, rep.total, [], {}, [])
    report["rows"] = _ranked(_rows(rep, report), opts) if opts.sort else _rows(rep, report)
    report["bottleneck"] = () if opts.employee is not None else _bottlenecks(rep)
    return report
