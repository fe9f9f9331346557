"""Auxiliary KPIs (conversion, coverage, force-majeure rate) and report flags."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi_core import (
    Flag,
    PollCounts,
    Thresholds,
    di_office,
    di_staff,
    eli,
    exact_conversion,
    flags,
    fm_rate,
    visitor_coverage,
)

RATIOS = [(exact_conversion, "transactions"), (visitor_coverage, "visitors"), (fm_rate, "polls")]


@pytest.mark.parametrize("fn, base", RATIOS)
def test_zero_base_gives_reason(fn, base):
    f = fn(0, 0)
    assert f.value is None and f.reason and f.n == 0
    assert str(f).startswith("n/a (")


def test_reasons_name_the_base():
    assert exact_conversion(5, 0).reason == "no transactions counted"
    assert visitor_coverage(5, 0).reason == "no visitors counted"
    assert fm_rate(0, 0).reason == "no polls"
    assert exact_conversion(5, None).reason == "transaction count not available"
    assert visitor_coverage(5, None).reason == "visitor count not available"


@pytest.mark.parametrize("fn, base", RATIOS)
@given(part=st.integers(0, 10**6), whole=st.integers(1, 10**6))
def test_ratio_bounds_and_anomaly(fn, base, part, whole):
    f = fn(part, whole)
    assert f.value == pytest.approx(part / whole) and f.n == whole
    if part <= whole:
        assert 0 <= f.low <= f.value <= f.high <= 1 and f.reason is None
    else:
        assert f.low is None and f.high is None and f.reason.startswith("more ")


def test_ratio_inputs_validated():
    with pytest.raises(ValueError, match="^polls:"):
        exact_conversion(-1, 10)
    with pytest.raises(ValueError, match="^visitors:"):
        visitor_coverage(1, 2.5)
    with pytest.raises(ValueError, match="^fm_reports:"):
        fm_rate(None, 10)


def test_thresholds_defaults_and_validation():
    t = Thresholds()
    assert (t.fm_rate_max, t.coverage_min, t.conversion_min, t.min_n) == (0.10, 0.30, 0.30, 30)
    with pytest.raises(ValueError, match="^fm_rate_max:"):
        Thresholds(fm_rate_max=1.5)
    with pytest.raises(ValueError, match="^min_n:"):
        Thresholds(min_n=-1)


def codes(fl):
    return sorted(f.code for f in fl)


def test_no_flags_for_healthy_report():
    c = PollCounts(100, 10, 10, 20)
    assert (
        flags(
            di_staff=di_staff(c),
            di_office=di_office(c),
            eli=eli(c),
            conversion=exact_conversion(140, 300),
            coverage=visitor_coverage(140, 400),
            fm_rate=fm_rate(5, 140),
        )
        == []
    )
    assert flags() == []


def test_each_flag():
    small = di_staff(PollCounts(10, 2, 1, 3))
    fl = flags(
        di_staff=small,
        di_office=di_office(PollCounts(0, 0, 0, 0)),
        conversion=exact_conversion(20, 100),
        coverage=visitor_coverage(29, 100),
        fm_rate=fm_rate(11, 100),
    )
    assert codes(fl) == ["conversion_low", "coverage_low", "fm_rate_high", "no_data", "small_sample"]
    by = {f.code: f for f in fl}
    assert by["small_sample"].subject == "DI-staff" and "16 polls" in by["small_sample"].message_en
    assert "ИНК@Персонал" in by["small_sample"].message_ru
    assert by["no_data"].subject == "DI-office" and "no valid polls" in by["no_data"].message_en
    assert "11 %" in by["fm_rate_high"].message_en and "10 %" in by["fm_rate_high"].message_en
    for f in fl:
        assert isinstance(f, Flag) and f.message_en and f.message_ru and f.subject


def test_threshold_edges_are_not_flagged():
    assert (
        flags(coverage=visitor_coverage(30, 100), conversion=exact_conversion(30, 100), fm_rate=fm_rate(10, 100)) == []
    )
    assert flags(di_office=di_office(PollCounts(30, 0, 0, 0))) == []
    assert codes(flags(di_office=di_office(PollCounts(29, 0, 0, 0)))) == ["small_sample"]


def test_custom_thresholds():
    t = Thresholds(fm_rate_max=0.02, coverage_min=0.5, conversion_min=0.0, min_n=0)
    assert codes(
        flags(
            fm_rate=fm_rate(3, 100),
            coverage=visitor_coverage(40, 100),
            conversion=exact_conversion(1, 100),
            eli=eli(PollCounts(1, 0, 0, 0)),
            thresholds=t,
        )
    ) == ["coverage_low", "fm_rate_high"]


def test_more_polls_than_base_flagged():
    fl = flags(conversion=exact_conversion(120, 100), coverage=visitor_coverage(300, 200))
    assert codes(fl) == ["polls_exceed_base", "polls_exceed_base"]
    by = {f.subject: f for f in fl}
    assert "120 %" in by["exact conversion"].message_en and "150 %" in by["visitor coverage"].message_en


def test_flags_type_checked():
    with pytest.raises(TypeError):
        flags(di_staff=0.2)
