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
- `no_sale` (POS matching, docs/transactions.md): the seller opened the poll with no sale at
  that till to follow (`no_sale`: the poll ids gateway.transactions.no_sale_ids gives).
"""

import bisect
import dataclasses
import math
import operator

WEIGHTS = {
    "very_fast_answer": 4,
    "fast_answer": 3,
    "seller_held": 3,
    "reopened": 2,
    "extra_presses": 1,
    "yes_streak": 2,
    "unsolicited_near": 1,
    "no_sale": 3,  # POS matching: a poll opened with no sale at its till
}
REASONS = tuple(WEIGHTS)
_OPENED = operator.itemgetter("opened_ms")  # (C: the sorts run over every poll of the range)


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


def _streaks(polls, s, mark):
    """Mark polls in improbable Yes runs of their employee (in time order)."""
    by_emp = {}
    for p in polls:
        if p.get("employee"):
            by_emp.setdefault(p["employee"], []).append(p)
    for rows in by_emp.values():
        rows.sort(key=_OPENED)
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
                    mark(q, "yes_streak")
            run = []


def _held(p, before, presses):
    """(an answer button was pressed while the seller held the button opening `p`, the previous
    poll's answer was that press): an unsolicited press (`presses`: the panel's unsolicited
    press times, sorted) or the previous poll's answer in [down, release]."""
    hold = p.get("seller_hold_ms")
    if not hold or hold <= 0:  # unknown: older firmware, or rows derived before the column
        return False, False
    up = p["opened_ms"]
    down = up - hold
    answered = before.get("answered_ms") if before is not None else None
    previous = answered is not None and down <= answered <= up
    if previous:
        return True, True
    i = bisect.bisect_left(presses, down)
    return i < len(presses) and presses[i] <= up, False


def _panel_signs(rows, near, s, mark):
    """The signs of one panel's polls (`rows` in time order; `near`: its unsolicited press
    times, sorted); mark(poll, reason) records one. (Locals: this runs for every poll of the
    console's review week.)"""
    instant, reaction_ms, reopen_ms, near_ms = s.instant_ms, s.min_reaction_ms, s.reopen_ms, s.near_ms
    bisect_left = bisect.bisect_left
    n_near = len(near)
    before = None
    for p in rows:
        opened = p["opened_ms"]
        answer = p["answer"]
        held, previous = _held(p, before, near) if p.get("seller_hold_ms") else (False, False)
        if held:
            mark(p, "seller_held")
        if previous:
            mark(before, "seller_held")
        answered = p.get("answered_ms")
        if answer is not None and answered is not None:
            if answered - opened < instant:
                mark(p, "very_fast_answer")
            elif answered - opened < reaction_ms:
                mark(p, "fast_answer")
        if (p.get("seller_presses") or 1) > 1 or (
            before is not None
            and answer == "yes"
            and before["answer"] in (None, "no")
            and opened - before["opened_ms"] <= reopen_ms
        ):
            mark(p, "reopened")
        if p.get("extra_presses"):
            mark(p, "extra_presses")
        if n_near:
            i = bisect_left(near, opened - near_ms)
            if i < n_near and near[i] <= opened + near_ms:
                mark(p, "unsolicited_near")
        before = p


NO_DOUBT = Doubt(0, ())


def score(polls, unsolicited=(), settings=None, no_sale=()):
    """{poll id: Doubt} for every poll (NO_DOUBT for the polls with no sign)."""
    out = dict.fromkeys(map(poll_id, polls), NO_DOUBT)
    out.update((ident, d) for ident, (_p, d) in doubtful(polls, unsolicited, settings, no_sale).items())
    return out


def doubtful(polls, unsolicited=(), settings=None, no_sale=()):
    """{poll id: (poll row, Doubt)} of the polls with at least one sign only, the same scores
    as `score` gives them: what a caller with a whole chain's week needs (the console's review
    queue), without a Doubt per poll of the range."""
    s = settings or DoubtSettings()
    found = {}  # poll id -> (the poll, its reasons), only for polls with one (most have none)

    def mark(p, reason):
        ident = poll_id(p)
        entry = found.get(ident)
        if entry is None:
            entry = found[ident] = (p, set())
        entry[1].add(reason)

    # POS matching: ids "site/device/seq" of polls opened with no sale at their till
    if no_sale:
        no_sale = set(no_sale)
        for p in polls:
            if poll_id(p) in no_sale:
                mark(p, "no_sale")

    by_panel = {}
    for p in polls:
        by_panel.setdefault((p["site"], p["device"]), []).append(p)
    presses = {}
    for u in unsolicited:
        presses.setdefault((u["site"], u["device"]), []).append(u["at_ms"])
    for panel, rows in by_panel.items():
        rows.sort(key=_OPENED)
        _panel_signs(rows, sorted(presses.get(panel, ())), s, mark)
    _streaks(polls, s, mark)
    out = {}
    same = {}  # one Doubt per set of reasons
    for ident, (p, reasons) in found.items():
        key = frozenset(reasons)
        if key not in same:
            same[key] = Doubt(sum(WEIGHTS[x] for x in key), tuple(x for x in REASONS if x in key))
        out[ident] = (p, same[key])
    return out


def rank(polls, doubts):
    """The polls riskiest first (ties: in time order)."""
    return sorted(polls, key=lambda p: (-doubts[poll_id(p)].score, p["opened_ms"], poll_id(p)))
