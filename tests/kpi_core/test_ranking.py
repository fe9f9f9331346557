"""Fair rankings (kpi_core/ranking.py): shrinkage toward the chain, credible intervals, rank
ranges that only separate what the data separate, small samples listed but not ranked."""

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kpi_core import PollCounts
from kpi_core.ranking import (
    TOO_FEW,
    Prior,
    beta_cdf,
    beta_quantile,
    fit_prior,
    office_score,
    rank,
    staff_score,
)

subjects = st.lists(
    st.integers(0, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    min_size=1,
    max_size=25,
)


def triples(pairs):
    return [("s%d" % i, float(x), n) for i, (x, n) in enumerate(pairs)]


def simpson_cdf(x, a, b, steps=20000):
    """I_x(a, b) by numerical integration of the density (a, b >= 2: a smooth density, where Simpson is exact enough)."""
    h = x / steps
    norm = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
    f = [norm * (i * h) ** (a - 1) * (1 - i * h) ** (b - 1) for i in range(steps + 1)]
    return h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.01, 0.99), st.floats(2, 60), st.floats(2, 60))
def test_beta_cdf_matches_the_integral_of_the_density(x, a, b):
    assert abs(beta_cdf(x, a, b) - simpson_cdf(x, a, b)) < 1e-6


@settings(max_examples=60, deadline=None)
@given(st.floats(0.001, 0.999), st.floats(0.5, 5000), st.floats(0.5, 5000))
def test_beta_quantile_inverts_the_cdf(p, a, b):
    # (with a or b well below 0.5 the quantile can sit within 1e-13 of 1, where doubles cannot
    # resolve 1 - x well enough for this tolerance: only DIs near 100 % would get there)
    x = beta_quantile(p, a, b)
    assert 0 <= x <= 1
    assert abs(beta_cdf(x, a, b) - p) < 1e-7


def test_beta_quantile_known_closed_forms():
    assert abs(beta_quantile(0.3, 1, 1) - 0.3) < 1e-12  # uniform
    assert abs(beta_quantile(0.3, 3, 1) - 0.3 ** (1 / 3)) < 1e-12  # x^a
    assert abs(beta_quantile(0.3, 1, 4) - (1 - 0.7 ** (1 / 4))) < 1e-12  # 1 - (1-x)^b


@settings(max_examples=80, deadline=None)
@given(subjects)
@example([(0, 1), (367, 367)])  # a prior of beta ~0.005: the posterior mean below its 2.5 % quantile
def test_the_shrunk_di_lies_between_the_raw_share_and_the_chain_mean(pairs):
    rows = rank(triples(pairs), min_n=0)
    prior = fit_prior((x, n) for x, n in pairs)
    for r in rows:
        if r.n == 0:
            assert r.raw is None and r.shrunk is None and r.rank_best is None
            continue
        lo, hi = sorted((r.raw, prior.mean))
        assert lo - 1e-12 <= r.shrunk <= hi + 1e-12
        assert 0 <= r.low <= r.shrunk <= r.high <= 1


@settings(max_examples=80, deadline=None)
@given(subjects)
def test_rank_ranges_hold_each_subjects_place_in_the_order(pairs):
    rows = [r for r in rank(triples(pairs), min_n=1) if r.rank_best is not None]
    shrunk = [r.shrunk for r in rows]
    assert shrunk == sorted(shrunk)  # best (lowest DI) first
    for place, r in enumerate(rows, 1):
        assert 1 <= r.rank_best <= place <= r.rank_worst <= len(rows)


def test_subjects_the_data_separate_get_single_ranks():
    rows = rank([("calm", 5, 1000), ("angry", 500, 1000), ("mid", 150, 1000)])
    assert [(r.subject, r.rank_text) for r in rows] == [("calm", "1"), ("mid", "2"), ("angry", "3")]


def test_subjects_that_cannot_be_told_apart_share_a_rank_range():
    rows = rank([("a", 12, 300), ("b", 13, 300), ("c", 14, 300), ("far", 200, 300)])
    texts = {r.subject: r.rank_text for r in rows}
    assert texts["a"] == texts["b"] == texts["c"] == "1-3"
    assert texts["far"] == "4"


def test_a_lucky_small_sample_does_not_top_the_ranking():
    # 0 % of 31 polls against a chain around 10 %: shrunk toward the chain, ranked with a range
    chain = [("e%d" % i, 30 + i % 7, 300) for i in range(20)]
    rows = rank(chain + [("lucky", 0, 31)])
    lucky = next(r for r in rows if r.subject == "lucky")
    assert lucky.raw == 0
    assert lucky.shrunk > 0.03  # pulled most of the way to the chain's ~11 %
    assert lucky.rank_best == 1 and lucky.rank_worst > 10  # could be anywhere near the top half


def test_small_samples_are_listed_with_the_reason_and_not_ranked():
    rows = rank([("big", 30, 300), ("tiny", 0, 7)], min_n=30)
    tiny = rows[-1]
    assert tiny.subject == "tiny" and tiny.rank_best is None and tiny.rank_text == ""
    assert tiny.reason == TOO_FEW % 30 and tiny.n == 7 and tiny.raw == 0


def test_shares_no_more_spread_than_chance_give_the_strongest_prior():
    prior = fit_prior([(10, 100), (10, 100), (10, 100)])
    assert prior.strength == 1e4 and abs(prior.mean - 0.1) < 1e-12


def test_a_given_prior_is_used_as_is():
    rows = rank([("x", 10, 100)], prior=Prior(50, 50), min_n=0)
    assert abs(rows[0].shrunk - 60 / 200) < 1e-12


def test_scores_follow_the_indices_numerators():
    c = PollCounts(yes=50, no=10, unsure=5, silent=10, fm_no=4, fm_silent=5)
    assert staff_score(c, 0.8) == (6 + 0.8 * 5, 75 - 9)
    assert office_score(c, 0.8) == (10 + 0.8 * 10, 75)


def test_bad_arguments_name_the_field():
    import pytest

    with pytest.raises(ValueError, match="score"):
        rank([("x", 11, 10)])
    with pytest.raises(ValueError, match="level"):
        rank([("x", 1, 10)], level=0)
