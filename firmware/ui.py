"""LED patterns as a pure function of (what the panel is doing, uptime ms).

No I/O: the app calls frame(now) and writes the four brightness values through the HAL only
when they change; next_change(now) tells the app (and the simulator) when the picture changes
next, so an idle panel is not redrawn every loop. Patterns (README.md, "LED patterns"):

    rate    steady on            a poll window is open ("please rate")
    thanks  3 short blinks       an answer was recorded (thank you)
    seller  3 fast blinks        force majeure recorded (seller's long press crossed the threshold)
    status  100 ms flash / 2 s   offline (no Wi-Fi or no broker)
    status+seller alternate 4 Hz, others off: config error (nothing else shows)
"""

from firmware import const

NAMES = ("rate", "thanks", "status", "seller")

# The patterns' timings (README.md "LED patterns"). const(): mpy-cross puts the numbers into the
# bytecode, so the names take no heap on the panel (a leading underscore is not even interned).
_THANKS_BLINKS = const(3)
_THANKS_HALF_MS = const(150)
_FM_BLINKS = const(3)
_FM_HALF_MS = const(80)
_OFFLINE_PERIOD_MS = const(2000)
_OFFLINE_FLASH_MS = const(100)
_CFG_ERR_HALF_MS = const(125)


class Ui:
    def __init__(self, brightness=60):
        self.brightness = brightness
        self.window_open = False
        self.offline = True
        self.config_error = False
        self.thanks_at = None  # uptime ms the thank-you blink started
        self.fm_at = None
        self.echo = [0, 0, 0, 0]  # self-test: LEDs lit directly

    # inputs are the attributes above: window_open, offline, config_error, echo, and
    # thanks_at / fm_at = the uptime ms an answer / force majeure was recorded

    # ---- output ----
    def _blink(self, start, now, count, half):
        """1 while inside an 'on' half of a blink train that started at `start`."""
        if start is None:
            return 0
        d = now - start
        if d < 0 or d >= 2 * count * half:
            return 0
        return 1 if (d // half) % 2 == 0 else 0

    def frame(self, now):
        """(rate, thanks, status, seller) brightness 0..100 at uptime `now`."""
        on = self.brightness
        if self.config_error:
            phase = (now // _CFG_ERR_HALF_MS) % 2
            return (0, 0, on if phase == 0 else 0, on if phase == 1 else 0)
        rate = on if self.window_open else 0
        thanks = on * self._blink(self.thanks_at, now, _THANKS_BLINKS, _THANKS_HALF_MS)
        seller = on * self._blink(self.fm_at, now, _FM_BLINKS, _FM_HALF_MS)
        status = 0
        if self.offline and now % _OFFLINE_PERIOD_MS < _OFFLINE_FLASH_MS:
            status = on
        e = self.echo
        if e[0] or e[1] or e[2] or e[3]:
            return (max(rate, e[0] * on), max(thanks, e[1] * on), max(status, e[2] * on), max(seller, e[3] * on))
        return (rate, thanks, status, seller)

    def _train_next(self, start, now, count, half):
        if start is None:
            return None
        d = now - start
        if d < 0 or d >= 2 * count * half:
            return None
        return start + (d // half + 1) * half

    def next_change(self, now):
        """Uptime ms of the next time frame() may change by itself, or None (steady)."""
        if self.config_error:
            return (now // _CFG_ERR_HALF_MS + 1) * _CFG_ERR_HALF_MS
        best = None
        for t in (
            self._train_next(self.thanks_at, now, _THANKS_BLINKS, _THANKS_HALF_MS),
            self._train_next(self.fm_at, now, _FM_BLINKS, _FM_HALF_MS),
        ):
            if t is not None and (best is None or t < best):
                best = t
        if self.offline:
            base = now - now % _OFFLINE_PERIOD_MS
            t = base + _OFFLINE_FLASH_MS if now % _OFFLINE_PERIOD_MS < _OFFLINE_FLASH_MS else base + _OFFLINE_PERIOD_MS
            if best is None or t < best:
                best = t
        return best
