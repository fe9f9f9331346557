"""DI-staff, DI-office, ELI and their intervals: unit cases and properties (hypothesis)."""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kpi_core import Figure, PollCounts, di_office, di_staff, eli, signed_score_interval, wilson


@st.composite
def counts(draw, max_n=400):
    yes, no, unsure, silent = (draw(st.integers(0, max_n)) for _ in range(4))
    return PollCounts(yes, no, unsure, silent, draw(st.integers(0, no)), draw(st.integers(0, silent)))


ks = st.one_of(st.just(0.0), st.just(1.0), st.just(0.8), st.floats(0, 1))


# -- PollCounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kw, field",
    [
        ((-1, 0, 0, 0), {}, "yes"),
        ((0, 1.5, 0, 0), {}, "no"),
        ((0, 0, True, 0), {}, "unsure"),
        ((0, 2, 0, 0), {"fm_no": 3}, "fm_no"),
        ((0, 0, 0, 1), {"fm_silent": 2}, "fm_silent"),
    ],
)
def test_poll_counts_validated(args, kw, field):
    with pytest.raises(ValueError) as e:
        PollCounts(*args, **kw)
    assert str(e.value).startswith(field + ":")


def test_poll_counts_add_and_valid():
    a = PollCounts(1, 2, 3, 4, 1, 1) + PollCounts(10, 20, 30, 40, 2, 3)
    assert a == PollCounts(11, 22, 33, 44, 3, 4) and a.valid == 110 and a.answered == 66


# -- formulas by hand ------------------------------------------------------------------------


def test_formulas_by_hand():
    c = PollCounts(yes=50, no=10, unsure=20, silent=20, fm_no=4, fm_silent=5)
    assert di_office(c).value == pytest.approx((10 + 0.8 * 20) / 100)
    assert di_staff(c).value == pytest.approx((6 + 0.8 * 15) / 91)
    assert di_staff(c).n == 91 and di_office(c).n == 100
    assert eli(c).value == pytest.approx(0.50 - 0.26)
    assert eli(c, k=0.5).value == pytest.approx(0.50 - 0.20)


def test_unsure_counts_only_in_v():
    assert di_office(PollCounts(0, 1, 3, 0)).value == pytest.approx(0.25)
    assert eli(PollCounts(1, 0, 3, 0)).value == pytest.approx(0.25)


@pytest.mark.parametrize("fn", [di_staff, di_office, eli])
def test_no_valid_polls_gives_reason_not_error(fn):
    f = fn(PollCounts(0, 0, 0, 0))
    assert f.value is None and f.low is None and f.high is None and f.reason == "no valid polls"
    assert "no valid polls" in str(f)


def test_di_staff_everything_under_fm():
    f = di_staff(PollCounts(0, 3, 0, 2, fm_no=3, fm_silent=2))
    assert f.value is None and "force majeure" in f.reason
    assert di_office(PollCounts(0, 3, 0, 2, fm_no=3, fm_silent=2)).value == pytest.approx((3 + 1.6) / 5)


@pytest.mark.parametrize("k", [-0.1, 1.01, float("nan"), "0.8", None, True])
def test_k_validated(k):
    with pytest.raises(ValueError) as e:
        di_staff(PollCounts(1, 1, 1, 1), k=k)
    assert str(e.value).startswith("k:")


def test_counts_type_checked():
    with pytest.raises(TypeError):
        di_office({"yes": 1})


# -- Wilson ----------------------------------------------------------------------------------


def test_wilson_known_values():
    # Reference values of the Wilson score interval (e.g. 0/10 -> 0-27.8 %, 10/10 -> 72.2-100 %).
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    assert wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)


@given(st.integers(1, 10**5), st.floats(0, 1))
def test_wilson_ends_solve_the_score_equation(n, frac):
    # Independent route: the Wilson ends are the roots p of (phat - p)^2 = z^2 p (1 - p) / n.
    z, phat = 1.959964, frac
    a = 1 + z * z / n
    b = -(2 * phat + z * z / n)
    c = phat * phat
    disc = math.sqrt(max(b * b - 4 * a * c, 0.0))
    roots = ((-b - disc) / (2 * a), (-b + disc) / (2 * a))
    assert wilson(n * frac, n) == pytest.approx(roots, abs=1e-9)


def test_wilson_rejects_bad_input():
    for args in [(1, 0), (11, 10), (-1, 10), (1, 10.5)]:
        with pytest.raises(ValueError):
            wilson(*args)


@given(st.integers(1, 10**6), st.floats(0, 1))
def test_wilson_bounds(n, frac):
    s = n * frac
    low, high = wilson(s, n)
    assert 0 <= low <= s / n <= high <= 1
    assert high - low > 0  # never zero width


@given(st.integers(1, 5000), st.floats(-1, 1))
def test_signed_interval_bounds(n, mean):
    low, high = signed_score_interval(mean * n, n)
    assert -1 <= low <= mean * n / n <= high <= 1 and high > low


# -- properties of the indices ---------------------------------------------------------------


@settings(max_examples=300)
@given(counts(), ks)
def test_bounds(c, k):
    for f, lo, hi in ((di_staff(c, k), 0, 1), (di_office(c, k), 0, 1), (eli(c, k), -1, 1)):
        if f.value is None:
            assert f.reason
            continue
        assert lo <= f.low <= f.value <= f.high <= hi
        assert isinstance(str(f), str)


@settings(max_examples=300)
@given(counts(), ks)
def test_one_more_no_never_lowers_a_di(c, k):
    more = PollCounts(c.yes, c.no + 1, c.unsure, c.silent, c.fm_no, c.fm_silent)
    for fn in (di_staff, di_office):
        before, after = fn(c, k), fn(more, k)
        assert after.value is not None
        if before.value is not None:
            assert after.value >= before.value - 1e-12


@settings(max_examples=300)
@given(counts(), ks)
def test_one_more_yes_never_lowers_eli_and_never_raises_di(c, k):
    more = PollCounts(c.yes + 1, c.no, c.unsure, c.silent, c.fm_no, c.fm_silent)
    if c.valid:
        assert eli(more, k).value >= eli(c, k).value - 1e-12
        assert di_office(more, k).value <= di_office(c, k).value + 1e-12


@settings(max_examples=200)
@given(counts())
def test_k_edges(c):
    assume(c.valid > 0)
    # k = 0: silent customers count as content (only in V); k = 1: as a No.
    assert di_office(c, 0).value == pytest.approx(c.no / c.valid)
    assert di_office(c, 1).value == pytest.approx((c.no + c.silent) / c.valid)
    assert eli(c, 0).value == pytest.approx((c.yes - c.no) / c.valid)
    assert eli(c, 1).value == pytest.approx((c.yes - c.no - c.silent) / c.valid)
    # A larger k never lowers a DI
    assert di_office(c, 1).value >= di_office(c, 0).value


@settings(max_examples=300)
@given(counts(), ks)
def test_fm_exclusion_affects_di_staff_only(c, k):
    plain = PollCounts(c.yes, c.no, c.unsure, c.silent)
    assert di_office(c, k) == di_office(plain, k)
    assert eli(c, k) == eli(plain, k)
    assert di_staff(plain, k) == di_office(plain, k)
    # di_staff equals di_office of the counts with the FM No/silent polls removed entirely
    removed = PollCounts(c.yes, c.no - c.fm_no, c.unsure, c.silent - c.fm_silent)
    a, b = di_staff(c, k), di_office(removed, k)
    assert (a.value is None) == (b.value is None)
    if a.value is not None:
        assert (a.value, a.low, a.high, a.n) == pytest.approx((b.value, b.low, b.high, b.n))


@settings(max_examples=200)
@given(counts(), ks)
def test_interval_narrows_with_more_of_the_same(c, k):
    assume(c.valid > 0)
    big = PollCounts(c.yes * 10, c.no * 10, c.unsure * 10, c.silent * 10)
    small_f, big_f = di_office(c, k), di_office(big, k)
    assert big_f.value == pytest.approx(small_f.value)
    assert big_f.high - big_f.low <= small_f.high - small_f.low + 1e-12


# -- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fig, text",
    [
        (Figure(0.12, 0.08, 0.17, 230), "12 % (8-17 %, n=230)"),
        (Figure(0.12, -0.03, 0.2, 230, signed=True), "+12 % (-3 to +20 %, n=230)"),
        (Figure(-0.4, -0.5, -0.3, 50, signed=True), "-40 % (-50 to -30 %, n=50)"),
        (Figure(0.0, 0.0, 0.1, 30, signed=True), "0 % (0 to +10 %, n=30)"),
        (Figure(0.123, 0.118, 0.128, 20000), "12.3 % (11.8-12.8 %, n=20000)"),
        (Figure(0.004, 0.0, 0.05, 300), "0.4 % (0.0-5.0 %, n=300)"),
        (Figure(None, None, None, 0, "no valid polls"), "n/a (no valid polls)"),
        (Figure(1.15, None, None, 200, "more polls than visitors"), "115 % (more polls than visitors, n=200)"),
    ],
)
def test_format(fig, text):
    assert fig.format() == text == str(fig)
    assert fig.as_dict()["text"] == text


def test_figure_as_dict_is_plain():
    d = di_office(PollCounts(1, 2, 3, 4)).as_dict()
    assert set(d) == {"value", "low", "high", "n", "reason", "signed", "text"}
    assert all(isinstance(v, (float, int, str, bool, type(None))) for v in d.values())
    assert not any(isinstance(v, float) and math.isnan(v) for v in d.values())
