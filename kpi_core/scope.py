"""ScopeCounts -> ScopeFigures: every figure of one report row from additive sums.

Every KPI of the method is a ratio of sums over the polls, reports and external counts of a
scope (an employee, a panel, an office, a question; a period): Yes/No/Unsure/silent answers
per question, the No/silent answers under confirmed force majeure, valid polls, force-majeure
reports, the polls that count toward conversion and coverage, transactions and visitors.
`ScopeCounts` holds exactly those sums and adds up field by field, so a report may build them
poll by poll (the reference path) or from pre-aggregated rollups (per panel, employee,
question and hour) and get the same figures from `scope_figures`.
"""

import functools
from dataclasses import dataclass, fields

from kpi_core import _check
from kpi_core.counts import PollCounts
from kpi_core.figure import Figure
from kpi_core.flags import Flag, Thresholds, flags
from kpi_core.indices import DEFAULT_K, di_office, di_staff, eli
from kpi_core.ratios import exact_conversion, fm_rate, visitor_coverage

KINDS = ("staff", "office", "loyalty")
FIGURES = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")


def _plus(a, b):
    """None means "not part of this scope" (or "not known"): it adds up as nothing."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


@dataclass(frozen=True)
class ScopeCounts:
    """The sums behind one row of a report.

    staff / office / loyalty: counts of the valid polls of that question kind, or None when
    the scope has no poll of that kind at all (then its figure does not apply; PollCounts of
    zeros means polls existed but none is valid: "no valid polls").
    polls: valid polls of every question (the force-majeure rate's base).
    fm_reports: force-majeure reports made in the scope, reviewed or not.
    conversion_polls / coverage_polls: the valid polls that count toward exact conversion /
    visitor coverage (the panels whose polls are customer contacts, inside the time the
    transactions / visitors were counted).
    transactions / visitors: the external counts, None when not known for the scope.
    """

    staff: PollCounts | None = None
    office: PollCounts | None = None
    loyalty: PollCounts | None = None
    polls: int = 0
    fm_reports: int = 0
    conversion_polls: int = 0
    coverage_polls: int = 0
    transactions: int | None = None
    visitors: int | None = None

    def __post_init__(self):
        for kind in KINDS:
            value = getattr(self, kind)
            if value is not None and not isinstance(value, PollCounts):
                raise TypeError("%s: expected a PollCounts or None, got %r" % (kind, type(value).__name__))
        for name in ("polls", "fm_reports", "conversion_polls", "coverage_polls"):
            _check.count(getattr(self, name), name)
        for name in ("transactions", "visitors"):
            if getattr(self, name) is not None:
                _check.count(getattr(self, name), name)

    def kind(self, kind: str) -> PollCounts | None:
        return getattr(self, kind)

    def __add__(self, other: "ScopeCounts") -> "ScopeCounts":
        """Two disjoint scopes (two panels, two hours) add up field by field."""
        if not isinstance(other, ScopeCounts):
            return NotImplemented
        return ScopeCounts(**{f.name: _plus(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})


@dataclass(frozen=True)
class ScopeFigures:
    """The figures of one scope; None = the figure does not apply (no poll of that question,
    no count known). flags: kpi_core.flags of those figures."""

    di_staff: Figure | None
    di_office: Figure | None
    eli: Figure | None
    exact_conversion: Figure | None
    visitor_coverage: Figure | None
    fm_rate: Figure | None
    flags: tuple[Flag, ...]

    def get(self, name: str) -> Figure | None:
        if name not in FIGURES:
            raise KeyError(name)
        return getattr(self, name)


@functools.lru_cache(maxsize=8192, typed=True)  # typed: 0 and False (refused as a count) are not one key
def _memo(fn, *args):
    return fn(*args)


def _once(fn, *args):
    """fn(*args) of a pure figure function, computed once for the same arguments: a chain's
    report has tens of thousands of rows whose counts repeat (the same polls per panel and day
    give the same sums), and an interval with its checks costs more than a lookup. The result is
    the very value fn gives (Figures and Flags are frozen)."""
    try:
        return _memo(fn, *args)
    except TypeError:  # an unhashable argument: fn itself says what is wrong with it
        return fn(*args)


def _flags(*figs_and_thresholds):
    staff, office, loyalty, conversion, coverage, rate, thresholds = figs_and_thresholds
    return tuple(
        flags(
            di_staff=staff,
            di_office=office,
            eli=loyalty,
            conversion=conversion,
            coverage=coverage,
            fm_rate=rate,
            thresholds=thresholds,
        )
    )


def scope_figures(c: ScopeCounts, k: float = DEFAULT_K, thresholds: Thresholds | None = None) -> ScopeFigures:
    """Every figure of the method for the sums `c` (k: the silent-customer coefficient)."""
    if not isinstance(c, ScopeCounts):
        raise TypeError("counts: expected a ScopeCounts, got %r" % (type(c).__name__,))
    staff = None if c.staff is None else _once(di_staff, c.staff, k)
    office = None if c.office is None else _once(di_office, c.office, k)
    loyalty = None if c.loyalty is None else _once(eli, c.loyalty, k)
    conversion = None if c.transactions is None else _once(exact_conversion, c.conversion_polls, c.transactions)
    coverage = None if c.visitors is None else _once(visitor_coverage, c.coverage_polls, c.visitors)
    rate = _once(fm_rate, c.fm_reports, c.polls) if (c.polls or c.fm_reports) else None
    found = _once(_flags, staff, office, loyalty, conversion, coverage, rate, thresholds)
    return ScopeFigures(staff, office, loyalty, conversion, coverage, rate, found)
