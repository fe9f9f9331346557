"""95 % intervals for shares and for means of bounded per-poll scores.

Wilson's score interval is used everywhere because it behaves at the edges (0 %, 100 %,
small n) where the textbook p +- z*sqrt(p(1-p)/n) collapses to zero width or leaves [0, 1].

Fractional successes are allowed on purpose: a dissatisfaction index counts a silent poll
as k (e.g. 0.8) of a No. Per poll the score is then 1, k or 0 - a number in [0, 1] with
mean p, whose variance is at most p(1-p) (the variance of a 0/1 score with the same mean is
the largest possible). Using the binomial variance is therefore conservative: the interval
is at least as wide as it should be, never narrower.
"""

import math

from kpi_core import _check

Z95 = 1.959964  # two-sided 95 % standard normal quantile


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (low, high) for successes out of n; successes may be fractional.

    Raises ValueError for n == 0: there is no share of nothing; callers turn that into a
    Figure with a reason instead.
    """
    _check.count(n, "n")
    if n == 0:
        raise ValueError("n: no observations, so no interval; report the figure as missing")
    _check.number(successes, "successes", 0, n)
    _check.number(z, "z", 0, None, low_open=True)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n + z2 / (4.0 * n * n)) / denom
    # Rounding can push an end a hair past p or out of [0, 1]; the guarantee readers rely on
    # is low <= value <= high inside the possible range.
    low = min(max(centre - half, 0.0), p)
    high = max(min(centre + half, 1.0), p)
    return low, high


def signed_score_interval(total_score: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Interval for the mean of n per-poll scores in [-1, 1] (ELI: Yes +1, Unsure 0, No -1,
    silent -k), given their sum.

    x -> (x + 1) / 2 maps each score into [0, 1]; there the mean is a share-like number with
    variance at most m(1-m), so Wilson applies (conservatively, see the module note), and the
    ends are mapped back with m -> 2m - 1. The result stays inside [-1, 1] and never has zero
    width at +100 % or -100 %.
    """
    _check.count(n, "n")
    if n == 0:
        raise ValueError("n: no observations, so no interval; report the figure as missing")
    _check.number(total_score, "total_score", -n, n)
    low, high = wilson((total_score + n) / 2.0, n, z)
    mean = total_score / n
    return min(2.0 * low - 1.0, mean), max(2.0 * high - 1.0, mean)
