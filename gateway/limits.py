"""Per-panel limits on what the gateway takes in, so one faulty or hostile client cannot fill
the database or starve the other panels. Pure: every time is passed in (received_ms).

Two budgets, both per panel (site, device) and, for what belongs to no configured panel, per
one shared key (so 100,000 made-up panel ids cost one counter, not 100,000):

- a message rate (token bucket: `rate` a second, up to `burst` at once). The Ingestor charges
  every message except a valid event that is what its panel's link sends (a seq above the
  panel's ack, within its send window): a panel catching up on 20,000 journaled events is
  never slowed down, while junk, made-up seqs, duplicates, state floods and resend storms are.
  A message over the rate is not stored and not acked (a panel keeps it and resends it after
  its ack timeout); it is counted. A client that forges a configured panel's events in the
  right order looks exactly like that panel: broker ACLs stop it, not these limits.
- dead letters stored one by one: at most `letters` per key and window and `letters_total`
  for all keys together; the rest are counted, not stored.

What is refused is counted per (site, device, window, reason) and written to the `refusals`
table by the Ingestor (`drain()`), so the database grows by a few rows per flooding panel and
window, whatever the flood. `refuse()` says when a key's first refusal of a window happened,
so the caller logs one line per panel and window, not one per message.
"""

from dataclasses import dataclass

SHARED = ("", "")  # the key of everything that is not a configured panel's

RATE = "over the message rate limit"
LETTERS = "over the dead-letter budget"


@dataclass(frozen=True)
class LimitSettings:
    rate: float = 50.0  # messages a second a panel may send beyond its send window
    burst: int = 2000  # ... at once (first contact, resend rounds after lost acks, a test fleet)
    letters: int = 100  # dead letters stored one by one per panel and window
    letters_total: int = 2000  # ... for all panels together
    window_ms: int = 10 * 60 * 1000
    max_keys: int = 20000  # panels with their own counters; beyond, SHARED (memory stays flat)


class Limits:
    """Token buckets, dead-letter budgets and refusal counts; see the module docstring."""

    def __init__(self, settings: LimitSettings | None = None):
        self.settings = settings or LimitSettings()
        self._buckets: dict[tuple[str, str], list[float]] = {}  # key -> [tokens, at_ms]
        self._window = -1  # start of the current window (ms)
        self._letters: dict[tuple[str, str], int] = {}
        self._letters_total = 0
        # (site, device, window, reason) -> [messages, bytes, first_ms, last_ms]
        self._refused: dict[tuple[str, str, int, str], list[int]] = {}
        self._logged: set[tuple[str, str, str]] = set()  # (site, device, reason) told this window

    def _key(self, key: tuple[str, str], table: dict) -> tuple[str, str]:
        if key in table or len(table) < self.settings.max_keys:
            return key
        return SHARED

    def _roll(self, now_ms: int) -> None:
        window = now_ms - now_ms % self.settings.window_ms
        if window != self._window:
            self._window = window
            self._letters.clear()
            self._letters_total = 0
            self._logged.clear()

    def take(self, key: tuple[str, str], now_ms: int) -> bool:
        """One message of `key` at now_ms: True if within its rate."""
        s = self.settings
        if key not in self._buckets and len(self._buckets) >= s.max_keys:
            self._forget_full_buckets(now_ms)
        key = self._key(key, self._buckets)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(s.burst), now_ms]
        tokens, at = bucket
        if now_ms > at:  # a replayed or redelivered older time never adds tokens
            tokens = min(float(s.burst), tokens + (now_ms - at) * s.rate / 1000)
            bucket[1] = now_ms
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True

    def _forget_full_buckets(self, now_ms: int) -> None:
        """Drop the buckets that have refilled (idle panels): they start full again anyway."""
        s = self.settings
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now_ms - at) * s.rate / 1000 >= s.burst]
        for k in full:
            del self._buckets[k]

    def take_letter(self, key: tuple[str, str], now_ms: int) -> bool:
        """One dead letter of `key`: True if it may be stored one by one."""
        self._roll(now_ms)
        s = self.settings
        key = self._key(key, self._letters)
        n = self._letters.get(key, 0)
        if n >= s.letters or self._letters_total >= s.letters_total:
            return False
        self._letters[key] = n + 1
        self._letters_total += 1
        return True

    def refuse(self, key: tuple[str, str], reason: str, size: int, now_ms: int) -> bool:
        """Count one refused message of `size` bytes; True when it is the key's first refusal
        for this reason in this window (the caller logs it)."""
        self._roll(now_ms)
        site, device = key
        counted = self._refused.get((site, device, self._window, reason))
        if counted is None and len(self._refused) >= self.settings.max_keys:
            site, device = SHARED
            counted = self._refused.get((site, device, self._window, reason))
        if counted is None:
            self._refused[(site, device, self._window, reason)] = [1, size, now_ms, now_ms]
        else:
            counted[0] += 1
            counted[1] += size
            counted[2] = min(counted[2], now_ms)
            counted[3] = max(counted[3], now_ms)
        told = (site, device, reason)
        if told in self._logged:
            return False
        self._logged.add(told)
        return True

    def pending(self) -> bool:
        return bool(self._refused)

    def drain(self) -> list[tuple[str, str, int, str, int, int, int, int]]:
        """The refusals counted since the last drain: (site, device, window_ms, reason, messages,
        bytes, first_ms, last_ms), to add to the `refusals` table."""
        out = [(k[0], k[1], k[2], k[3], v[0], v[1], v[2], v[3]) for k, v in self._refused.items()]
        self._refused = {}
        return out

    def restore(self, rows: list[tuple[str, str, int, str, int, int, int, int]]) -> None:
        """Put drained refusals back (their transaction rolled back): counted with the next."""
        for site, device, window, reason, messages, size, first, last in rows:
            counted = self._refused.setdefault((site, device, window, reason), [0, 0, first, last])
            counted[0] += messages
            counted[1] += size
            counted[2] = min(counted[2], first)
            counted[3] = max(counted[3], last)
