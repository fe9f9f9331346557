"""Poll-window builder: one panel's events in, polls and force-majeure periods out.

Pure and sans-I/O (like h11): no clocks, sockets or files; stdlib only. The gateway feeds
each panel's events in seq order with a resolved time, and tells the builder how far time
has moved on with advance(now_ms). Everything is in milliseconds of one time base.

Rules (METHOD.md "Poll"; every number is a WindowSettings field):
- seller_short at T opens a poll. The first yes/no/unsure with T < t <= T + window is the
  answer; if none comes the poll is silent. Later answers in that window are
  extra_presses (the answer stays the first one).
- A seller_short within rearm_ms of the previous seller_short of the open poll
  (t - previous <= rearm_ms; presses chain) is the same poll: duplicate_presses += 1.
- Any other seller_short while a poll is open closes that poll (answered or silent, with
  superseded_by = the new press's seq) and opens a new one.
- An answer with no open window (none open, or t == T: the customer pressed together with
  the seller and cannot be told apart from the previous customer) is Unsolicited.
- seller_long at T reports force majeure: a period [start, T + fm) where start is the
  opening time of the poll open at T (so the customer being served is covered), else T.
  Another seller_long before the period ends extends it to that press + fm.
- A poll is emitted once its window is over (now > closes_at) or when superseded; answered
  polls too, because extra presses keep counting on them until the end. A period is emitted
  once now >= end (the period is half-open). Unsolicited presses and anomalies are emitted
  at once.

Time. advance(now_ms) is the caller's promise that no event still to come has a time
before now_ms. Events are taken in seq order; an event whose time is earlier than the clock
so far (an earlier event's time, or a now_ms passed to advance) is reported as a
"time_backwards" Anomaly and processed as if it happened at that clock time, so time never
runs backwards inside the builder. A seq that does not increase is an "out_of_order"
Anomaly and is ignored. An event name the builder does not know is an "unknown_event"
Anomaly (its seq and time still count). Data problems never raise; wrong argument types
(a bug in the caller) raise TypeError / ValueError.

Because of the promise, feeding a stream in any batches with advance() calls in between
gives exactly the outputs, in the same order, of one replay followed by advance(far future);
snapshot() and restore() may be inserted anywhere without changing that. (A rejected,
out_of_order event counts as happening at the clock: if advance() runs past it, the outputs
are still the same, only its anomaly may come out in another place among them.)
For the gateway this means: advance a panel's builder with a time the panel's events can no
longer undercut - e.g. the panel's own clock from its latest message, once everything
before it has arrived - not with the gateway's wall clock while the panel may still be
delivering its offline journal.

Outputs closed by time come out in the order they became due (a period ending at X before
a poll whose window ends at X); outputs of one event come after the ones its time closed.

End of stream: close_all() emits what is still open as it stands (unanswered -> silent)
without moving the clock. Use it only when no more events will come for the panel (end
of a simulation, a panel taken out of service). A rebuild from raw events should end
with advance(real now) instead, so polls whose window is still running stay open.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

ANSWERS = ("yes", "no", "unsure")
SELLER_SHORT = "seller_short"
SELLER_LONG = "seller_long"
KNOWN_EVENTS = ANSWERS + (SELLER_SHORT, SELLER_LONG)

SNAPSHOT_VERSION = 1


def _ms(value, field):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s: must be a number of milliseconds, got %r" % (field, value))
    if not math.isfinite(value):
        raise ValueError("%s: must be a finite number of milliseconds, got %r" % (field, value))
    return value


@dataclass(frozen=True)
class WindowSettings:
    """window_ms: how long a customer has to answer after the seller's short press.
    rearm_ms: a second short press this soon after the previous one is the same poll
    (double press, bounce). fm_ms: how long one force-majeure report covers."""

    window_ms: int = 30000
    rearm_ms: int = 3000
    fm_ms: int = 15 * 60000

    def __post_init__(self):
        for name, low in (("window_ms", 1), ("rearm_ms", 0), ("fm_ms", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError("%s: must be a whole number of milliseconds >= %d, got %r" % (name, low, v))
        if self.rearm_ms > self.window_ms:
            raise ValueError(
                "rearm_ms: must not exceed window_ms (%d), got %d; a repeat press "
                "after the window is a new poll anyway" % (self.window_ms, self.rearm_ms)
            )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> "WindowSettings":
        unknown = set(d) - {"window_ms", "rearm_ms", "fm_ms"}
        if unknown:
            raise ValueError("window settings: unknown field(s) %s" % ", ".join(sorted(unknown)))
        return cls(**d)


@dataclass(frozen=True)
class Poll:
    """One short press and its response window. Identity: (site, device, open_seq)."""

    open_seq: int
    opened_at: float
    answer: str | None  # "yes" | "no" | "unsure" | None (silent)
    answer_seq: int | None
    answered_at: float | None
    extra_presses: int  # further answers inside the window (answer unchanged)
    duplicate_presses: int  # further short presses within rearm_ms
    closes_at: float  # opened_at + window_ms: last instant of the window
    superseded_by: int | None = None  # seq of the short press that closed it early

    @property
    def silent(self) -> bool:
        return self.answer is None


@dataclass(frozen=True)
class ForceMajeure:
    """A force-majeure report: covers polls opened in [start, end). Identity: (site, device, seq)."""

    seq: int  # the first long press
    start: float
    end: float
    presses: int  # long presses merged into this period
    seqs: tuple[int, ...]  # their seqs


@dataclass(frozen=True)
class Unsolicited:
    """An answer button pressed with no poll to answer."""

    seq: int
    at: float
    ev: str


@dataclass(frozen=True)
class Anomaly:
    """Something wrong with the stream: kind is "out_of_order", "time_backwards" or
    "unknown_event"; detail says what and what was done about it."""

    seq: int
    kind: str
    detail: str


OUT_OF_ORDER = "out_of_order"
TIME_BACKWARDS = "time_backwards"
UNKNOWN_EVENT = "unknown_event"

# What feed/advance/pending/close_all return: closed polls and periods, presses, anomalies.
Output = Poll | ForceMajeure | Unsolicited | Anomaly


class PanelWindows:
    """The window state machine of one panel (see the module note for the rules)."""

    def __init__(self, settings: WindowSettings | None = None) -> None:
        self._settings = self._check_settings(settings or WindowSettings())
        self._last_seq = None
        self._clock = None  # latest time seen: event times and advance() nows
        self._poll = None  # open poll as a plain dict (JSON-able, see _short)
        self._fm = None  # running force-majeure period as a plain dict

    # -- settings ---------------------------------------------------------------------
    @staticmethod
    def _check_settings(settings):
        if not isinstance(settings, WindowSettings):
            raise TypeError("settings: expected a WindowSettings, got %r" % (type(settings).__name__,))
        return settings

    @property
    def settings(self) -> WindowSettings:
        return self._settings

    def set_settings(self, settings: WindowSettings) -> None:
        """New settings apply to polls and periods opened from now on; open ones keep theirs."""
        self._settings = self._check_settings(settings)

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    @property
    def clock(self) -> float | None:
        return self._clock

    # -- input ------------------------------------------------------------------------
    def feed(self, seq: int, at_ms: float, ev: str, hold: int | None = None) -> list[Output]:
        """Take one event; return the outputs it closed or produced, in order.

        hold (press duration) is accepted for the record only: the panel has already told
        short from long."""
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise TypeError("seq: must be an integer, got %r" % (seq,))
        _ms(at_ms, "at_ms")
        if self._last_seq is not None and seq <= self._last_seq:
            what = "repeats" if seq == self._last_seq else "comes after"
            return [Anomaly(seq, OUT_OF_ORDER, "seq %d %s seq %d; event %r ignored" % (seq, what, self._last_seq, ev))]
        self._last_seq = seq
        out = []
        t = at_ms
        if self._clock is not None and at_ms < self._clock:
            t = self._clock
            out.append(
                Anomaly(
                    seq,
                    TIME_BACKWARDS,
                    "time %r ms is earlier than the panel's clock so far (%r ms); taken as %r ms" % (at_ms, t, t),
                )
            )
        self._clock = t
        out.extend(self._close_due(t))
        if ev == SELLER_SHORT:
            out.extend(self._short(seq, t))
        elif ev == SELLER_LONG:
            self._long(seq, t)
        elif ev in ANSWERS:
            out.extend(self._answer(seq, t, ev))
        else:
            out.append(
                Anomaly(seq, UNKNOWN_EVENT, "event %r is not one of %s; ignored" % (ev, ", ".join(KNOWN_EVENTS)))
            )
        return out

    def advance(self, now_ms: float) -> list[Output]:
        """Time has reached now_ms: return what closed. A now_ms behind the clock is a no-op."""
        _ms(now_ms, "now_ms")
        if self._clock is not None and now_ms <= self._clock:
            return []
        self._clock = now_ms
        return self._close_due(now_ms)

    def pending(self) -> list[Output]:
        """What is open now, as it would be emitted if closed now (nothing changes)."""
        return [item for _, item in self._open_items()]

    def close_all(self) -> list[Output]:
        """End of stream: emit everything still open as it stands; the clock stays put."""
        out = self.pending()
        self._poll = self._fm = None
        return out

    # -- rules ------------------------------------------------------------------------
    def _open_items(self):
        # Sort key = the instant an item becomes due. A poll is due just after closes_at,
        # a period at its end, hence (time, 1) vs (time, 0): one advance over both gives
        # the same order as two advances in between.
        items = []
        if self._poll is not None:
            items.append(((self._poll["closes_at"], 1), self._emit_poll(self._poll)))
        if self._fm is not None:
            items.append(((self._fm["end"], 0), self._emit_fm(self._fm)))
        items.sort(key=lambda kv: kv[0])
        return items

    def _close_due(self, now):
        out = []
        for (due, strict), item in self._open_items():
            if now > due or (now == due and not strict):
                out.append(item)
                if isinstance(item, Poll):
                    self._poll = None
                else:
                    self._fm = None
        return out

    def _short(self, seq, t):
        p = self._poll
        if p is not None and t - p["last_short_at"] <= p["rearm_ms"]:
            p["duplicate_presses"] += 1
            p["last_short_at"] = t
            return []
        out = []
        if p is not None:
            out.append(self._emit_poll(p, superseded_by=seq))
        s = self._settings
        self._poll = {
            "open_seq": seq,
            "opened_at": t,
            "answer": None,
            "answer_seq": None,
            "answered_at": None,
            "extra_presses": 0,
            "duplicate_presses": 0,
            "closes_at": t + s.window_ms,
            "rearm_ms": s.rearm_ms,
            "last_short_at": t,
        }
        return out

    def _long(self, seq, t):
        f = self._fm
        if f is not None:  # still running: due periods were closed before we got here
            f["end"] = max(f["end"], t + f["fm_ms"])
            f["presses"] += 1
            f["seqs"].append(seq)
            return
        start = self._poll["opened_at"] if self._poll is not None else t
        fm_ms = self._settings.fm_ms
        self._fm = {"seq": seq, "start": start, "end": t + fm_ms, "presses": 1, "seqs": [seq], "fm_ms": fm_ms}

    def _answer(self, seq, t, ev):
        p = self._poll
        if p is None or not p["opened_at"] < t:
            return [Unsolicited(seq, t, ev)]
        if p["answer"] is None:
            p["answer"], p["answer_seq"], p["answered_at"] = ev, seq, t
        else:
            p["extra_presses"] += 1
        return []

    @staticmethod
    def _emit_poll(p, superseded_by=None):
        return Poll(
            p["open_seq"],
            p["opened_at"],
            p["answer"],
            p["answer_seq"],
            p["answered_at"],
            p["extra_presses"],
            p["duplicate_presses"],
            p["closes_at"],
            superseded_by,
        )

    @staticmethod
    def _emit_fm(f):
        return ForceMajeure(f["seq"], f["start"], f["end"], f["presses"], tuple(f["seqs"]))

    # -- persistence ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data; restore() gives an identical builder."""
        return {
            "version": SNAPSHOT_VERSION,
            "settings": self._settings.as_dict(),
            "last_seq": self._last_seq,
            "clock": self._clock,
            "poll": dict(self._poll) if self._poll is not None else None,
            "fm": dict(self._fm, seqs=list(self._fm["seqs"])) if self._fm is not None else None,
        }

    POLL_KEYS = frozenset(
        (
            "open_seq",
            "opened_at",
            "answer",
            "answer_seq",
            "answered_at",
            "extra_presses",
            "duplicate_presses",
            "closes_at",
            "rearm_ms",
            "last_short_at",
        )
    )
    FM_KEYS = frozenset(("seq", "start", "end", "presses", "seqs", "fm_ms"))

    @classmethod
    def restore(cls, d: dict[str, Any]) -> "PanelWindows":
        """Rebuild a builder from snapshot(); raises ValueError naming what is wrong."""
        if not isinstance(d, dict) or d.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                "window snapshot: expected a dict with version %d, got %r"
                % (SNAPSHOT_VERSION, d if not isinstance(d, dict) else d.get("version"))
            )
        if not isinstance(d.get("settings"), dict):
            raise ValueError("window snapshot: settings must be a dict of window_ms, rearm_ms, fm_ms")
        self = cls(WindowSettings.from_dict(d["settings"]))
        last_seq, clock = d.get("last_seq"), d.get("clock")
        if last_seq is not None and (isinstance(last_seq, bool) or not isinstance(last_seq, int)):
            raise ValueError("window snapshot: last_seq must be an integer or null, got %r" % (last_seq,))
        if clock is not None:
            _ms(clock, "window snapshot: clock")
        self._last_seq, self._clock = last_seq, clock
        for name, keys in (("poll", cls.POLL_KEYS), ("fm", cls.FM_KEYS)):
            part = d.get(name)
            if part is None:
                continue
            if not isinstance(part, dict) or set(part) != keys:
                raise ValueError(
                    "window snapshot: %s must have exactly the fields %s" % (name, ", ".join(sorted(keys)))
                )
            setattr(self, "_" + name, dict(part))
        if self._fm is not None:
            self._fm["seqs"] = list(self._fm["seqs"])
        return self
