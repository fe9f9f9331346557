"""ScopeCounts (the additive sums of one report row) and scope_figures (every figure from them)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kpi_core
from kpi_core import PollCounts, ScopeCounts, scope_figures


@st.composite
def poll_counts(draw):
    yes, no, unsure, silent = (draw(st.integers(0, 50)) for _ in range(4))
    return PollCounts(yes, no, unsure, silent, draw(st.integers(0, no)), draw(st.integers(0, silent)))


scopes = st.builds(
    ScopeCounts,
    staff=st.none() | poll_counts(),
    office=st.none() | poll_counts(),
    loyalty=st.none() | poll_counts(),
    polls=st.integers(0, 200),
    fm_reports=st.integers(0, 20),
    conversion_polls=st.integers(0, 200),
    coverage_polls=st.integers(0, 200),
    transactions=st.none() | st.integers(0, 300),
    visitors=st.none() | st.integers(0, 300),
)


def test_scope_counts_add_up_with_unknowns_as_nothing():
    a = ScopeCounts(staff=PollCounts(1, 2, 3, 4, 1, 1), polls=10, transactions=None, visitors=5)
    b = ScopeCounts(office=PollCounts(1, 0, 0, 0), polls=1, fm_reports=2, transactions=7)
    s = a + b
    assert s.staff == PollCounts(1, 2, 3, 4, 1, 1) and s.office == PollCounts(1, 0, 0, 0) and s.loyalty is None
    assert (s.polls, s.fm_reports, s.transactions, s.visitors) == (11, 2, 7, 5)
    assert ScopeCounts() + ScopeCounts() == ScopeCounts()


@given(scopes, st.sampled_from([0.0, 0.5, 0.8, 1.0]))
def test_scope_figures_are_the_methods_figures_of_the_sums(c, k):
    f = scope_figures(c, k)
    assert f.di_staff == (None if c.staff is None else kpi_core.di_staff(c.staff, k))
    assert f.di_office == (None if c.office is None else kpi_core.di_office(c.office, k))
    assert f.eli == (None if c.loyalty is None else kpi_core.eli(c.loyalty, k))
    assert f.exact_conversion == (
        None if c.transactions is None else kpi_core.exact_conversion(c.conversion_polls, c.transactions)
    )
    assert f.visitor_coverage == (
        None if c.visitors is None else kpi_core.visitor_coverage(c.coverage_polls, c.visitors)
    )
    assert f.fm_rate == (kpi_core.fm_rate(c.fm_reports, c.polls) if c.polls or c.fm_reports else None)
    assert list(f.flags) == kpi_core.flags(
        di_staff=f.di_staff,
        di_office=f.di_office,
        eli=f.eli,
        conversion=f.exact_conversion,
        coverage=f.visitor_coverage,
        fm_rate=f.fm_rate,
    )


@given(scopes, scopes)
def test_adding_is_field_by_field(a, b):
    s = a + b
    assert s.polls == a.polls + b.polls and s.conversion_polls == a.conversion_polls + b.conversion_polls
    for kind in ("staff", "office", "loyalty"):
        x, y = a.kind(kind), b.kind(kind)
        assert s.kind(kind) == (y if x is None else x if y is None else x + y)


def test_scope_counts_refuse_what_is_not_a_count():
    with pytest.raises(ValueError, match="^polls:"):
        ScopeCounts(polls=-1)
    with pytest.raises(ValueError, match="^transactions:"):
        ScopeCounts(transactions=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^staff:"):
        ScopeCounts(staff=(1, 2, 3, 4))  # type: ignore[arg-type]


@given(scopes, st.sampled_from([0.0, 0.5, 0.8, 1.0]))
def test_scope_figures_made_again_for_the_same_sums_are_the_functions_own_figures(c, k):
    # scope_figures remembers the figures of sums it has seen (a chain's rows repeat them)
    for _ in range(2):
        f = scope_figures(c, k)
        assert f.di_staff == (None if c.staff is None else kpi_core.di_staff(c.staff, k))
        assert f.di_office == (None if c.office is None else kpi_core.di_office(c.office, k))
        assert f.eli == (None if c.loyalty is None else kpi_core.eli(c.loyalty, k))
        assert f.fm_rate == (kpi_core.fm_rate(c.fm_reports, c.polls) if (c.polls or c.fm_reports) else None)
        assert f.flags == tuple(
            kpi_core.flags(
                di_staff=f.di_staff,
                di_office=f.di_office,
                eli=f.eli,
                conversion=f.exact_conversion,
                coverage=f.visitor_coverage,
                fm_rate=f.fm_rate,
            )
        )


def test_a_k_refused_is_refused_even_after_the_same_sums_with_an_equal_k():
    c = ScopeCounts(staff=PollCounts(3, 1, 0, 1), polls=5)
    scope_figures(c, 0)  # 0 == False and hash(0) == hash(False): remembered apart
    with pytest.raises(ValueError, match="k: must be a number"):
        scope_figures(c, False)
