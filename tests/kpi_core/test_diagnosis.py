"""Bottleneck diagnosis (METHOD.md: DI-staff vs DI-office against reference values)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi_core import Figure, PollCounts, bottleneck, di_office, di_staff
from kpi_core.diagnosis import VERDICTS


def fig(v, n=100):
    return Figure(v, max(v - 0.05, 0), min(v + 0.05, 1), n)


def test_both_worse_and_close_is_staff():
    d = bottleneck(fig(0.20), fig(0.22), 0.10, 0.12)
    assert d.verdict == "staff" and d.verdict_ru == "персонал"
    assert "20 %" in d.reason_en and "22 %" in d.reason_en and "ИНК@Персонал" in d.reason_ru


def test_office_much_higher_is_office():
    d = bottleneck(fig(0.12), fig(0.30), 0.15, 0.20)
    assert d.verdict == "office organisation"
    assert "30 %" in d.reason_en and "организация" in d.reason_ru


def test_office_higher_but_both_fine_is_not_a_bottleneck():
    # The seed calls DI-office above DI-staff normal when both beat the references.
    assert bottleneck(fig(0.02), fig(0.08), 0.10, 0.12).verdict == "no clear bottleneck"


def test_worse_but_not_close_and_not_much_higher():
    assert bottleneck(fig(0.26), fig(0.20), 0.10, 0.10).verdict == "no clear bottleneck"
    assert bottleneck(fig(0.20), fig(0.27), 0.10, 0.10).verdict == "no clear bottleneck"


def test_staff_much_worse_than_reference_and_office_is_looked_at_first():
    d = bottleneck(fig(0.30), fig(0.20), 0.10, 0.10)
    assert d.verdict == "staff first" and d.verdict_ru == "в первую очередь персонал"
    assert "30 %" in d.reason_en and "look at the staff first" in d.reason_en.lower()
    assert "персонал" in d.reason_ru
    d = bottleneck(fig(0.30), fig(0.08), 0.10, 0.12)  # office fine: staff first all the same
    assert d.verdict == "staff first"
    # much worse than its reference but not much higher than DI-office: not this rule
    assert bottleneck(fig(0.30), fig(0.25), 0.10, 0.10).verdict == "staff"
    assert bottleneck(fig(0.14), fig(0.05), 0.10, 0.10).verdict == "no clear bottleneck"  # 1.4x the reference


def test_no_pattern_text_names_the_case_and_not_both_patterns():
    """The text for "no clear bottleneck" used to read "match neither pattern (both worse and
    close; office much higher)", as if both held: it says which case it is and what to watch."""
    cases = {
        (0.05, 0.06): "nothing to fix",
        (0.13, 0.08): "Only DI-staff 13 % is worse",
        (0.09, 0.13): "Only DI-office 13 % is worse",
        (0.20, 0.27): "DI-office somewhat higher",
        (0.26, 0.20): "DI-staff somewhat higher",
    }
    for (s, o), words in cases.items():
        d = bottleneck(fig(s), fig(o), 0.10, 0.12)
        assert d.verdict == "no clear bottleneck" and words in d.reason_en, (s, o, d.reason_en)
        assert "pattern" not in d.reason_en and "признак" not in d.reason_ru
    for verdict, (s, o) in {"staff": (0.20, 0.22), "office organisation": (0.12, 0.30)}.items():
        d = bottleneck(fig(s), fig(o), 0.10, 0.12)
        assert d.verdict == verdict and ("Start with" in d.reason_en) and ("Начните с" in d.reason_ru)


def test_not_enough_data_says_why_and_what_to_do():
    d = bottleneck(fig(0.2), None, 0.10, 0.12)
    assert d.verdict == "not enough data"
    assert "no polls of the office question" in d.reason_en and "add a panel" in d.reason_en
    assert "нет опросов с вопросом об офисе" in d.reason_ru
    d = bottleneck(fig(0.2, n=12), fig(0.2), 0.10, 0.12)
    assert "rests on 12 polls, fewer than 30" in d.reason_en and "longer period" in d.reason_en


def test_ratio_boundaries():
    assert bottleneck(0.20, 0.25, 0.1, 0.1).verdict == "staff"  # 1.25: close
    assert bottleneck(0.20, 0.30, 0.1, 0.1).verdict == "office organisation"  # 1.5: much higher
    assert bottleneck(0.20, 0.30, 0.1, 0.1, much_higher_ratio=1.6).verdict == "no clear bottleneck"
    assert bottleneck(0.20, 0.30, 0.1, 0.1, close_ratio=1.5, much_higher_ratio=2).verdict == "staff"


def test_zero_staff_di():
    assert bottleneck(0.0, 0.0, 0.0, 0.0).verdict == "no clear bottleneck"
    assert bottleneck(0.0, 0.1, 0.0, 0.05).verdict == "office organisation"


def test_not_enough_data():
    d = bottleneck(di_staff(PollCounts(0, 0, 0, 0)), fig(0.3), 0.1, 0.1)
    assert d.verdict == "not enough data" and "no valid polls" in d.reason_en
    assert bottleneck(fig(0.3, n=10), fig(0.3), 0.1, 0.1).verdict == "not enough data"
    assert bottleneck(fig(0.3, n=10), fig(0.3), 0.1, 0.1, min_n=5).verdict == "staff"
    assert bottleneck(None, 0.3, 0.1, 0.1).verdict == "not enough data"


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"close_ratio": 0.9}, "close_ratio"),
        ({"much_higher_ratio": 1.1}, "much_higher_ratio"),
        ({"ref_staff": 2}, "ref_staff"),
    ],
)
def test_settings_validated(kw, field):
    args = {"di_staff": 0.1, "di_office": 0.1, "ref_staff": 0.1, "ref_office": 0.1}
    args.update(kw)
    with pytest.raises(ValueError, match="^" + field + ":"):
        bottleneck(**args)


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_always_a_known_verdict_with_reasons(s, o, rs, ro):
    d = bottleneck(s, o, rs, ro)
    assert d.verdict in VERDICTS and d.reason_en and d.reason_ru
    if d.verdict == "staff":
        assert s > rs and o > ro
    if d.verdict == "office organisation":
        assert o > ro and o > s
    if d.verdict == "staff first":
        assert s > rs and s >= 1.5 * o * (1 - 1e-9) and s >= 1.5 * rs * (1 - 1e-9)


def test_from_counts():
    staff = di_staff(PollCounts(60, 20, 5, 15))
    office = di_office(PollCounts(55, 22, 5, 18))
    assert bottleneck(staff, office, 0.15, 0.15).verdict == "staff"
