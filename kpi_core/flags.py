"""Flags: warnings a report shows next to the figures, in English and Russian.

Codes are stable (reports, tests and translations key on them):
  no_data                 a figure could not be computed (reason in the message)
  small_sample            a main KPI rests on fewer than min_n polls
  fm_rate_high            force-majeure rate above fm_rate_max: do not judge the period
  coverage_low            visitor coverage below coverage_min: the sample may be biased
  conversion_low          exact conversion below conversion_min: the sample may be biased
  polls_exceed_base       more polls than transactions/visitors: the counts do not match
"""

from dataclasses import dataclass

from kpi_core import _check
from kpi_core.figure import Figure

NAMES_RU = {
    "DI-staff": "ИНК@Персонал",
    "DI-office": "ИНК@Офис",
    "ELI": "ИЭЛ",
    "exact conversion": "Точная конверсия",
    "visitor coverage": "Охват посетителей",
    "force-majeure rate": "Уровень форс-мажора",
}


@dataclass(frozen=True)
class Thresholds:
    """Where a figure stops being trustworthy. Rates are fractions (0.10 = 10 %)."""

    fm_rate_max: float = 0.10
    coverage_min: float = 0.30  # the seed: unmotivated, at most ~30 % of customers rate
    conversion_min: float = 0.30
    min_n: int = 30

    def __post_init__(self):
        _check.number(self.fm_rate_max, "fm_rate_max", 0, 1)
        _check.number(self.coverage_min, "coverage_min", 0, 1)
        _check.number(self.conversion_min, "conversion_min", 0, 1)
        _check.count(self.min_n, "min_n")


@dataclass(frozen=True)
class Flag:
    code: str
    message_en: str
    message_ru: str
    subject: str = ""  # which figure the flag is about ("DI-staff", "visitor coverage", ...)


def _pct(x, other=None):
    """Whole percent, with as many decimals as it takes to differ from `other` (so a message
    never reads "30 % is below 30 %")."""
    for digits in (0, 1, 2, 3):
        text = "%.*f %%" % (digits, x * 100.0)
        if other is None or text != "%.*f %%" % (digits, other * 100.0):
            return text
    return text


def _figure(fig, name):
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError("%s: expected a Figure or None, got %r" % (name, type(fig).__name__))
    return fig


def flags(
    di_staff: Figure | None = None,
    di_office: Figure | None = None,
    eli: Figure | None = None,
    conversion: Figure | None = None,
    coverage: Figure | None = None,
    fm_rate: Figure | None = None,
    thresholds: Thresholds | None = None,
) -> list[Flag]:
    """Flags for the figures given (any may be None = not part of this report)."""
    t = thresholds or Thresholds()
    out = []
    main = (("DI-staff", di_staff), ("DI-office", di_office), ("ELI", eli))
    aux = (("exact conversion", conversion), ("visitor coverage", coverage), ("force-majeure rate", fm_rate))
    for name, fig in main + aux:
        fig = _figure(fig, name)
        if fig is not None and fig.missing:
            out.append(
                Flag(
                    "no_data",
                    "%s: no figure (%s)." % (name, fig.reason),
                    "%s: нет значения (%s)." % (NAMES_RU[name], fig.reason),
                    name,
                )
            )
    for name, fig in main:
        if fig is not None and not fig.missing and fig.n < t.min_n:
            out.append(
                Flag(
                    "small_sample",
                    "%s rests on %d polls (fewer than %d): read it as a rough indication only."
                    % (name, fig.n, t.min_n),
                    "%s рассчитан по %d опросам (меньше %d): это лишь ориентир." % (NAMES_RU[name], fig.n, t.min_n),
                    name,
                )
            )
    if fm_rate is not None and fm_rate.value is not None and fm_rate.value > t.fm_rate_max:
        out.append(
            Flag(
                "fm_rate_high",
                "Force-majeure rate %s is above %s: do not judge staff on this period."
                % (_pct(fm_rate.value, t.fm_rate_max), _pct(t.fm_rate_max, fm_rate.value)),
                "Уровень форс-мажора %s выше %s: период не следует оценивать."
                % (_pct(fm_rate.value, t.fm_rate_max), _pct(t.fm_rate_max, fm_rate.value)),
                "force-majeure rate",
            )
        )
    for name, fig, limit, code, base_en, base_ru in (
        ("visitor coverage", coverage, t.coverage_min, "coverage_low", "visitors", "посетителей"),
        ("exact conversion", conversion, t.conversion_min, "conversion_low", "sales", "продаж"),
    ):
        if fig is None or fig.value is None:
            continue
        if fig.low is None:  # no interval: the ratio is over 100 %, the counts disagree
            out.append(
                Flag(
                    "polls_exceed_base",
                    "%s is %s: more polls than %s; check the %s count for this period."
                    % (name.capitalize(), _pct(fig.value), base_en, base_en),
                    "%s %s: опросов больше, чем %s; проверьте счётчик за этот период."
                    % (NAMES_RU[name], _pct(fig.value), base_ru),
                    name,
                )
            )
        elif fig.value < limit:
            out.append(
                Flag(
                    code,
                    "%s %s is below %s: the customers who rated may not represent all %s."
                    % (name.capitalize(), _pct(fig.value, limit), _pct(limit, fig.value), base_en),
                    "%s %s ниже %s: оценившие клиенты могут быть нерепрезентативны."
                    % (NAMES_RU[name], _pct(fig.value, limit), _pct(limit, fig.value)),
                    name,
                )
            )
    return out
