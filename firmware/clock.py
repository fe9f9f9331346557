"""Time: uptime past the ticks_ms wrap, wall clock from NTP, NTP schedule and packets.

Sans-I/O: callers pass raw ticks / uptime / received bytes; the socket work is the link's.
The wire carries Unix epoch milliseconds; MicroPython on ESP32 counts seconds from 2000-01-01.
"""
import struct

TICKS_PERIOD = 1 << 30          # ESP32: ticks_ms() wraps at TICKS_MAX + 1 = 2**30
EPOCH_OFFSET = 946684800        # seconds from 1970-01-01 to 2000-01-01
NTP_DELTA = 2208988800          # seconds from 1900-01-01 (NTP era 0) to 1970-01-01


def ticks_period(ticks_add):
    """The running port's ticks period, from its time.ticks_add (ESP32 2**30, unix 2**62)."""
    return ticks_add(0, -1) + 1


class Uptime:
    """Extends wrapping ticks_ms into milliseconds since construction that never wrap.

    update() must be called at least once per half period (~6.2 days on ESP32), which any
    main loop does; a tick reading older than the last one (never on a real clock) is ignored.
    """

    def __init__(self, ticks_now=0, period=TICKS_PERIOD):
        self.period = period
        self._half = period >> 1
        self._last = ticks_now
        self.up_ms = 0

    def update(self, ticks_now):
        # ticks_diff semantics: the signed distance in [-period/2, period/2)
        d = ((ticks_now - self._last + self._half) % self.period) - self._half
        if d > 0:
            self._last = ticks_now
            self.up_ms += d
        return self.up_ms


class WallClock:
    """Unix time in ms derived from uptime plus the offset learnt at the last NTP sync."""

    def __init__(self):
        self._offset = None
        self.synced_at = None      # up_ms of the last sync
        self.last_step_ms = 0      # correction applied by the last sync (drift since the one before)

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


def epoch_offset_s(gmtime):
    """Seconds between 1970 and this port's epoch, from its time.gmtime (2000 on ESP32)."""
    return EPOCH_OFFSET if gmtime(0)[0] == 2000 else 0


def unix_ms_to_port_s(unix_ms, offset=EPOCH_OFFSET):
    """Unix ms -> seconds in the port's epoch (for time.gmtime / RTC().datetime)."""
    return unix_ms // 1000 - offset


def port_s_to_unix_ms(s, offset=EPOCH_OFFSET):
    return (s + offset) * 1000


class NtpSchedule:
    """When to ask NTP: at boot, then every resync_ms; failures retry with doubling backoff."""

    RESYNC_MS = 6 * 3600 * 1000
    RETRY_MIN_MS = 5000
    RETRY_MAX_MS = 300000

    def __init__(self, resync_ms=RESYNC_MS, retry_min_ms=RETRY_MIN_MS, retry_max_ms=RETRY_MAX_MS):
        self.resync_ms = resync_ms
        self.retry_min_ms = retry_min_ms
        self.retry_max_ms = retry_max_ms
        self._retry = retry_min_ms
        self.next_ms = 0           # due at once after boot
        self.failures = 0          # consecutive failed attempts
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


def ntp_request():
    """A 48-byte SNTP v4 client request (LI 0, VN 4, mode 3)."""
    return b"\x23" + bytes(47)


def _ntp_ms(data, at):
    secs, frac = struct.unpack_from(">II", data, at)
    if secs == 0:
        return None
    if secs < 0x80000000:
        secs += 0x100000000        # NTP era 1 starts 2036-02-07 (RFC 4330 section 3)
    return (secs - NTP_DELTA) * 1000 + (frac * 1000 >> 32)


def ntp_parse(data, sent_up, recv_up):
    """Server answer -> (recv_up, unix_ms at recv_up), for WallClock.synced(*result).

    sent_up/recv_up: uptime ms when the request left / the answer came. The server's
    processing time (transmit - receive stamp) is taken out of the round trip and half of
    the rest is added to its transmit stamp. Raises ValueError for anything unusable.
    """
    if len(data) < 48:
        raise ValueError("ntp: short answer (%d bytes)" % len(data))
    b0 = data[0]
    if b0 & 7 != 4:
        raise ValueError("ntp: not a server answer (mode %d)" % (b0 & 7))
    if b0 >> 6 == 3:
        raise ValueError("ntp: server not synchronised")
    if data[1] == 0:
        raise ValueError("ntp: kiss-o'-death from server")
    t3 = _ntp_ms(data, 40)
    if t3 is None:
        raise ValueError("ntp: empty transmit timestamp")
    t2 = _ntp_ms(data, 32)
    rtt = recv_up - sent_up
    if t2 is not None and 0 <= t3 - t2 <= rtt:
        rtt -= t3 - t2
    if rtt < 0:
        rtt = 0
    return recv_up, t3 + rtt // 2
