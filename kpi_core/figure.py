"""Figure: one KPI value with its 95 % interval, or the reason it cannot be given."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """value/low/high are fractions (0.12 = 12 %); signed figures (ELI) run from -1 to 1.

    n is the number the value is a share of (valid polls counted, transactions, visitors).
    value is None when no figure can be given; reason then says why ("no valid polls").
    reason may also accompany a value as a caveat (e.g. "more polls than transactions":
    the ratio is shown but no interval, because it is not a share of anything).
    """

    value: float | None
    low: float | None
    high: float | None
    n: int
    reason: str | None = None
    signed: bool = False

    # Below this interval width (as a fraction) one decimal place is shown, else none:
    # printing 12.3 % when the interval spans 8-17 % suggests a precision that is not there.
    FINE_WIDTH = 0.02

    @property
    def missing(self) -> bool:
        return self.value is None

    def _decimals(self):
        if self.low is not None and self.high is not None and self.high - self.low < self.FINE_WIDTH:
            return 1
        if self.value is not None and 0 < abs(self.value) < 0.01:
            return 1  # "0.4 %" rather than a misleading "0 %"
        return 0

    def _pct(self, x, decimals):
        text = "%.*f" % (decimals, x * 100.0)
        if text.lstrip("-").strip("0.") == "":
            text = text.lstrip("-")  # no "-0 %"
        if self.signed and not text.startswith("-") and text.strip("0.") != "":
            text = "+" + text
        return text

    def format(self) -> str:
        """'12 % (8-17 %, n=230)'; ELI: '+12 % (-3 to +20 %, n=230)'; missing: 'n/a (no valid polls)'."""
        if self.value is None:
            return "n/a (%s)" % (self.reason or "no data")
        d = self._decimals()
        head = "%s %%" % self._pct(self.value, d)
        if self.low is None or self.high is None:
            note = self.reason or "no interval"
            return "%s (%s, n=%d)" % (head, note, self.n)
        joiner = " to " if self.signed else "-"
        return "%s (%s%s%s %%, n=%d)" % (head, self._pct(self.low, d), joiner, self._pct(self.high, d), self.n)

    def __str__(self) -> str:
        return self.format()

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "reason": self.reason,
            "signed": self.signed,
            "text": self.format(),
        }


def missing(n: int, reason: str, signed: bool = False) -> Figure:
    return Figure(None, None, None, n, reason, signed)
