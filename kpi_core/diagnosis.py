"""Bottleneck diagnosis from DI-staff and DI-office (METHOD.md "Using the KPIs").

The seed's two patterns, with the two vague words made settings:
- both DIs worse (higher) than the reference values for the business type AND close to each
  other -> the bottleneck is probably the staff;
- DI-office much higher than DI-staff (and worse than its reference) -> probably the
  organisation of the office.
One rule of ours next to them (docs/kpi.md): DI-staff much worse than its reference AND much
higher than DI-office -> look at the staff first (the office's own figure does not explain it).
Anything else -> no clear bottleneck, with a text that says which case it is and what to watch.
"Close": the larger DI is at most close_ratio times the smaller. "Much higher" / "much worse":
at least much_higher_ratio times. The seed calls it normal for a healthy office to have
DI-office above DI-staff while both beat the references, which is why the office verdict also
needs DI-office to be worse than its reference.

Every reason says what the figures are and what to do next, in English and Russian.
"""

from dataclasses import dataclass

from kpi_core import _check
from kpi_core.figure import Figure

STAFF = "staff"
OFFICE = "office organisation"
STAFF_FIRST = "staff first"
UNCLEAR = "no clear bottleneck"
NO_DATA = "not enough data"
VERDICTS = (STAFF, OFFICE, STAFF_FIRST, UNCLEAR, NO_DATA)

VERDICTS_RU = {
    STAFF: "персонал",
    OFFICE: "организация работы офиса",
    STAFF_FIRST: "в первую очередь персонал",
    UNCLEAR: "явного узкого места нет",
    NO_DATA: "недостаточно данных",
}

CLOSE_RATIO = 1.25  # 20 % vs 24 % is "close"; 20 % vs 26 % is not
MUCH_HIGHER_RATIO = 1.5  # DI-office 30 % vs DI-staff 20 % is "much higher"
MIN_N = 30  # same default as Thresholds.min_n
# Both boundaries are inclusive; the slack keeps 0.30 vs 1.5 * 0.20 (= 0.30000000000000004)
# on the side a person computing by hand expects.
EPS = 1e-9

# What to do next, per verdict (en, ru).
_NEXT = {
    STAFF: (
        "Start with the staff: watch the video of the No answers and silent customers, or send a mystery shopper.",
        "Начните с персонала: просмотрите видео ответов «Нет» и молчунов или проведите «тайного покупателя».",
    ),
    OFFICE: (
        "Start with the office's processes (queues, waiting, the premises): survey the dissatisfied customers online.",
        "Начните с процессов офиса (очереди, ожидание, помещение): опросите недовольных клиентов онлайн.",
    ),
    STAFF_FIRST: (
        "Look at the staff first: the office's own figure does not explain it.",
        "В первую очередь посмотрите на работу персонала: показатель офиса этого не объясняет.",
    ),
}
_NAMES = {"DI-staff": "ИНК@Персонал", "DI-office": "ИНК@Офис"}
_QUESTION = {"DI-staff": ("staff", "о сотруднике"), "DI-office": ("office", "об офисе")}


@dataclass(frozen=True)
class Diagnosis:
    verdict: str
    reason_en: str
    reason_ru: str

    @property
    def verdict_ru(self) -> str:
        return VERDICTS_RU[self.verdict]


def _value(x, name, min_n):
    """(value or None, (why-not en, ru)). Accepts a Figure, a plain fraction, or None (the scope
    has no poll of that question at all)."""
    ru = _NAMES[name]
    if x is None:
        q_en, q_ru = _QUESTION[name]
        return None, (
            "there are no polls of the %s question (add a panel asking it)" % q_en,
            "нет опросов с вопросом %s (добавьте панель с этим вопросом)" % q_ru,
        )
    if isinstance(x, Figure):
        if x.value is None:
            return None, ("%s has no figure (%s)" % (name, x.reason), "%s не рассчитан (%s)" % (ru, x.reason))
        if x.n < min_n:
            return None, (
                "%s rests on %d polls, fewer than %d (choose a longer period or wait for more polls)"
                % (name, x.n, min_n),
                "%s рассчитан по %d опросам, меньше %d (возьмите период длиннее или дождитесь новых опросов)"
                % (ru, x.n, min_n),
            )
        x = x.value
    return _check.number(x, name, 0, 1), None


def _p(x):
    return "%.0f %%" % (x * 100.0)


def _close(a, b, ratio):
    lo, hi = min(a, b), max(a, b)
    return hi == lo or (lo > 0 and hi <= ratio * lo * (1 + EPS))


def _at_least(a, ratio, b):
    """a >= ratio * b, inclusive as a person computing by hand expects."""
    return a >= ratio * b * (1 - EPS)


def _found(verdict, en, ru):
    next_en, next_ru = _NEXT[verdict]
    return Diagnosis(verdict, "%s %s" % (en, next_en), "%s %s" % (ru, next_ru))


def _unclear(s, o, rs, ro, staff_worse, office_worse):
    """No pattern fits: say which case it is and what to watch."""
    v = {"s": _p(s), "o": _p(o), "rs": _p(rs), "ro": _p(ro)}
    if not staff_worse and not office_worse:
        en = "DI-staff %(s)s and DI-office %(o)s are no worse than their references (%(rs)s, %(ro)s): nothing to fix."
        ru = "ИНК@Персонал %(s)s и ИНК@Офис %(o)s не хуже референсных значений (%(rs)s, %(ro)s): исправлять нечего."
    elif staff_worse and not office_worse:
        en = (
            "Only DI-staff %(s)s is worse than its reference %(rs)s, and not by much; DI-office %(o)s is fine "
            "(reference %(ro)s). Watch DI-staff in the next period."
        )
        ru = (
            "Только ИНК@Персонал %(s)s хуже референсного значения %(rs)s, и ненамного; ИНК@Офис %(o)s в норме "
            "(референс %(ro)s). Проследите за ИНК@Персонал в следующем периоде."
        )
    elif office_worse and not staff_worse:
        en = (
            "Only DI-office %(o)s is worse than its reference %(ro)s, and not much higher than DI-staff %(s)s "
            "(reference %(rs)s). Watch DI-office in the next period."
        )
        ru = (
            "Только ИНК@Офис %(o)s хуже референсного значения %(ro)s и ненамного выше ИНК@Персонал %(s)s "
            "(референс %(rs)s). Проследите за ИНК@Офис в следующем периоде."
        )
    elif o > s:
        en = (
            "Both DIs are worse than their references (staff %(s)s vs %(rs)s, office %(o)s vs %(ro)s), DI-office "
            "somewhat higher: look at the office's processes and the staff's work together."
        )
        ru = (
            "Оба индекса хуже референсных значений (персонал %(s)s при %(rs)s, офис %(o)s при %(ro)s), ИНК@Офис "
            "несколько выше: проверьте и процессы офиса, и работу персонала."
        )
    else:
        en = (
            "Both DIs are worse than their references (staff %(s)s vs %(rs)s, office %(o)s vs %(ro)s), DI-staff "
            "somewhat higher: start with the staff, then the office's processes."
        )
        ru = (
            "Оба индекса хуже референсных значений (персонал %(s)s при %(rs)s, офис %(o)s при %(ro)s), "
            "ИНК@Персонал несколько выше: начните с персонала, затем проверьте процессы офиса."
        )
    return Diagnosis(UNCLEAR, en % v, ru % v)


def bottleneck(
    di_staff: Figure | float | None,
    di_office: Figure | float | None,
    ref_staff: float,
    ref_office: float,
    close_ratio: float = CLOSE_RATIO,
    much_higher_ratio: float = MUCH_HIGHER_RATIO,
    min_n: int = MIN_N,
) -> Diagnosis:
    """Diagnosis for one scope. di_* are Figures (or fractions; None: the scope has no poll of
    that question); ref_* are the reference fractions for the business type (the average DI of
    comparable offices)."""
    _check.number(close_ratio, "close_ratio", 1, None)
    _check.number(much_higher_ratio, "much_higher_ratio", close_ratio, None, low_open=True)
    _check.count(min_n, "min_n")
    _check.number(ref_staff, "ref_staff", 0, 1)
    _check.number(ref_office, "ref_office", 0, 1)
    s, why_s = _value(di_staff, "DI-staff", min_n)
    o, why_o = _value(di_office, "DI-office", min_n)
    if s is None or o is None:
        whys = [w for w in (why_s, why_o) if w]
        return Diagnosis(
            NO_DATA,
            "Cannot tell: %s." % "; ".join(w[0] for w in whys),
            "Нельзя определить: %s." % "; ".join(w[1] for w in whys),
        )
    v = {"s": _p(s), "o": _p(o), "rs": _p(ref_staff), "ro": _p(ref_office)}
    staff_worse, office_worse = s > ref_staff, o > ref_office
    if staff_worse and office_worse and _close(s, o, close_ratio):
        en = (
            "DI-staff %(s)s and DI-office %(o)s are both worse than their references (%(rs)s, %(ro)s) and close "
            "to each other: the bottleneck is probably the staff."
        )
        ru = (
            "ИНК@Персонал %(s)s и ИНК@Офис %(o)s оба хуже референсных значений (%(rs)s, %(ro)s) и близки друг "
            "к другу: узкое место, скорее всего, персонал."
        )
        return _found(STAFF, en % v, ru % v)
    if office_worse and o > 0 and _at_least(o, much_higher_ratio, s):
        en = (
            "DI-office %(o)s is much higher than DI-staff %(s)s and worse than its reference %(ro)s: the "
            "bottleneck is probably the organisation of the office."
        )
        ru = (
            "ИНК@Офис %(o)s значительно выше ИНК@Персонал %(s)s и хуже референсного значения %(ro)s: узкое "
            "место, скорее всего, организация работы офиса."
        )
        return _found(OFFICE, en % v, ru % v)
    if staff_worse and _at_least(s, much_higher_ratio, ref_staff) and _at_least(s, much_higher_ratio, o):
        en = "DI-staff %(s)s is much worse than its reference %(rs)s and much higher than DI-office %(o)s."
        ru = "ИНК@Персонал %(s)s значительно хуже референсного значения %(rs)s и значительно выше ИНК@Офис %(o)s."
        return _found(STAFF_FIRST, en % v, ru % v)
    return _unclear(s, o, ref_staff, ref_office, staff_worse, office_worse)
