"""`rating report --by region`: the office rows of the report rolled up through the site file's
location tree ([[regions]], docs/site-file.md).

The report itself is `report.build_report(by="site")` (nothing is counted here); a region's row
is the sum of its offices' rows - their own and those of every region below it - and its
figures come from those sums through the same `row_dict` (and so kpi_core) as any other row.
Offices are disjoint, so their counts add up (kpi_core.ScopeCounts). Offices outside every
region get a row of their own (key "-"), so the rows still add up to the total.

`rollup` is pure; `build` is the shell that reads the report and the settings history.
"""

from typing import Any

from gateway import i18n, report
from gateway import site as site_mod
from gateway.report_core import HEAD, Tally, rank, row_dict
from kpi_core import PollCounts, ScopeCounts

NO_REGION = "-"


def tally_of(row: dict[str, Any]) -> Tally:
    """The sums behind a report row, read back from the row (docs/report-json.md)."""
    polls, fm, times = row["polls"], row["force_majeure"], row["time_sources"]
    kinds = {kind: PollCounts(**counts) for kind, counts in (polls.get("by_kind") or {}).items()}
    return Tally(
        scope=ScopeCounts(
            staff=kinds.get("staff"),
            office=kinds.get("office"),
            loyalty=kinds.get("loyalty"),
            polls=polls["valid"],
            fm_reports=fm["reports"],
            conversion_polls=polls["in_transactions_time"],
            coverage_polls=polls["in_visitors_time"],
            transactions=row["counts"]["transactions"],
            visitors=row["counts"]["visitors"],
        ),
        invalid=polls["invalid"],
        contact=polls["contact"],
        fm_confirmed=fm["confirmed"],
        fm_rejected=fm["rejected"],
        fm_pending=fm["pending"],
        time_device=times["device"],
        time_repaired=times["repaired"],
        time_arrival=times["arrival"],
    )


_KINDS = ("staff", "office", "loyalty")
_POLL_FIELDS = ("yes", "no", "unsure", "silent", "fm_no", "fm_silent")
_OWN = (
    "invalid",
    "contact",
    "fm_confirmed",
    "fm_rejected",
    "fm_pending",
    "time_device",
    "time_repaired",
    "time_arrival",
)
_SCOPE = ("polls", "fm_reports", "conversion_polls", "coverage_polls")


def total(tallies: list[Tally]) -> Tally:
    """The sum of disjoint scopes' tallies (what Tally.__add__ gives, summed field by field in
    one pass: a year of a large chain adds ten thousand of them)."""
    own = dict.fromkeys(_OWN, 0)
    scope: dict[str, Any] = dict.fromkeys(_SCOPE, 0)
    kinds: dict[str, list[int] | None] = dict.fromkeys(_KINDS)
    known: dict[str, int | None] = {"transactions": None, "visitors": None}
    for t in tallies:
        for name in _OWN:
            own[name] += getattr(t, name)
        c = t.scope
        for name in _SCOPE:
            scope[name] += getattr(c, name)
        for name in known:
            value = getattr(c, name)
            if value is not None:
                known[name] = (known[name] or 0) + value
        for kind in _KINDS:
            pc = getattr(c, kind)
            if pc is not None:
                acc = kinds[kind] or [0] * len(_POLL_FIELDS)
                kinds[kind] = [a + getattr(pc, f) for a, f in zip(acc, _POLL_FIELDS, strict=True)]
    polls = {kind: None if v is None else PollCounts(*v) for kind, v in kinds.items()}
    counts = ScopeCounts(
        staff=polls["staff"],
        office=polls["office"],
        loyalty=polls["loyalty"],
        polls=scope["polls"],
        fm_reports=scope["fm_reports"],
        conversion_polls=scope["conversion_polls"],
        coverage_polls=scope["coverage_polls"],
        transactions=known["transactions"],
        visitors=known["visitors"],
    )
    return Tally(scope=counts, **own)


def _sum(rows: list[dict[str, Any]], head: dict[str, Any], opts: report.Options, tallies=None) -> dict[str, Any]:
    tally = total([tallies[id(r)] if tallies else tally_of(r) for r in rows])
    lost_rows = [r for r in rows if r.get("lost_events")]
    lost = (sum(r["lost_events"] for r in lost_rows), ", ".join(r["key"] for r in lost_rows))
    out = row_dict(head, tally, opts, lost)
    out["offices"] = sorted(r["key"] for r in rows)
    return out


def _head(key: str, label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    first = rows[0]
    head = {name: first.get(name) for name in HEAD}
    starts = [r["period_start_ms"] for r in rows if r.get("period_start_ms") is not None]
    ends = [r["period_end_ms"] for r in rows if r.get("period_end_ms") is not None]
    head.update(key=key, label=label, period_start_ms=min(starts, default=None), period_end_ms=max(ends, default=None))
    if len({r.get("timezone") for r in rows}) > 1:  # offices in several timezones: no one local time
        head.update(timezone=None, period_start_local=None, period_end_local=None)
    return head


def _path(tree: dict[str, dict[str, Any]], rid: str) -> tuple[str, ...]:
    """The names from the top region down to `rid` (the sort key of tree order)."""
    names: list[str] = []
    seen: set[str] = set()
    node: str | None = rid
    while node in tree and node not in seen:
        seen.add(node)
        names.append(tree[node]["name"])
        node = tree[node].get("parent")
    return tuple(reversed(names))


def rollup(
    by_site: dict[str, Any],
    members: dict[str, list[str]],
    tree: dict[str, dict[str, Any]],
    opts: report.Options,
    sites: frozenset[str] | set[str] | None = None,
) -> dict[str, Any]:
    """The region report from the office report `by_site`. members: {region: [office ids]}
    (History.regions, nested ones included); tree: {region: {"name", "parent"}}
    (History.region_tree); sites: the offices the reader may see (None: all) - a region shows
    only when every office of it is visible, so nobody reads a figure of offices outside their
    scope or a region's figure that leaves some of its offices out. Rows come in the tree's
    order (a region, then the regions inside it, by name), offices outside every region last."""
    rows = [r for r in by_site["rows"] if sites is None or r["key"] in sites]
    in_region = {s for offices in members.values() for s in offices}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rid in sorted(members):
        offices = set(members[rid])
        if not offices or (sites is not None and not offices <= set(sites)):
            continue
        for r in rows:
            if r["key"] in offices:
                groups.setdefault((rid, r["period"]), []).append(r)
    for r in rows:
        if r["key"] not in in_region:
            groups.setdefault((NO_REGION, r["period"]), []).append(r)
    outside = i18n.t(opts.lang, "no_region")
    tallies = {id(r): tally_of(r) for r in rows}  # each office row read once, whatever its regions
    out_rows = []
    order = {rid: _path(tree, rid) for rid in members}

    def place(group):
        (rid, _period), these = group
        return (rid == NO_REGION, order.get(rid, ()), rid, these[0]["period_start_ms"] or 0)

    for (rid, _period), these in sorted(groups.items(), key=place):
        label = outside if rid == NO_REGION else (tree.get(rid) or {}).get("name") or rid
        out_rows.append(_sum(these, _head(rid, label, these), opts, tallies))
    if opts.sort:
        out_rows = rank(out_rows, opts.sort, opts.k, opts.thresholds.min_n)
    whole = by_site["total"]
    if sites is not None:
        whole = _sum(rows, {name: whole.get(name) for name in HEAD}, opts, tallies)  # only what the reader sees
    bottleneck = [b for b in by_site.get("bottleneck", []) if sites is None or b["site"] in sites]
    return dict(by_site, by="region", rows=out_rows, total=whole, bottleneck=bottleneck)


def build(db, sites=None, **kwargs) -> dict[str, Any]:
    """The region report: `report.build_report(by="site", **kwargs)` rolled up (see `rollup`)."""
    kwargs.pop("by", None)
    sort = kwargs.pop("sort", None)
    by_site = report.build_report(db, by="site", **kwargs)
    history = site_mod.load(db)
    now = by_site["generated_ms"]
    opts = report.options(
        history,
        "site",
        by_site["period"],
        k=by_site["k"],
        lang=by_site["lang"],
        now_ms=now,
        thresholds=by_site["thresholds"],
        sort=sort,
    )
    return rollup(by_site, history.regions(now), history.region_tree(now), opts, sites)
