"""Time: uptime past the ticks_ms wrap, wall clock from NTP, NTP schedule.

Sans-I/O: callers pass raw ticks / uptime / received bytes; the socket work is the link's.
The wire carries Unix epoch milliseconds; MicroPython on ESP32 counts seconds from 2000-01-01.

The SNTP packet code and the port-epoch conversions (used every few hours, not every loop)
live in firmware/ntp.py so they take no heap between syncs.
"""

TICKS_PERIOD = 1 << 30  # ESP32: ticks_ms() wraps at TICKS_MAX + 1 = 2**30
EPOCH_OFFSET = 946684800  # seconds from 1970-01-01 to 2000-01-01


def ticks_period(ticks_add):
    """The running port's ticks period, from its time.ticks_add (ESP32 2**30, unix 2**62)."""
    return ticks_add(0, -1) + 1


class Uptime:
    """Extends wrapping ticks_ms into milliseconds since construction that never wrap.

    update() must be called at least once per half period (~6.2 days on ESP32), which any
    main loop does; a tick reading older than the last one (never on a real clock) is ignored.
    """

    def __init__(self, ticks_now=0, period=TICKS_PERIOD):
        if period <= 0 or period & (period - 1):
            raise ValueError("period must be a power of two (ticks wrap at TICKS_MAX + 1), got %d" % period)
        self.period = period
        self._half = period >> 1
        # `& mask` instead of `% period`: the period itself (2**30 on ESP32, 2**62 on unix) is
        # one past the VM's small-int range, so `%` would allocate a long int at every update
        self._mask = period - 1
        self._last = ticks_now
        self.up_ms = 0

    def update(self, ticks_now):
        # ticks_diff semantics: the signed distance in [-period/2, period/2)
        d = ((ticks_now - self._last + self._half) & self._mask) - self._half
        if d > 0:
            self._last = ticks_now
            self.up_ms += d
        return self.up_ms


class WallClock:
    """Unix time in ms derived from uptime plus the offset learnt at the last NTP sync."""

    def __init__(self):
        self._offset = None
        self.synced_at = None  # up_ms of the last sync
        self.last_step_ms = 0  # correction applied by the last sync (drift since the one before)

    @property
    def is_synced(self):
        return self._offset is not None

    def synced(self, up_ms, unix_ms):
        offset = unix_ms - up_ms
        self.last_step_ms = 0 if self._offset is None else offset - self._offset
        self._offset = offset
        self.synced_at = up_ms

    def now(self, up_ms):
        if self._offset is None:
            return None
        return up_ms + self._offset


class NtpSchedule:
    """When to ask NTP: at boot, then every resync_ms; failures retry with doubling backoff."""

    def __init__(self, resync_ms=6 * 3600 * 1000, retry_min_ms=5000, retry_max_ms=300000):
        self.resync_ms = resync_ms
        self.retry_min_ms = retry_min_ms
        self.retry_max_ms = retry_max_ms
        self._retry = retry_min_ms
        self.next_ms = 0  # due at once after boot
        self.failures = 0  # consecutive failed attempts
        self.last_ok_ms = None

    def due(self, up_ms):
        return up_ms >= self.next_ms

    def done(self, up_ms, ok, jitter_ms=0):
        """Record an attempt; jitter_ms (caller's random) spreads panels of a store apart."""
        if ok:
            self.failures = 0
            self.last_ok_ms = up_ms
            self._retry = self.retry_min_ms
            self.next_ms = up_ms + self.resync_ms + jitter_ms
        else:
            self.failures += 1
            self.next_ms = up_ms + self._retry + jitter_ms
            self._retry = min(self._retry * 2, self.retry_max_ms)
