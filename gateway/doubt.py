"""Doubt scores: how likely a poll is not a real customer's answer, and why. Pure: no clock, no
database, no I/O.

`score(polls, unsolicited=(), settings=DoubtSettings())` -> {poll id: Doubt(score, reasons)} for
poll rows (gateway/derive.py's columns: site, device, open_seq, opened_ms, answered_ms, answer,
extra_presses, seller_presses, employee) and the unsolicited presses (site, device, at_ms).
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
- `unsolicited_near`: answer buttons pressed on the same panel with no poll open within
  `near_ms` of the poll (someone trying the buttons).
- `no_sale` (POS matching, docs/transactions.md): the seller opened the poll with no sale at
  that till to follow (`no_sale`: the poll ids gateway.transactions.no_sale_ids gives).
"""

import bisect
import dataclasses
import math

WEIGHTS = {
    "very_fast_answer": 4,
    "fast_answer": 3,
    "reopened": 2,
    "extra_presses": 1,
    "yes_streak": 2,
    "unsolicited_near": 1,
    # --- POS matching (branch pos-tx): a poll opened with no sale at its till ---
    "no_sale": 3,
    # --- end POS matching ---
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


def score(polls, unsolicited=(), settings=None, no_sale=()):
    s = settings or DoubtSettings()
    reasons = {poll_id(p): set() for p in polls}
    # --- POS matching (branch pos-tx): ids "site/device/seq" of polls with no sale ---
    for ident in no_sale:
        if ident in reasons:
            reasons[ident].add("no_sale")
    # --- end POS matching ---
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
