"""Doubt scores: how likely a poll is not a real customer's answer, and why. Pure: no clock, no
database, no I/O.

`score(polls, unsolicited=(), settings=DoubtSettings())` -> {poll id: Doubt(score, reasons)} for
poll rows (gateway/derive.py's columns: site, device, open_seq, opened_ms, answered_ms, answer,
extra_presses, seller_presses, seller_hold_ms, employee) and the unsolicited presses (site, device, at_ms).
Each sign adds its weight and a reason code; the expert's queue puts the highest scores first
(`rank`). The signs, from how a seller games the panel:

- `fast_answer`: the answer came sooner after the seller's press than a customer reads the
  question and reaches the button (`min_reaction_ms`); `very_fast_answer` below `instant_ms`,
  which only the seller's other hand manages;
- `reopened`: the seller pressed again in the window (the poll merged several seller presses),
  or a poll opened within `reopen_ms` of the same panel's previous No/silent poll and got a Yes
  (a No overwritten);
- `extra_presses`: more answer presses in the window than one customer makes;
- `yes_streak`: the poll is in a run of Yes answers of its employee so long that a run like it
  anywhere among the employee's polls has a probability below `streak_p` under the employee's
  own share of Yes (over the polls given);
- `seller_held`: an answer button was pressed while the seller's button that opened the poll
  was still held. The panel reports a seller press on release (the poll opens then, at
  `opened_ms`) with how long it was held (`seller_hold_ms`), so the button went down at
  `opened_ms - seller_hold_ms`; an answer pressed in [down, opened_ms] came before the poll:
  it is an unsolicited press, or it landed on the previous poll still open. Both polls are
  marked - no customer is asked before the press ends (the rate LED lights on release), and
  the seller's hands are on the panel: one on the seller button, one on an answer. The panel's
  debounce delays both events alike, so it cancels out; a poll whose hold is unknown (older
  firmware, rows derived before the column) is never marked. The answer presses the panel
  counts as extra presses of the previous poll are not timed, so they cannot be placed;
- `unsolicited_near`: answer buttons pressed on the same panel with no poll open within
  `near_ms` of the poll (someone trying the buttons).
"""

import bisect
import dataclasses
import math

WEIGHTS = {
    "very_fast_answer": 4,
    "fast_answer": 3,
    "seller_held": 3,
    "reopened": 2,
    "extra_presses": 1,
    "yes_streak": 2,
    "unsolicited_near": 1,
}
REASONS = tuple(WEIGHTS)


@dataclasses.dataclass(frozen=True)
class DoubtSettings:
    min_reaction_ms: int = 1500
    instant_ms: int = 600
    reopen_ms: int = 60000
    near_ms: int = 30000
    streak_p: float = 0.001
    min_streak: int = 6


@dataclasses.dataclass(frozen=True)
class Doubt:
    score: int
    reasons: tuple


def poll_id(p):
    return "%s/%s/%s" % (p["site"], p["device"], p["open_seq"])


def _streaks(polls, s, out):
    """Mark polls in improbable Yes runs of their employee (in time order)."""
    by_emp = {}
    for p in polls:
        if p.get("employee"):
            by_emp.setdefault(p["employee"], []).append(p)
    for rows in by_emp.values():
        rows.sort(key=lambda p: p["opened_ms"])
        share = (sum(p["answer"] == "yes" for p in rows) + 1) / (len(rows) + 2)
        # a run of L Yes starts at any of the n polls: n * share^L < streak_p (Bonferroni), so
        # an honest employee's longest run is rarely marked however many polls it has
        need = max(s.min_streak, math.ceil(math.log(s.streak_p / len(rows)) / math.log(share)))
        run = []
        for p in rows + [None]:
            if p is not None and p["answer"] == "yes":
                run.append(p)
                continue
            if len(run) >= need:
                for q in run:
                    out[poll_id(q)].add("yes_streak")
            run = []


def _hold_span(p):
    """[down, up] of the seller press that opened poll `p` (ms), or None when its hold is unknown."""
    hold = p.get("seller_hold_ms")
    if hold is None or hold <= 0:
        return None
    return p["opened_ms"] - hold, p["opened_ms"]


def _answered_in_hold(p, before):
    """The previous poll of the panel got its answer while the seller held the button opening `p`."""
    span = _hold_span(p)
    if span is None or before is None or before.get("answered_ms") is None:
        return False
    return span[0] <= before["answered_ms"] <= span[1]


def _held_answer(p, before, presses):
    """An answer button was pressed while the seller held the button opening `p`: an unsolicited
    press (`presses`: the panel's unsolicited press times, sorted) or the previous poll's answer."""
    span = _hold_span(p)
    if span is None:
        return False
    i = bisect.bisect_left(presses, span[0])
    return (i < len(presses) and presses[i] <= span[1]) or _answered_in_hold(p, before)


def score(polls, unsolicited=(), settings=None):
    s = settings or DoubtSettings()
    reasons = {poll_id(p): set() for p in polls}
    by_panel = {}
    for p in polls:
        by_panel.setdefault((p["site"], p["device"]), []).append(p)
    presses = {}
    for u in unsolicited:
        presses.setdefault((u["site"], u["device"]), []).append(u["at_ms"])
    for panel, rows in by_panel.items():
        rows.sort(key=lambda p: p["opened_ms"])
        near = sorted(presses.get(panel, ()))
        before = None
        for p in rows:
            r = reasons[poll_id(p)]
            if _held_answer(p, before, near):
                r.add("seller_held")
                if _answered_in_hold(p, before):
                    reasons[poll_id(before)].add("seller_held")
            if p["answer"] is not None and p.get("answered_ms") is not None:
                reaction = p["answered_ms"] - p["opened_ms"]
                if reaction < s.instant_ms:
                    r.add("very_fast_answer")
                elif reaction < s.min_reaction_ms:
                    r.add("fast_answer")
            if (p.get("seller_presses") or 1) > 1:
                r.add("reopened")
            if (
                before is not None
                and p["answer"] == "yes"
                and before["answer"] in (None, "no")
                and p["opened_ms"] - before["opened_ms"] <= s.reopen_ms
            ):
                r.add("reopened")
            if (p.get("extra_presses") or 0) > 0:
                r.add("extra_presses")
            i = bisect.bisect_left(near, p["opened_ms"] - s.near_ms)
            if i < len(near) and near[i] <= p["opened_ms"] + s.near_ms:
                r.add("unsolicited_near")
            before = p
    _streaks(polls, s, reasons)
    return {
        ident: Doubt(sum(WEIGHTS[x] for x in found), tuple(x for x in REASONS if x in found))
        for ident, found in reasons.items()
    }


def rank(polls, doubts):
    """The polls riskiest first (ties: in time order)."""
    return sorted(polls, key=lambda p: (-doubts[poll_id(p)].score, p["opened_ms"], poll_id(p)))
