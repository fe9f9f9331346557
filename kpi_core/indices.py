"""The main KPIs of METHOD.md: DI-staff, DI-office (dissatisfaction) and ELI (loyalty).

All three are shares over valid polls, so they come with a 95 % interval (interval.py).
k is the correction coefficient for silent customers: the part of silent customers
assumed to be silent because they were not satisfied.
"""

from kpi_core import _check
from kpi_core.counts import PollCounts
from kpi_core.figure import Figure, missing
from kpi_core.interval import Z95, signed_score_interval, wilson

DEFAULT_K = 0.8  # the seed's standard value when no market study has measured k

NO_VALID_POLLS = "no valid polls"
ALL_UNDER_FM = "every No/silent poll fell under confirmed force majeure and no other poll remains"


def check_k(k: float) -> float:
    return _check.number(k, "k", 0, 1)


def _counts(c):
    if not isinstance(c, PollCounts):
        raise TypeError("counts: expected a PollCounts, got %r" % (type(c).__name__,))
    return c


def _di(negatives, silent, n, k, z):
    if n == 0:
        return None
    score = negatives + k * silent
    low, high = wilson(score, n, z)
    return Figure(score / n, low, high, n)


def di_staff(c: PollCounts, k: float = DEFAULT_K, z: float = Z95) -> Figure:
    """(N + kS) / V with No answers and silent polls under CONFIRMED force majeure left out
    of both the numerator and V (METHOD.md decision 3). Yes/Unsure under force majeure stay."""
    _counts(c)
    check_k(k)
    n = c.valid - c.fm_no - c.fm_silent
    fig = _di(c.no - c.fm_no, c.silent - c.fm_silent, n, k, z)
    if fig is None:
        return missing(0, NO_VALID_POLLS if c.valid == 0 else ALL_UNDER_FM)
    return fig


def di_office(c: PollCounts, k: float = DEFAULT_K, z: float = Z95) -> Figure:
    """(N + kS) / V; force majeure does not matter here (the office owns its problems)."""
    _counts(c)
    check_k(k)
    return _di(c.no, c.silent, c.valid, k, z) or missing(0, NO_VALID_POLLS)


def eli(c: PollCounts, k: float = DEFAULT_K, z: float = Z95) -> Figure:
    """Y/V - (N + kS)/V, from -1 (everyone negative) to +1 (everyone says Yes)."""
    _counts(c)
    check_k(k)
    n = c.valid
    if n == 0:
        return missing(0, NO_VALID_POLLS, signed=True)
    total = c.yes - c.no - k * c.silent
    # Keep the total inside [-n, n] despite float rounding of k * silent.
    total = max(-float(n), min(float(n), total))
    low, high = signed_score_interval(total, n, z)
    return Figure(total / n, low, high, n, signed=True)
