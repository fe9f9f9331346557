"""Debounced buttons: Yes/No/Unsure presses, seller short/long press, stuck-button faults.

Sans-I/O: the caller feeds (pressed levels, up_ms) samples, from a polling loop or from pin
edges plus `next_deadline()`. Times are extended uptime ms (clock.Uptime), never wrapped ticks.
Allocation per sample: none unless an event is produced.
"""

from firmware import const

NAMES = ("yes", "no", "unsure", "seller")
_SELLER = const(3)  # index of the seller button (const: a number in the bytecode, no name)
_PRESS = (("yes", None), ("no", None), ("unsure", None))


class Debouncer:
    """One contact. A level counts once it has been stable for debounce_ms."""

    def __init__(self, debounce_ms=30):
        self.debounce_ms = debounce_ms
        self.stable = False  # debounced level (True = pressed)
        self.edge_ms = 0  # when the edge that led to `stable` happened
        self._raw = False
        self._raw_ms = 0  # when the raw level last changed

    def feed(self, level, now_ms):
        """Return the new stable level when it changes at this sample, else None."""
        level = bool(level)
        if level != self._raw:
            self._raw = level
            self._raw_ms = now_ms
        if self._raw != self.stable and now_ms - self._raw_ms >= self.debounce_ms:
            self.stable = self._raw
            self.edge_ms = self._raw_ms
            return self.stable
        return None

    def deadline(self):
        """up_ms at which the pending raw change becomes stable, or None."""
        if self._raw != self.stable:
            return self._raw_ms + self.debounce_ms
        return None


class Buttons:
    """The four panel buttons. See firmware/README.md "Module APIs" for the event rules."""

    def __init__(self, debounce_ms=30, long_ms=1500, stuck_ms=30000):
        self._deb = [Debouncer(debounce_ms) for _ in NAMES]
        self.long_ms = long_ms
        self.stuck_ms = stuck_ms
        self._events = []
        self._faults = []
        self._stuck = 0  # bitmask of buttons reported stuck
        # the current seller press already reported (long, or short on release); True at boot
        # so a seller button held at boot reports nothing
        self._long_done = True
        self._press_ms = 0
        self._primed = False
        self.faults_rev = 0

    def set_timings(self, debounce_ms=None, long_ms=None, stuck_ms=None):
        if debounce_ms is not None:
            for d in self._deb:
                d.debounce_ms = debounce_ms
        if long_ms is not None:
            self.long_ms = long_ms
        if stuck_ms is not None:
            self.stuck_ms = stuck_ms

    def down(self):
        mask = 0
        for i in range(4):
            if self._deb[i].stable:
                mask |= 1 << i
        return mask

    def faults(self):
        return self._faults

    def sample(self, pressed, now_ms):
        """Feed one sample of all four buttons; return the (reused) list of events."""
        ev = self._events
        ev.clear()  # (del ev[:] would allocate a slice object each sample)
        bits = isinstance(pressed, int)
        for i in range(4):
            level = (pressed >> i) & 1 if bits else pressed[i]
            d = self._deb[i]
            if not self._primed:
                # a button already down at boot is not a press (self-test, stuck at boot)
                d.stable = d._raw = bool(level)
                d.edge_ms = d._raw_ms = now_ms
                continue
            change = d.feed(level, now_ms)
            if change is True and i == _SELLER:
                self._press_ms = d.edge_ms
                self._long_done = False
            elif change is True:
                ev.append(_PRESS[i])
            elif change is False:
                if i == _SELLER and not self._long_done:
                    self._long_done = True
                    hold = d.edge_ms - self._press_ms
                    ev.append(("seller_long" if hold >= self.long_ms else "seller_short", hold))
                if self._stuck & (1 << i):
                    self._set_stuck(i, False)
            if d.stable and d._raw == d.stable:  # settled (no change coming)
                held = now_ms - d.edge_ms
                if i == _SELLER and not self._long_done and held >= self.long_ms:
                    # reported while still held, so the LED can confirm to the seller
                    self._long_done = True
                    ev.append(("seller_long", held))
                if held >= self.stuck_ms and not self._stuck & (1 << i):
                    self._set_stuck(i, True)
        self._primed = True
        return ev

    def _set_stuck(self, i, on):
        name = "stuck:" + NAMES[i]
        if on:
            self._stuck |= 1 << i
            self._faults.append(name)
        else:
            self._stuck &= ~(1 << i)
            self._faults.remove(name)
        self.faults_rev += 1

    def next_deadline(self, now_ms):
        """Earliest up_ms at which sample() may report something without an input edge.

        None when nothing is pending; may be <= now_ms (then sample now). Thresholds count
        only while the level is settled, so a past deadline never repeats (no busy loop).
        """
        best = -1
        for i in range(4):
            d = self._deb[i]
            if d._raw != d.stable:  # settling: a change may be coming
                t = d._raw_ms + d.debounce_ms
            elif d.stable:
                t = -1
                if i == _SELLER and not self._long_done:
                    t = d.edge_ms + self.long_ms
                if not self._stuck & (1 << i):
                    t2 = d.edge_ms + self.stuck_ms
                    t = t2 if t < 0 or t2 < t else t
            else:
                continue
            if t >= 0 and (best < 0 or t < best):
                best = t
        return None if best < 0 else best
