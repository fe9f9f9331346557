"""PollCounts: what the KPI formulas need to know about one question in one scope."""

from dataclasses import dataclass

from kpi_core import _check


@dataclass(frozen=True)
class PollCounts:
    """Counts of VALID polls (expert-invalidated ones already removed) of one question.

    yes, no, unsure: answered polls by answer; silent: polls nobody answered.
    fm_no, fm_silent: the No answers and silent polls that fall inside a force-majeure
    period CONFIRMED by the expert. They are subsets of no and silent (not extra polls);
    only DI-staff leaves them out (METHOD.md decision 3).
    """

    yes: int
    no: int
    unsure: int
    silent: int
    fm_no: int = 0
    fm_silent: int = 0

    def __post_init__(self):
        for name in ("yes", "no", "unsure", "silent", "fm_no", "fm_silent"):
            _check.count(getattr(self, name), name)
        if self.fm_no > self.no:
            raise ValueError(
                "fm_no: the No answers under force majeure are part of no, so at most %d; got %d"
                % (self.no, self.fm_no)
            )
        if self.fm_silent > self.silent:
            raise ValueError(
                "fm_silent: the silent polls under force majeure are part of silent, so at most %d; got %d"
                % (self.silent, self.fm_silent)
            )

    @property
    def valid(self) -> int:
        """V: every valid poll, answered or silent (Unsure counts here and only here)."""
        return self.yes + self.no + self.unsure + self.silent

    @property
    def answered(self) -> int:
        return self.yes + self.no + self.unsure

    def __add__(self, other: "PollCounts") -> "PollCounts":
        """Counts of two disjoint scopes (two panels, two days) add up field by field."""
        if not isinstance(other, PollCounts):
            return NotImplemented
        return PollCounts(
            self.yes + other.yes,
            self.no + other.no,
            self.unsure + other.unsure,
            self.silent + other.silent,
            self.fm_no + other.fm_no,
            self.fm_silent + other.fm_silent,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "yes": self.yes,
            "no": self.no,
            "unsure": self.unsure,
            "silent": self.silent,
            "fm_no": self.fm_no,
            "fm_silent": self.fm_silent,
        }


ZERO = PollCounts(0, 0, 0, 0)
