"""Bottleneck diagnosis from DI-staff and DI-office (METHOD.md "Using the KPIs").

The seed's rule, with the two vague words made settings:
- both DIs worse (higher) than the reference values for the business type AND close to each
  other -> the bottleneck is probably the staff;
- DI-office much higher than DI-staff (and worse than its reference) -> probably the
  organisation of the office;
- anything else -> no clear bottleneck.
"Close": the larger DI is at most close_ratio times the smaller. "Much higher": DI-office is
at least much_higher_ratio times DI-staff. The seed calls it normal for a healthy office to
have DI-office above DI-staff while both beat the references, which is why the office
verdict also needs DI-office to be worse than its reference.
"""

from dataclasses import dataclass

from kpi_core import _check
from kpi_core.figure import Figure

STAFF = "staff"
OFFICE = "office organisation"
UNCLEAR = "no clear bottleneck"
NO_DATA = "not enough data"
VERDICTS = (STAFF, OFFICE, UNCLEAR, NO_DATA)

VERDICTS_RU = {
    STAFF: "персонал",
    OFFICE: "организация работы офиса",
    UNCLEAR: "явного узкого места нет",
    NO_DATA: "недостаточно данных",
}

CLOSE_RATIO = 1.25  # 20 % vs 24 % is "close"; 20 % vs 26 % is not
MUCH_HIGHER_RATIO = 1.5  # DI-office 30 % vs DI-staff 20 % is "much higher"
MIN_N = 30  # same default as Thresholds.min_n
# Both boundaries are inclusive; the slack keeps 0.30 vs 1.5 * 0.20 (= 0.30000000000000004)
# on the side a person computing by hand expects.
EPS = 1e-9


@dataclass(frozen=True)
class Diagnosis:
    verdict: str
    reason_en: str
    reason_ru: str

    @property
    def verdict_ru(self) -> str:
        return VERDICTS_RU[self.verdict]


def _value(x, name, min_n):
    """(value or None, why-not). Accepts a Figure or a plain fraction."""
    if x is None:
        return None, "%s is not available" % name
    if isinstance(x, Figure):
        if x.value is None:
            return None, "%s: %s" % (name, x.reason)
        if x.n < min_n:
            return None, "%s rests on %d polls, fewer than %d" % (name, x.n, min_n)
        x = x.value
    return _check.number(x, name, 0, 1), None


def _p(x):
    return "%.0f %%" % (x * 100.0)


def _close(a, b, ratio):
    lo, hi = min(a, b), max(a, b)
    return hi == lo or (lo > 0 and hi <= ratio * lo * (1 + EPS))


def bottleneck(
    di_staff: Figure | float | None,
    di_office: Figure | float | None,
    ref_staff: float,
    ref_office: float,
    close_ratio: float = CLOSE_RATIO,
    much_higher_ratio: float = MUCH_HIGHER_RATIO,
    min_n: int = MIN_N,
) -> Diagnosis:
    """Diagnosis for one scope. di_* are Figures (or fractions); ref_* are the reference
    fractions for the business type (the average DI of comparable offices)."""
    _check.number(close_ratio, "close_ratio", 1, None)
    _check.number(much_higher_ratio, "much_higher_ratio", close_ratio, None, low_open=True)
    _check.count(min_n, "min_n")
    _check.number(ref_staff, "ref_staff", 0, 1)
    _check.number(ref_office, "ref_office", 0, 1)
    s, why_s = _value(di_staff, "DI-staff", min_n)
    o, why_o = _value(di_office, "DI-office", min_n)
    if s is None or o is None:
        why = "; ".join(w for w in (why_s, why_o) if w)
        return Diagnosis(NO_DATA, "Not enough data: %s." % why, "Недостаточно данных: %s." % why)
    nums = (_p(s), _p(o), _p(ref_staff), _p(ref_office))
    staff_worse, office_worse = s > ref_staff, o > ref_office
    if staff_worse and office_worse and _close(s, o, close_ratio):
        return Diagnosis(
            STAFF,
            "DI-staff %s and DI-office %s are both worse than the references (%s, %s) and close "
            "to each other: the bottleneck is probably the staff." % nums,
            "ИНК@Персонал %s и ИНК@Офис %s оба хуже референсных значений (%s, %s) и близки "
            "друг к другу: узкое место, скорее всего, персонал." % nums,
        )
    if office_worse and o > 0 and o >= much_higher_ratio * s * (1 - EPS):
        return Diagnosis(
            OFFICE,
            "DI-office %s is much higher than DI-staff %s and worse than its reference %s: the "
            "bottleneck is probably the organisation of the office." % (nums[1], nums[0], nums[3]),
            "ИНК@Офис %s значительно выше ИНК@Персонал %s и хуже референсного значения %s: узкое "
            "место, скорее всего, организация работы офиса." % (nums[1], nums[0], nums[3]),
        )
    if not staff_worse and not office_worse:
        en = "Both DIs (staff %s, office %s) are no worse than the references (%s, %s)." % nums
        ru = "Оба индекса (персонал %s, офис %s) не хуже референсных значений (%s, %s)." % nums
    else:
        en = (
            "DI-staff %s and DI-office %s against references %s and %s match neither "
            "pattern (both worse and close; office much higher)." % nums
        )
        ru = (
            "ИНК@Персонал %s и ИНК@Офис %s при референсных %s и %s не подходят ни под один "
            "признак (оба хуже и близки; офис значительно выше)." % nums
        )
    return Diagnosis(UNCLEAR, en, ru)
