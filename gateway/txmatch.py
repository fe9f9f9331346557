"""Which poll followed which sale: the matching rule of docs/transactions.md. Pure: no clock,
no database, no I/O.

A seller finishes a sale at the till and then presses the seller button: the poll opens a
little after the sale's time. Clocks differ (the POS's and the panel's, each NTP-synced or
not), so a sale stamped a little *after* the press is still the one the poll followed.

Rules (per office and till; `before_ms` = W, `skew_ms` = S):
1. a poll at time p may take a sale at time t when p - W <= t <= p + S;
2. the polls of a till are taken in time order (ties: panel, then seq); each takes, among
   the sales not yet taken, the one closest to its press: the distance is p - t for a sale
   before the press and t - p for one after it; ties go to the earlier sale (then the
   smaller id);
3. a sale is taken by at most one poll, a poll takes at most one sale; what is left is
   unmatched: a poll without a sale ("no sale at that till", a doubt sign) and a sale
   without a poll (a customer not asked).

Rule 2 runs forwards in time, so the matches of the polls before a time L depend only on
those polls and the sales: `match(polls, sales, taken=...)` from L onwards, with the sales
the earlier polls took left out, gives the same result as matching everything again
(gateway/transactions.py keeps the table that way, incrementally).
"""

import bisect
import dataclasses
from collections.abc import Callable

DEFAULT_BEFORE_MS = 10 * 60 * 1000  # a sale up to 10 minutes before the press
DEFAULT_SKEW_MS = 2 * 60 * 1000  # or up to 2 minutes after it (clocks apart)


@dataclasses.dataclass(frozen=True)
class MatchRules:
    before_ms: int = DEFAULT_BEFORE_MS
    skew_ms: int = DEFAULT_SKEW_MS

    @property
    def reach_ms(self) -> int:
        """How far apart a poll and a sale can be and still interact."""
        return max(self.before_ms, self.skew_ms)


def _poll_key(p):
    return (p["poll_ms"], p["device"], p["open_seq"])


def match(
    polls: list[dict], sales: list[dict], rules: MatchRules | Callable[[int], MatchRules] | None = None, taken=()
) -> list[tuple[dict, dict]]:
    """[(poll, sale)] pairs under the rules above, polls in time order.

    polls: dicts with device, open_seq, poll_ms (one till's); sales: dicts with tx_id, at_ms
    (the same till's); rules: the window, or a function of the poll's time giving the window in
    force then (the site file's setting changes over time; rule 2 still runs forwards, so the
    matches before a change stand); taken: tx ids already matched to earlier polls (left out)."""
    fixed = rules or MatchRules()
    rules_at = fixed if callable(fixed) else (lambda _t: fixed)
    gone = set(taken)
    free = sorted((s for s in sales if s["tx_id"] not in gone), key=lambda s: (s["at_ms"], s["tx_id"]))
    times = [s["at_ms"] for s in free]
    used = [False] * len(free)
    out = []
    for p in sorted(polls, key=_poll_key):
        at = p["poll_ms"]
        r = rules_at(at)
        lo = bisect.bisect_left(times, at - r.before_ms)
        hi = bisect.bisect_right(times, at + r.skew_ms)
        best = None
        best_key = None
        for i in range(lo, hi):
            if used[i]:
                continue
            key = (abs(at - times[i]), times[i], free[i]["tx_id"])
            if best_key is None or key < best_key:
                best, best_key = i, key
        if best is not None:
            used[best] = True
            out.append((p, free[best]))
    return out


def till_of(panel_settings: dict | None, device: str) -> str:
    """The till a panel stands at: its `till` setting, else its own id."""
    return (panel_settings or {}).get("till") or device
