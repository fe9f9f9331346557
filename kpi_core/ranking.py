"""Fair rankings of employees or offices by a dissatisfaction index, honest with small samples.

Theory of operation
-------------------
A raw DI of 0 % on 6 polls is not better than 4 % on 600: ranking raw shares puts the luckiest
small samples on top and the unluckiest at the bottom. Each subject's DI is a share
score / n (score = N + k*S, the index's numerator, fractional because of k), so we use the
empirical-Bayes beta-binomial model:

1. ``fit_prior``: the subjects' shares are assumed to come from one Beta(alpha, beta)
   distribution around the pooled mean m = sum(score) / sum(n); its spread is estimated by the
   method of moments from how much more the shares vary than binomial noise alone would make
   them vary. Little extra variation -> a strong prior (alpha + beta large) -> strong shrinkage.
2. Each subject's posterior is Beta(alpha + score, beta + n - score): its mean (the shrunk DI)
   lies between the raw share and m, nearer the raw share the more polls it rests on; its
   2.5 % and 97.5 % quantiles are the credible interval.
3. Subjects are ordered by the shrunk DI (lower is better), but a subject gets a *range* of
   ranks, not one number: ``rank_best`` counts the subjects whose whole interval lies below its
   own (surely better), ``rank_worst`` the ones surely worse. Subjects that cannot be told apart
   share overlapping ranges ("3-7"); a single rank is shown only where the data separate it.
4. Subjects with fewer than ``min_n`` polls are listed with their figures and a reason, unranked.

Pure: no clock, no I/O; the regularised incomplete beta function is computed here (a continued
fraction, evaluated with the modified Lentz method) because the standard library has none.
"""

import bisect
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from kpi_core import _check
from kpi_core.counts import PollCounts

MIN_N = 30  # the same small-sample bound as kpi_core.flags.Thresholds.min_n
MAX_STRENGTH = 1e4  # alpha + beta when the shares vary no more than chance: ties for any usual n
MIN_STRENGTH = 2.0  # never weaker than a uniform-ish prior
TOO_FEW = "too few polls to rank (n < %d)"


@dataclass(frozen=True)
class Prior:
    """Beta(alpha, beta): where the subjects' true DIs lie, fitted from all of them."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def strength(self) -> float:
        """alpha + beta: how many polls' worth of weight the chain's mean has in each estimate."""
        return self.alpha + self.beta


@dataclass(frozen=True)
class Ranked:
    """One subject of a ranking. Shares are fractions (0.12 = 12 %)."""

    subject: Hashable
    score: float  # N + k*S, the index's numerator
    n: int  # the polls it rests on (the index's denominator)
    raw: float | None  # score / n
    shrunk: float | None  # the posterior mean: what it is ranked by
    low: float | None  # 95 % credible interval of the shrunk DI
    high: float | None
    rank_best: int | None  # 1 = lowest DI; None when not ranked
    rank_worst: int | None
    reason: str | None = None  # why it is not ranked

    @property
    def rank_text(self) -> str:
        """'3' where the data separate it, '3-7' where they do not, '' when unranked."""
        if self.rank_best is None:
            return ""
        if self.rank_best == self.rank_worst:
            return str(self.rank_best)
        return "%d-%d" % (self.rank_best, self.rank_worst)


# ---- the numerators of the indices --------------------------------------------------------------
def staff_score(c: PollCounts, k: float) -> tuple[float, int]:
    """DI-staff's (score, n): No and silent polls under confirmed force majeure left out."""
    n = c.valid - c.fm_no - c.fm_silent
    return (c.no - c.fm_no) + k * (c.silent - c.fm_silent), n


def office_score(c: PollCounts, k: float) -> tuple[float, int]:
    """DI-office's (score, n)."""
    return c.no + k * c.silent, c.valid


# ---- the prior ------------------------------------------------------------------------------------
def fit_prior(items: Iterable[tuple[float, int]]) -> Prior:
    """Method-of-moments Beta prior from (score, n) pairs (subjects with n = 0 tell nothing)."""
    data = [(float(s), int(n)) for s, n in items if n > 0]
    total_n = sum(n for _s, n in data)
    if not data:
        return Prior(1.0, 1.0)
    m = sum(s for s, _n in data) / total_n
    # keep the mean off 0 and 1 so the prior stays a proper Beta (half a poll either way)
    m = min(max(m, 0.5 / total_n), 1 - 0.5 / total_n)
    strength = MAX_STRENGTH
    if len(data) > 1:
        spread = sum(n * (s / n - m) ** 2 for s, n in data)  # weighted squared deviations
        chance = m * (1 - m) * (len(data) - 1)  # what binomial noise alone gives
        weight = total_n - sum(n * n for _s, n in data) / total_n
        between = (spread - chance) / weight if weight > 0 else 0.0
        if between > 0:
            strength = m * (1 - m) / between - 1
    strength = min(max(strength, MIN_STRENGTH), MAX_STRENGTH)
    return Prior(m * strength, (1 - m) * strength)


# ---- the ranking --------------------------------------------------------------------------------
def rank(
    items: Iterable[tuple[Hashable, float, int]],
    min_n: int = MIN_N,
    level: float = 0.95,
    prior: Prior | None = None,
) -> list[Ranked]:
    """(subject, score, n) triples -> Ranked rows, best (lowest shrunk DI) first, unranked last.

    The prior is fitted from every subject given (also the small ones) unless one is passed,
    e.g. the chain's, to shrink an office's employees toward the chain rather than the office."""
    _check.count(min_n, "min_n")
    _check.number(level, "level", 0, 1, low_open=True)
    rows = []
    for subject, score, n in items:
        _check.count(n, "n")
        _check.number(score, "score", 0, n)
        rows.append((subject, float(score), int(n)))
    if prior is None:
        prior = fit_prior((s, n) for _x, s, n in rows)
    tail = (1 - level) / 2
    estimates = []
    for subject, score, n in rows:
        a, b = prior.alpha + score, prior.beta + n - score
        shrunk = a / (a + b)
        low, high = beta_quantile(tail, a, b), beta_quantile(1 - tail, a, b)
        # A posterior with b (or a) near 0 piles its mass at one end: its mean can then fall
        # outside its own equal-tailed interval (a chain prior of beta 0.005 and 367 of 367:
        # mean 0.999985, 2.5 % quantile 0.9999854). A reader must never see a figure outside
        # the range printed next to it: the interval is widened to hold the estimate.
        low, high = min(low, shrunk), max(high, shrunk)
        estimates.append((subject, score, n, shrunk, low, high))
    ranked = [e for e in estimates if e[2] >= min_n and e[2] > 0]
    ranked.sort(key=lambda e: (e[3], -e[2], str(e[0])))
    highs = sorted(e[5] for e in ranked)
    lows = sorted(e[4] for e in ranked)
    out = []
    for subject, score, n, shrunk, low, high in ranked:
        surely_better = bisect.bisect_left(highs, low)  # whole interval below this one's
        surely_worse = len(lows) - bisect.bisect_right(lows, high)  # whole interval above
        out.append(
            Ranked(subject, score, n, score / n, shrunk, low, high, 1 + surely_better, len(ranked) - surely_worse)
        )
    small = [e for e in estimates if not (e[2] >= min_n and e[2] > 0)]
    small.sort(key=lambda e: (-e[2], str(e[0])))
    for subject, score, n, shrunk, low, high in small:
        raw = score / n if n else None
        out.append(Ranked(subject, score, n, raw, shrunk if n else None, low, high, None, None, TOO_FEW % min_n))
    return out


# ---- the Beta distribution ------------------------------------------------------------------------
def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    # the continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b), modified Lentz method."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 1000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return f


def beta_pdf(x: float, a: float, b: float) -> float:
    if x <= 0 or x >= 1:
        return 0.0
    log_pdf = (a - 1) * math.log(x) + (b - 1) * math.log1p(-x)
    return math.exp(log_pdf - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))


def beta_quantile(p: float, a: float, b: float) -> float:
    """x with I_x(a, b) = p: Newton steps from the normal approximation, kept inside a bracket
    that every step narrows (a step leaving it bisects instead), so it cannot miss."""
    lo, hi = 0.0, 1.0
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    x = min(max(mean + sd * _normal_quantile(p), 1e-12), 1 - 1e-12)
    for _ in range(300):
        f = beta_cdf(x, a, b) - p
        if abs(f) < 1e-13:
            return x
        if f < 0:
            lo = x
        else:
            hi = x
        slope = beta_pdf(x, a, b)
        step = x - f / slope if slope > 0 else -1.0
        x = step if lo < step < hi else (lo + hi) / 2
        if hi - lo <= 1e-15 * hi:  # relative: quantiles near 0 can be as small as 1e-15
            break
    return x


def _normal_quantile(p: float) -> float:
    """A rough standard normal quantile (Newton's start only; accuracy does not matter)."""
    p = min(max(p, 1e-12), 1 - 1e-12)
    t = math.sqrt(-2 * math.log(min(p, 1 - p)))
    z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t**3)
    return z if p > 0.5 else -z
