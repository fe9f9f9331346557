"""The report's pure compute step: loaded rows in, the report dict (docs/report-json.md) out.

`gateway.report.build_report` loads the inputs (polls, force-majeure reports, counts, verdicts,
lost events, the settings history) and calls `compute(Inputs, Options)`; nothing here touches a
database or a clock, so the same function is property-tested against the simulator's ground
truth (tests/gateway/test_report_compute.py).

Two stages, so a report can later be fed with sums instead of poll rows:
1. `tally_polls` counts one row's polls and reports into a `Tally`: kpi_core.ScopeCounts (every
   sum the method's figures are ratios of) plus the gateway's own sums (invalid polls, review
   status of force-majeure reports, where poll times came from). Tallies add up with `+`.
2. `row_dict` turns a Tally (+ the row's external counts and lost events) into the row: figures,
   intervals and flags from kpi_core.scope_figures.
The poll-by-poll stage 1 is the reference; a rollup (per panel x employee x question x hour,
aggregated in SQL) must give the same Tally for every row.

Rules (see docs/report-json.md for the details):
- a poll belongs to the period that contains its opening time, in its office's timezone;
- a report range given as local times (a `datetime` without tzinfo: what `--from/--to` without
  a UTC offset mean when no office is chosen) is read in each office's own timezone;
- DI-staff over staff-question polls, DI-office over office polls, ELI over loyalty polls;
  invalid polls (expert verdict) count nowhere; confirmed force-majeure periods take that
  panel's No/silent polls out of DI-staff only;
- rows of people (`by="employee"`) show the staff question's figures only: DI-office and ELI
  belong to offices, panels and questions;
- exact conversion and visitor coverage count the polls of the panels that are customer
  contacts (the site file's `conversion`, by default the staff-question panels), opened while
  transactions / visitors were counted; transactions and visitors are known per office
  (site-wide counts, else the sum of its panels' counts) and per panel; a counts interval
  belongs to the period containing its start;
- lost events are reported in the rows whose time window contains the gap.
"""

import bisect
import datetime as _dt
import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import kpi_core
from gateway import i18n
from gateway.site import History
from kpi_core import ScopeCounts, Thresholds
from kpi_core.indices import check_k
from kpi_core.ranking import office_score, staff_score
from kpi_core.scope import FIGURES

BYS = ("employee", "device", "site", "question")
PERIODS = ("day", "week", "month", "all")
KINDS = ("staff", "office", "loyalty")
FORMAT_VERSION = 1

# Share of polls whose time was repaired or taken on arrival above which a row is flagged.
TIME_SHARE_MAX = 0.05
# Share of the contact polls opened outside the counted time above which a row says that its
# conversion / coverage rests on part of the period only.
UNCOUNTED_SHARE_MAX = 0.05
# Figures a higher value of which is better (the others: lower is better), for --sort.
HIGHER_IS_BETTER = ("eli", "exact_conversion", "visitor_coverage")

Bound = int | _dt.datetime | None
Row = dict[str, Any]


def bucket(t_ms: int, tz: _dt.tzinfo, period: str) -> tuple[str, int | None, int | None]:
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


def is_local(bound: Bound) -> bool:
    return isinstance(bound, _dt.datetime) and bound.tzinfo is None


def instant(history: History, site: str | None, bound: Bound) -> int | None:
    """A range bound as epoch ms for one office: ints (and None) as they are, a naive datetime
    in the office's timezone (at that time), an aware one as its instant."""
    if not isinstance(bound, _dt.datetime):
        return bound
    if bound.tzinfo is None:
        as_utc = int(bound.replace(tzinfo=_dt.UTC).timestamp() * 1000)
        bound = bound.replace(tzinfo=history.tz(site, as_utc))
    return int(bound.timestamp() * 1000)


# --- inputs and options ------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What the reader asked for. start/end: epoch ms, None (open), or a naive datetime (that
    wall-clock time in each office's own timezone). employee: only that person's polls and
    reports. sort: a figure name; rows are then ranked best first within each period."""

    by: str = "site"
    period: str = "all"
    start: Bound = None
    end: Bound = None
    site: str | None = None
    k: float = kpi_core.DEFAULT_K
    lang: str = "ru"
    thresholds: Thresholds = field(default_factory=Thresholds)
    reference: Mapping[str, float] = field(default_factory=dict)
    now_ms: int = 0
    employee: str | None = None
    sort: str | None = None

    def __post_init__(self):
        if self.by not in BYS:
            raise ValueError("by: must be one of %s, got %r" % (", ".join(BYS), self.by))
        if self.period not in PERIODS:
            raise ValueError("period: must be one of %s, got %r" % (", ".join(PERIODS), self.period))
        if self.sort is not None and self.sort not in FIGURES:
            raise ValueError("sort: must be one of %s, got %r" % (", ".join(FIGURES), self.sort))
        check_k(self.k)


@dataclass(frozen=True)
class Gap:
    """Lost events of one panel: seqs first..last, lost somewhere between the times of the stored
    events around them (after_ms: the last one before the gap, before_ms: the first one after;
    None when there is none, so the gap is open on that side)."""

    first: int
    last: int
    count: int
    after_ms: int | None = None
    before_ms: int | None = None

    def within(self, lo: int | None, hi: int | None) -> bool:
        """Whether the gap may lie in [lo, hi) (None: open)."""
        return (hi is None or self.after_ms is None or self.after_ms < hi) and (
            lo is None or self.before_ms is None or self.before_ms > lo
        )


@dataclass(frozen=True)
class Inputs:
    """Everything a report is computed from, as plain rows (what gateway.report loads).

    polls / fms / counts: poll rows (gateway.derive's columns), force-majeure report rows and
    counts rows; at least those in the report range (those outside are left out here).
    invalid: ids "site/device/seq" of the polls an expert marked invalid.
    fm_periods: confirmed force-majeure periods, dicts start, end, site, device.
    fm_status: (site, device, seq) -> "confirmed" | "rejected"; a report not in it is pending.
    lost: (site, device) -> the panel's lost events.
    """

    history: History
    polls: Sequence[Mapping[str, Any]] = ()
    fms: Sequence[Mapping[str, Any]] = ()
    counts: Sequence[Mapping[str, Any]] = ()
    invalid: frozenset[str] = frozenset()
    fm_periods: Sequence[Mapping[str, Any]] = ()
    fm_status: Mapping[tuple[str, str, int], str] = field(default_factory=dict)
    lost: Mapping[tuple[str, str], Sequence[Gap]] = field(default_factory=dict)


def is_contact(history: History, poll: Mapping[str, Any]) -> bool:
    """Whether the poll counts toward exact conversion and visitor coverage: its panel's
    `conversion` setting at the poll's time, by default whether it asked a staff question."""
    panel = history.panel(poll["site"], poll["device"], poll["opened_ms"]) or {}
    setting = panel.get("conversion")
    return poll["kind"] == "staff" if setting is None else bool(setting)


# --- the external counts of a row --------------------------------------------------------------


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class _Spans:
    """Counted time: [from, to) spans per (site, device), device "" = the whole office."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]):
        by_key: dict[tuple[str, str], list[tuple[int, int]]] = {}
        by_site: dict[str, list[tuple[int, int]]] = {}
        for r in rows:
            by_key.setdefault((r["site"], r["device"] or ""), []).append((r["from_ms"], r["to_ms"]))
            by_site.setdefault(r["site"], []).append((r["from_ms"], r["to_ms"]))
        self._spans = {key: _merge(v) for key, v in by_key.items()}
        self._starts = {key: [a for a, _ in v] for key, v in self._spans.items()}
        # the counted time of each office (its panels' spans together count once)
        self.ms = sum(b - a for spans in by_site.values() for a, b in _merge(spans))
        self.offices = len(by_site)

    def merged(self) -> list[tuple[tuple[str, str], list[tuple[int, int]]]]:
        """[((site, device or ""), merged [from, to) spans)]."""
        return sorted(self._spans.items())

    def covers(self, site: str, device: str, t: int) -> bool:
        for key in ((site, ""), (site, device)):
            starts = self._starts.get(key)
            if starts:
                i = bisect.bisect_right(starts, t) - 1
                if i >= 0 and t < self._spans[key][i][1]:
                    return True
        return False


@dataclass
class Counted:
    """The external counts picked for one row: their sums, and the time they cover."""

    transactions: int | None = None
    visitors: int | None = None
    tx: _Spans = field(default_factory=lambda: _Spans(()))
    vis: _Spans = field(default_factory=lambda: _Spans(()))

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]]) -> "Counted":
        return cls(
            _total(r["transactions"] for r in rows),
            _total(r["visitors"] for r in rows),
            _Spans(r for r in rows if r["transactions"] is not None),
            _Spans(r for r in rows if r["visitors"] is not None),
        )


_NOT_COUNTED = Counted()  # no counts (read only)


def _total(values: Iterable[int | None]) -> int | None:
    """The sum of the known values; None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# --- stage 1: tallies --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """The sums of one row: the method's (kpi_core.ScopeCounts) and the gateway's own.
    contact: valid polls of the panels that count toward conversion and coverage (in counted
    time or not; ScopeCounts has those in counted time)."""

    scope: ScopeCounts = field(default_factory=ScopeCounts)
    invalid: int = 0
    contact: int = 0
    fm_confirmed: int = 0
    fm_rejected: int = 0
    fm_pending: int = 0
    time_device: int = 0
    time_repaired: int = 0
    time_arrival: int = 0

    def __add__(self, other: "Tally") -> "Tally":
        if not isinstance(other, Tally):
            return NotImplemented
        return Tally(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def poll_id(poll: Mapping[str, Any]) -> str:
    return "%s/%s/%s" % (poll["site"], poll["device"], poll["open_seq"])


def _periods_for(panels: set[tuple[str, str]], periods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The confirmed periods that can cover polls of `panels` (a period names its panel; one
    without a site or device covers every panel): fewer periods to test each poll against."""
    return [
        f
        for f in periods
        if f.get("site") is None or f.get("device") is None or (f.get("site"), f.get("device")) in panels
    ]


def tally_polls(
    polls: Iterable[Mapping[str, Any]],
    fms: Iterable[Mapping[str, Any]],
    inputs: Inputs,
    counted: Counted | None = None,
    kinds: Sequence[str] = KINDS,
) -> Tally:
    """One row's sums, poll by poll (the reference path). Polls need `opened_ms` and `contact`
    (is_contact); kinds: the question kinds whose figures the row shows."""
    polls = list(polls)
    fms = list(fms)
    counted = counted or Counted()
    periods = _periods_for({(p["site"], p["device"]) for p in polls}, inputs.fm_periods)
    records = [dict(p, opened_at=p["opened_ms"]) for p in polls]
    per_kind = {}
    for kind in kinds:
        of_kind = [r for r in records if r["kind"] == kind]
        if of_kind:
            per_kind[kind] = kpi_core.count_polls(
                of_kind, fm_periods=periods if kind == "staff" else (), invalid=inputs.invalid, key=poll_id
            )
    valid = [r for r in records if poll_id(r) not in inputs.invalid]
    sources = {"device": 0, "repaired": 0, "arrival": 0}
    for r in valid:
        sources[r["time_source"]] = sources.get(r["time_source"], 0) + 1
    status = {"confirmed": 0, "rejected": 0, "pending": 0}
    for f in fms:
        status[inputs.fm_status.get((f["site"], f["device"], f["seq"]), "pending")] += 1
    contact = [r for r in valid if r["contact"]]
    scope = ScopeCounts(
        staff=per_kind.get("staff"),
        office=per_kind.get("office"),
        loyalty=per_kind.get("loyalty"),
        polls=len(valid),
        fm_reports=len(fms),
        conversion_polls=sum(1 for r in contact if counted.tx.covers(r["site"], r["device"], r["opened_ms"])),
        coverage_polls=sum(1 for r in contact if counted.vis.covers(r["site"], r["device"], r["opened_ms"])),
        transactions=counted.transactions,
        visitors=counted.visitors,
    )
    return Tally(
        scope=scope,
        invalid=len(records) - len(valid),
        contact=len(contact),
        fm_confirmed=status["confirmed"],
        fm_rejected=status["rejected"],
        fm_pending=status["pending"],
        time_device=sources["device"],
        time_repaired=sources["repaired"],
        time_arrival=sources["arrival"],
    )


# --- stage 2: a row from its tally -------------------------------------------------------------


def fig_dict(f: kpi_core.Figure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    # the types are part of the key: Figure(1, ...) == Figure(1.0, ...), but JSON writes them apart
    return dict(_fig_dict(f, type(f.value), type(f.low), type(f.high)))


@functools.lru_cache(maxsize=8192)  # the figures of a chain's rows repeat; formatting one is most of its cost
def _fig_dict(f: kpi_core.Figure, *_types: type) -> dict[str, Any]:
    return {"value": f.value, "low": f.low, "high": f.high, "n": f.n, "reason": f.reason, "text": f.format()}


def flag(lang: str, code: str, subject: str, **values: Any) -> dict[str, str]:
    """A flag the gateway adds, its message from gateway.i18n in both languages."""
    try:
        # the same flag with the same values (e.g. "2 force-majeure reports pending") recurs on
        # many rows of a chain's report: its three texts are made once (the catalogues are part
        # of the key, so a reloaded one is not served stale texts)
        typed = tuple((k, type(v), v) for k, v in values.items())  # 1 == True, but "%s" tells them apart
        key = (lang, code, subject, typed, *(i18n.catalogue(x) for x in (lang, "en", "ru")))
        return dict(_flag(key))
    except TypeError:  # an unhashable value
        return _flag_dict(lang, code, subject, values)


@functools.lru_cache(maxsize=4096)
def _flag(key: tuple) -> dict[str, str]:
    lang, code, subject, typed = key[:4]
    return _flag_dict(lang, code, subject, {k: v for k, _t, v in typed})


def _flag_dict(lang: str, code: str, subject: str, values: Mapping[str, Any]) -> dict[str, str]:
    return {
        "code": code,
        "subject": subject,
        "message": i18n.flag_text(lang, code, **values),
        "message_en": i18n.flag_text("en", code, **values),
        "message_ru": i18n.flag_text("ru", code, **values),
    }


def _share_text(part: float, whole: float) -> str:
    return "%.0f %%" % (100.0 * part / whole)


def _counted_flags(tally: Tally, counted: Counted, period_ms: int | None, lang: str) -> list[dict[str, str]]:
    """Conversion / coverage resting on part of the period: say how much time the counts cover."""
    out = []
    c = tally.scope
    for subject, inside, known, spans in (
        ("exact conversion", c.conversion_polls, c.transactions, counted.tx),
        ("visitor coverage", c.coverage_polls, c.visitors, counted.vis),
    ):
        outside = tally.contact - inside
        if known is None or not outside or outside <= UNCOUNTED_SHARE_MAX * tally.contact:
            continue
        hours = "%.3g" % (spans.ms / 3600000.0)
        code = "counts_partial" if period_ms and spans.offices else "counts_partial_open"
        share = _share_text(spans.ms, period_ms * spans.offices) if period_ms and spans.offices else ""
        base = "transactions" if subject == "exact conversion" else "visitors"
        out.append(flag(lang, code + "_" + base, subject, hours=hours, share=share, inside=inside, outside=outside))
    return out


@functools.lru_cache(maxsize=4096)
def _flag_dicts(found: tuple[kpi_core.Flag, ...], lang: str) -> tuple[dict[str, str], ...]:
    return tuple(
        {
            "code": f.code,
            "subject": f.subject,
            "message": f.message_ru if lang == "ru" else f.message_en,
            "message_en": f.message_en,
            "message_ru": f.message_ru,
        }
        for f in found
    )


_FIGURES_OF = operator.attrgetter(*FIGURES)  # a ScopeFigures' figures in FIGURES order


def row_dict(
    head: Mapping[str, Any],
    tally: Tally,
    opts: Options,
    lost: tuple[int, str] | None = None,
    counted: Counted | None = None,
    notes: Sequence[dict[str, str]] = (),
) -> Row:
    """The row (docs/report-json.md) of `tally`. head: key, label, period, period_start_ms,
    period_end_ms (and the local fields); lost: (events, "site/device: ranges; ...") for rows of
    offices and panels; counted: the row's external counts; notes: more flags of the caller's."""
    lang = opts.lang
    c = tally.scope
    counted = counted or _NOT_COUNTED
    figs = kpi_core.scope_figures(c, opts.k, opts.thresholds)
    out_flags = [dict(f) for f in _flag_dicts(figs.flags, lang)] if figs.flags else []
    start, end = head.get("period_start_ms"), head.get("period_end_ms")
    period_ms = end - start if start is not None and end is not None else None
    out_flags += _counted_flags(tally, counted, period_ms, lang)
    if tally.fm_pending:
        out_flags.append(flag(lang, "fm_pending", "force-majeure rate", n=tally.fm_pending))
    not_device = tally.time_repaired + tally.time_arrival
    if c.polls and not_device / c.polls > TIME_SHARE_MAX:
        out_flags.append(
            flag(
                lang,
                "time_not_device",
                "time",
                share="%.0f %%" % (100.0 * not_device / c.polls),
                repaired=tally.time_repaired,
                arrival=tally.time_arrival,
            )
        )
    if lost is not None and lost[0]:
        out_flags.append(flag(lang, "lost_events", "events", n=lost[0], ranges=lost[1]))
    out_flags += notes
    by_kind = {
        kind: pc.as_dict() for kind, pc in zip(KINDS, (c.staff, c.office, c.loyalty), strict=True) if pc is not None
    }

    def share(spans: _Spans) -> float | None:
        return min(1.0, spans.ms / (period_ms * spans.offices)) if period_ms and spans.offices else None

    return {
        **{name: head.get(name) for name in HEAD},
        "polls": {
            "valid": c.polls,
            "invalid": tally.invalid,
            "by_kind": by_kind,
            "contact": tally.contact,
            "in_transactions_time": c.conversion_polls,
            "in_visitors_time": c.coverage_polls,
        },
        "kpi": dict(zip(FIGURES, map(fig_dict, _FIGURES_OF(figs)), strict=True)),
        "counts": {"transactions": c.transactions, "visitors": c.visitors},
        "counted_time": {
            "transactions_hours": None if c.transactions is None else counted.tx.ms / 3600000.0,
            "visitors_hours": None if c.visitors is None else counted.vis.ms / 3600000.0,
            "transactions_share": None if c.transactions is None else share(counted.tx),
            "visitors_share": None if c.visitors is None else share(counted.vis),
        },
        "force_majeure": {
            "confirmed": tally.fm_confirmed,
            "rejected": tally.fm_rejected,
            "pending": tally.fm_pending,
            "reports": c.fm_reports,
        },
        "time_sources": {"device": tally.time_device, "repaired": tally.time_repaired, "arrival": tally.time_arrival},
        "lost_events": None if lost is None else lost[0],
        "flags": out_flags,
    }


# --- grouping ----------------------------------------------------------------------------------

HEAD = (
    "key",
    "label",
    "period",
    "period_start_ms",
    "period_end_ms",
    "timezone",
    "period_start_local",
    "period_end_local",
)


class _Scope:
    """What one report row is about: a group key, a period, its polls, reports and counts."""

    def __init__(self, key: str, label: str, period: str, start: int | None, end: int | None):
        self.key, self.label, self.period, self.start, self.end = key, label, period, start, end
        self.polls: list[Mapping[str, Any]] = []
        self.fms: list[Mapping[str, Any]] = []
        self.panels: set[tuple[str, str]] = set()
        self.sites: set[str] = set()

    def head(self, history: History) -> dict[str, Any]:
        """key, label, period and its bounds, as instants and as local times in the timezone of
        the row's offices (None when they are in several timezones)."""
        zones = {history.tz(s) for s in self.sites}
        tz = zones.pop() if len(zones) == 1 else None

        def local(ms):
            return None if ms is None or tz is None else _local_iso(ms, tz)

        return {
            "key": self.key,
            "label": self.label,
            "period": self.period,
            "period_start_ms": self.start,
            "period_end_ms": self.end,
            "timezone": None if tz is None else str(tz),
            "period_start_local": local(self.start),
            "period_end_local": local(self.end),
        }


@functools.lru_cache(maxsize=4096)  # rows of one period share its bounds
def _local_iso(ms: int, tz: _dt.tzinfo) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000.0, tz).isoformat()


class _Frame:
    """The report range per office, and where an item belongs (group key and period)."""

    def __init__(self, history: History, opts: Options):
        self.history, self.opts = history, opts
        self.local_from = (
            opts.start.isoformat() if isinstance(opts.start, _dt.datetime) and is_local(opts.start) else None
        )
        self.local_to = opts.end.isoformat() if isinstance(opts.end, _dt.datetime) and is_local(opts.end) else None
        self._bounds: dict[str | None, tuple[int | None, int | None]] = {}
        self._who: dict[tuple[str, str, int], str] = {}
        self._counts_index: tuple | None = None

    @property
    def local(self) -> bool:
        return bool(self.local_from or self.local_to)

    def bounds_of(self, site: str | None) -> tuple[int | None, int | None]:
        """(start_ms, end_ms) of the report range for office `site`."""
        b = self._bounds.get(site)
        if b is None:
            opts = self.opts
            b = self._bounds[site] = (instant(self.history, site, opts.start), instant(self.history, site, opts.end))
        return b

    def inside(self, site: str, t: int) -> bool:
        lo, hi = self.bounds_of(site)
        return (lo is None or t >= lo) and (hi is None or t < hi)

    def period_of(self, site: str, at: int) -> tuple[str, int | None, int | None]:
        label, start, end = bucket(at, self.history.tz(site, at), self.opts.period)
        if self.opts.period == "all":
            start, end = self.bounds_of(site)
        return label, start, end

    def counts_index(self, counts: Sequence[Mapping[str, Any]]) -> tuple[dict, dict]:
        """The counts rows per office, and the per-panel ones per employee on that panel's roster
        when the interval starts (built once per list: rows x counts would be quadratic)."""
        if self._counts_index is None or self._counts_index[0] is not counts:
            by_site: dict[str, list] = {}
            by_who: dict[str, list] = {}
            for r in counts:
                by_site.setdefault(r["site"], []).append(r)
                if r["device"]:
                    by_who.setdefault(self.employee_at(r["site"], r["device"], r["from_ms"]), []).append(r)
            self._counts_index = (counts, by_site, by_who)
        return self._counts_index[1], self._counts_index[2]

    def employee_at(self, site: str, device: str, t: int) -> str:
        """Who was on the panel's roster at t ("" = nobody), remembered per counts interval."""
        key = (site, device, t)
        who = self._who.get(key)
        if who is None:
            who = self._who[key] = self.history.employee_at(site, device, t) or ""
        return who

    def key_of(self, item: Mapping[str, Any], is_fm: bool = False) -> tuple[str, str]:
        """(key, label) of a poll or force-majeure row for the report's grouping."""
        history, lang, by = self.history, self.opts.lang, self.opts.by
        site, device = item["site"], item["device"]
        if by == "site":
            return site, history.site_name(site)
        if by == "device":
            return "%s/%s" % (site, device), "%s / %s" % (history.site_name(site), device)
        if by == "employee":
            emp = item.get("employee")
            return (emp or "", history.employee_name(emp) if emp else i18n.t(lang, "unassigned"))
        if is_fm:
            at = item["pressed_ms"]
            qid = (history.panel(site, device, at) or {}).get("question")
        else:
            at = item["opened_ms"]
            qid = item.get("question")
        q = history.question(qid, at) or {}
        return qid or "", (q.get("text_" + lang) or qid or i18n.t(lang, "unassigned"))


def _group(
    frame: _Frame, polls: Sequence[Mapping[str, Any]], fms: Sequence[Mapping[str, Any]], counts: Sequence[Mapping]
) -> tuple[dict[tuple[str, str], _Scope], _Scope]:
    groups: dict[tuple[str, str], _Scope] = {}
    total = _Scope("*", "*", "all", None, None)

    def scope_for(key: str, label: str, site: str, at: int) -> _Scope:
        plabel, pstart, pend = frame.period_of(site, at)
        scope = groups.get((key, plabel))
        if scope is None:
            scope = groups[(key, plabel)] = _Scope(key, label, plabel, pstart, pend)
        return scope

    for items, is_fm, at_col in ((polls, False, "opened_ms"), (fms, True, "start_ms")):
        for item in items:
            scope = scope_for(*frame.key_of(item, is_fm), item["site"], item[at_col])
            for sc in (scope, total):
                (sc.fms if is_fm else sc.polls).append(item)
                sc.panels.add((item["site"], item["device"]))
                sc.sites.add(item["site"])
    if frame.opts.by in ("site", "device") and frame.opts.employee is None:
        # offices/panels with counts but no polls still show (coverage 0 is news)
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
    for scope in list(groups.values()) + [total]:
        if scope.period == "all":
            # the report range as instants: one office's, or the same for all of the row's
            # offices; None when local dates mean different instants in its offices
            found = {frame.bounds_of(s) for s in scope.sites}
            if not found:  # an empty report: the range as asked, if it is one range
                found = {(None, None) if frame.local and not frame.opts.site else frame.bounds_of(frame.opts.site)}
            scope.start, scope.end = found.pop() if len(found) == 1 else (None, None)
    return groups, total


# --- counts and lost events of a row -------------------------------------------------------------


def counts_for(scope: _Scope, rule: str, counts: Sequence[Mapping[str, Any]], frame: _Frame) -> Counted:
    """The external counts of the scope; none for questions.

    A person's are the per-panel counts of the intervals that start while they are on that
    panel's roster (a seller's own sales); so are every row's when the report is limited to one
    person. An office's are its site-wide counts, else the sum of its panels' counts; a panel's
    its own."""
    if rule not in ("site", "device", "total", "employee"):
        return Counted()

    def in_range(r):
        return (scope.start is None or r["from_ms"] >= scope.start) and (scope.end is None or r["from_ms"] < scope.end)

    who = scope.key if rule == "employee" else frame.opts.employee
    by_site, by_who = frame.counts_index(counts)
    if who is not None:
        picked = [r for r in by_who.get(who, ()) if in_range(r)]
        if rule == "device":
            picked = [r for r in picked if (r["site"], r["device"]) in scope.panels]
        elif rule == "site":
            picked = [r for r in picked if r["site"] in scope.sites]
        return Counted.of(picked)
    picked = []
    for site in sorted(scope.sites):
        rows = [r for r in by_site.get(site, ()) if in_range(r)]
        site_wide = [r for r in rows if r["device"] == ""]
        if rule == "device" or not site_wide:
            rows = [r for r in rows if r["device"] and (site, r["device"]) in scope.panels]
        else:
            rows = site_wide
        picked += rows
    return Counted.of(picked)


def lost_for(scope: _Scope, frame: _Frame, lost: Mapping[tuple[str, str], Sequence[Gap]]) -> tuple[int, str]:
    """(lost events, "site/device: ranges; ...") of the scope's panels whose gaps may lie in the
    row's time window."""
    n_total, ranges = 0, []
    for panel in sorted(p for p in scope.panels if p in lost):  # the others have no gap
        lo, hi = frame.bounds_of(panel[0]) if scope.period == "all" else (scope.start, scope.end)
        gaps = [g for g in lost.get(panel, ()) if g.within(lo, hi)]
        n = sum(g.count for g in gaps)
        if n:
            n_total += n
            text = ",".join(str(g.first) if g.first == g.last else "%d-%d" % (g.first, g.last) for g in gaps)
            ranges.append("%s/%s: %s" % (panel[0], panel[1], text))
    return n_total, "; ".join(ranges)


def _unassigned_note(scope: _Scope, lang: str) -> list[dict[str, str]]:
    """Why the "(unassigned)" row of a people report exists: nobody was on those panels' roster."""
    panels = ", ".join("%s/%s" % p for p in sorted({(p["site"], p["device"]) for p in scope.polls}))
    if not panels:
        return []
    return [flag(lang, "no_roster", "employee", n=len(scope.polls), panels=panels)]


# --- the report --------------------------------------------------------------------------------


def _scope_row(scope: _Scope, rule: str, inputs: Inputs, frame: _Frame, counts: Sequence[Mapping]) -> Row:
    opts = frame.opts
    counted = counts_for(scope, rule, counts, frame)
    people = rule == "employee"
    tally = tally_polls(scope.polls, scope.fms, inputs, counted, ("staff",) if people else KINDS)
    lost = lost_for(scope, frame, inputs.lost) if rule in ("site", "device", "total") else None
    notes = _unassigned_note(scope, opts.lang) if people and scope.key == "" else []
    return row_dict(scope.head(frame.history), tally, opts, lost, counted, notes)


# DIs are shares of polls: ranked fairly (kpi_core.ranking: shrunk toward the period's mean,
# rank ranges only where the intervals separate rows, small samples unranked).
FAIR_SCORES = {"di_staff": ("staff", staff_score), "di_office": ("office", office_score)}


def rank(rows: list[Row], name: str, k: float = kpi_core.DEFAULT_K, min_n: int = 30) -> list[Row]:
    """Rows ordered by period, each period's best first by figure `name` (rank 1, 2, ...); rows
    without that figure last, without a rank. DI-staff and DI-office rank by the shrunk DI and
    add `rank_range` ("1-3" where rows cannot be told apart) and `fair` (the shrunk DI with its
    interval); rows with fewer than min_n polls of that question are listed unranked."""
    out = []
    for period in sorted({r["period"] for r in rows}):
        these = [r for r in rows if r["period"] == period]
        out += _fair_rank(these, name, k, min_n) if name in FAIR_SCORES else _plain_rank(these, name)
    return out


def _plain_rank(rows: list[Row], name: str) -> list[Row]:
    def value(row):
        fig = row["kpi"][name]
        return None if fig is None else fig["value"]

    sign = -1.0 if name in HIGHER_IS_BETTER else 1.0
    ranked = sorted(((v, r) for r in rows if (v := value(r)) is not None), key=lambda x: (sign * x[0], x[1]["key"]))
    return [dict(r, rank=i) for i, (_, r) in enumerate(ranked, 1)] + [
        dict(r, rank=None) for r in rows if value(r) is None
    ]


def _fair_rank(rows: list[Row], name: str, k: float, min_n: int) -> list[Row]:
    kind, score = FAIR_SCORES[name]
    items, by_key = [], {}
    for r in rows:
        counts = r["polls"]["by_kind"].get(kind)
        if counts is None:
            continue
        s, n = score(kpi_core.PollCounts(**counts), k)
        items.append((r["key"], s, n))
        by_key[r["key"]] = r
    out, place = [], 0
    for x in kpi_core.rank(items, min_n=min_n):
        fair = None if x.shrunk is None else {"value": x.shrunk, "low": x.low, "high": x.high, "n": x.n}
        if x.rank_best is None:
            out.append(dict(by_key[x.subject], rank=None, rank_range=None, fair=fair, rank_note=x.reason))
            continue
        place += 1
        out.append(dict(by_key[x.subject], rank=place, rank_range=x.rank_text, fair=fair, rank_note=None))
    return out + [
        dict(r, rank=None, rank_range=None, fair=None, rank_note=None) for r in rows if r["key"] not in by_key
    ]


def compute(inputs: Inputs, opts: Options) -> Row:
    """The report (docs/report-json.md) of `inputs` as `opts` asks."""
    history = inputs.history
    frame = _Frame(history, opts)
    polls = [dict(p, contact=is_contact(history, p)) for p in inputs.polls if frame.inside(p["site"], p["opened_ms"])]
    fms = [f for f in inputs.fms if frame.inside(f["site"], f["start_ms"])]
    if opts.employee is not None:
        polls = [p for p in polls if p.get("employee") == opts.employee]
        fms = [f for f in fms if f.get("employee") == opts.employee]
    counts = [r for r in inputs.counts if frame.inside(r["site"], r["from_ms"])]
    groups, total = _group(frame, polls, fms, counts)
    rows = [_scope_row(groups[g], opts.by, inputs, frame, counts) for g in sorted(groups)]
    if opts.sort:
        rows = rank(rows, opts.sort, opts.k, opts.thresholds.min_n)
    total_row = _scope_row(total, "total", inputs, frame, counts)
    bneck = [] if opts.employee is not None else bottlenecks(frame, polls, inputs)
    return report_dict(frame, total, rows, total_row, bneck)


def report_dict(frame: "_Frame", total: Any, rows: list[Row], total_row: Row, bottleneck: list[Row]) -> Row:
    """The report's top level (docs/report-json.md) around its rows; `total`: the total's scope
    (its start and end)."""
    opts = frame.opts
    th = opts.thresholds
    return {
        "version": FORMAT_VERSION,
        "generated_ms": opts.now_ms,
        "lang": opts.lang,
        "by": opts.by,
        "period": opts.period,
        "from_ms": total.start,
        "to_ms": total.end,
        "from_local": frame.local_from,
        "to_local": frame.local_to,
        "site": opts.site,
        "employee": opts.employee,
        "sort": opts.sort,
        "k": opts.k,
        "thresholds": {f: getattr(th, f) for f in ("fm_rate_max", "coverage_min", "conversion_min", "min_n")},
        "reference": dict(opts.reference),
        "rows": rows,
        "total": total_row,
        "bottleneck": bottleneck,
    }


def bottlenecks(frame: _Frame, polls: Sequence[Mapping[str, Any]], inputs: Inputs) -> list[Row]:
    """Per office (and period): the bottleneck diagnosis from its DI-staff and DI-office."""
    opts, history = frame.opts, frame.history
    by_site: dict[tuple[str, str, int | None, int | None], list[Mapping[str, Any]]] = {}
    for p in polls:
        label, pstart, pend = bucket(p["opened_ms"], history.tz(p["site"], p["opened_ms"]), opts.period)
        by_site.setdefault((p["site"], label, pstart, pend), []).append(p)
    out = []
    for (site, label, pstart, pend), site_polls in sorted(by_site.items(), key=lambda x: (x[0][0], x[0][1])):
        c = tally_polls(site_polls, (), inputs).scope
        out.append(bottleneck_row(frame, site, label, pstart, pend, c.staff, c.office))
    return out


def bottleneck_row(
    frame: "_Frame",
    site: str,
    label: str,
    pstart: int | None,
    pend: int | None,
    staff: kpi_core.PollCounts | None,
    office: kpi_core.PollCounts | None,
) -> Row:
    """One office's (and period's) bottleneck diagnosis from its staff and office question counts
    (None: the office has no poll of that question; the diagnosis then says so)."""
    opts, history = frame.opts, frame.history
    lang, reference = opts.lang, opts.reference
    di_s = None if staff is None else kpi_core.di_staff(staff, opts.k)
    di_o = None if office is None else kpi_core.di_office(office, opts.k)
    item: Row = {
        "site": site,
        "label": history.site_name(site),
        "period": label,
        "period_start_ms": frame.bounds_of(site)[0] if opts.period == "all" else pstart,
        "period_end_ms": frame.bounds_of(site)[1] if opts.period == "all" else pend,
        "di_staff": fig_dict(di_s),
        "di_office": fig_dict(di_o),
    }
    if "di_staff" not in reference or "di_office" not in reference:
        text = i18n.t(lang, "no_reference")
        item.update(verdict=None, verdict_text=text, reason=text)
    else:
        d = kpi_core.bottleneck(di_s, di_o, reference["di_staff"], reference["di_office"], min_n=opts.thresholds.min_n)
        item.update(
            verdict=d.verdict,
            verdict_text=d.verdict_ru if lang == "ru" else d.verdict,
            reason=d.reason_ru if lang == "ru" else d.reason_en,
        )
    return item
