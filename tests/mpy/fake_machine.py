"""Fake of MicroPython's `machine` module (ESP32 flavour) for the unix port.

Install with `import install_fakes` before importing firmware: the unix port has a built-in
`machine`, and a file on MICROPYPATH does not shadow it; install_fakes puts this module into
sys.modules["machine"].

Test controls (module-level, reset by reset()):
  levels      {pin_id: 0|1} input levels; set_level(pin, v) also fires a matching Pin.irq handler
  pwms        {pin_id: PWM} the last PWM made on each pin (.duty_value, .freq_value, .history)
  wdt_feeds   how many times any WDT was fed;  wdt_timeout  the running WDT's timeout (ms) or None
  wdt_fired   how many times the watchdog expired (see WDT below)
  resets      how many times reset()/soft_reset() was called (it raises Reset, as a real reset
              never returns)
  rtc_time    8-tuple (y, m, d, weekday, h, mi, s, subsec) that RTC().datetime() returns
  sleeps      list of lightsleep/deepsleep durations (ms)
"""

import time

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class Reset(Exception):
    """Raised by reset(): the firmware's 'reboot now' path ends here under test."""


class WatchdogReset(BaseException):
    """The watchdog fired: the board is gone. A BaseException, so that no `except Exception`
    in the firmware (or in mpytest) can carry on as if nothing happened."""


def reset_state():
    global levels, pwms, wdt_feeds, wdt_timeout, wdt_fed_at, wdt_fired, resets, rtc_time, sleeps, _irqs, reset_reason
    levels = {}
    pwms = {}
    wdt_feeds = 0
    wdt_timeout = None  # None: no watchdog running (a power-on or hard reset stops it)
    wdt_fed_at = 0
    wdt_fired = 0
    resets = 0
    rtc_time = (2025, 11, 22, 5, 12, 0, 0, 0)
    sleeps = []
    reset_reason = PWRON_RESET
    _irqs = {}


reset_state()


def set_level(pin_id, value):
    """Drive an input pin from the test; fires the pin's irq handler on a matching edge."""
    old = levels.get(pin_id)
    levels[pin_id] = 1 if value else 0
    entry = _irqs.get(pin_id)
    if entry and old != levels[pin_id]:
        pin, handler, trigger = entry
        if (value and trigger & Pin.IRQ_RISING) or (not value and trigger & Pin.IRQ_FALLING):
            handler(pin)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        if value is not None:
            levels[id] = 1 if value else 0
        elif id not in levels and not 34 <= id <= 39:
            # an unpressed button on a pull-up reads 1, like the real board
            levels[id] = 1 if pull == Pin.PULL_UP else 0
        # GPIO 34..39 have no pull resistors: the request is silently ignored and, unless the
        # test drives the pin (an external resistor), the input floats (see value())

    def value(self, v=None):
        if v is None:
            if self.id not in levels:  # floating (34..39, nothing attached): drifts
                return time.ticks_ms() // 300 % 2 if 34 <= self.id <= 39 else 0
            return levels[self.id]
        levels[self.id] = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        levels[self.id] = 1

    def off(self):
        levels[self.id] = 0

    def irq(self, handler=None, trigger=3):
        _irqs[self.id] = (self, handler, trigger)


class PWM:
    def __init__(self, pin, freq=5000, duty=None, duty_u16=None, duty_ns=None):
        self.pin = pin
        self.freq_value = freq
        # 0..1023 like ESP32's duty(); with no duty given the ESP32 starts at 50 %
        # (ports/esp32/machine_pwm.c, PWM_DUTY), so an LED glows until the firmware sets it
        self.duty_value = 512 if duty is None else duty
        if duty_u16 is not None:
            self.duty_value = duty_u16 // 64
        self.history = [self.duty_value]  # every duty the pin had, the first one included
        self.deinited = False
        pwms[getattr(pin, "id", pin)] = self

    def freq(self, f=None):
        if f is None:
            return self.freq_value
        self.freq_value = f

    def duty(self, d=None):
        if d is None:
            return self.duty_value
        self.duty_value = d
        self.history.append(d)

    def duty_u16(self, d=None):
        if d is None:
            return self.duty_value * 64
        self.duty_value = d // 64
        self.history.append(d // 64)

    def deinit(self):
        self.deinited = True


# The watchdog as ports/esp32/machine_wdt.c (v1.22-v1.27) makes it: one task-watchdog user for
# the board. WDT(timeout=...) calls esp_task_wdt_reconfigure() and adds the user only once, so
# constructing it again changes the timeout of the running watchdog; nothing stops it (no
# deinit, and the soft-reset path leaves it alone: it survives Ctrl-C and soft reset). Only a
# hard reset stops it. Whether reconfiguring restarts the count is ESP-IDF's business, so the
# fake trusts only feed(): the count runs from the last feed (or the first start). Expiry is
# noticed when the firmware next touches the watchdog (feed, construct) or a test calls
# wdt_check(): the board would already have restarted, so that raises WatchdogReset.
def wdt_check():
    """Raise WatchdogReset (reset cause WDT_RESET) if the running watchdog has expired."""
    global wdt_timeout, wdt_fired, reset_reason
    if wdt_timeout is not None and time.ticks_diff(time.ticks_ms(), wdt_fed_at) > wdt_timeout:
        wdt_timeout = None  # the reset it causes stops it, as any hard reset does
        wdt_fired += 1
        reset_reason = WDT_RESET
        raise WatchdogReset()


class WDT:
    def __init__(self, id=0, timeout=5000):
        global wdt_timeout, wdt_fed_at
        if id != 0:
            raise ValueError()
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        wdt_check()
        if wdt_timeout is None:
            wdt_fed_at = time.ticks_ms()
        wdt_timeout = timeout

    def feed(self):
        global wdt_feeds, wdt_fed_at
        wdt_check()
        if wdt_timeout is not None:
            wdt_fed_at = time.ticks_ms()
        wdt_feeds += 1


class RTC:
    def datetime(self, t=None):
        global rtc_time
        if t is None:
            return rtc_time
        rtc_time = tuple(t)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        self.id = id
        self.callback = None
        if kw:
            self.init(**kw)

    def init(self, mode=1, period=-1, callback=None, freq=-1):
        self.mode = mode
        self.period = period
        self.callback = callback  # the test calls timer.callback(timer) to "tick"

    def deinit(self):
        self.callback = None


def reset():
    """Hard reset: stops the watchdog (and never returns)."""
    global resets, wdt_timeout
    resets += 1
    wdt_timeout = None
    raise Reset()


def soft_reset():
    """Soft reset: the watchdog keeps running (ESP32, see WDT)."""
    global resets
    resets += 1
    raise Reset()


def reset_cause():
    return reset_reason


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"


def freq(hz=None):
    return 240000000 if hz is None else None


def idle():
    pass


def lightsleep(ms=0):
    sleeps.append(ms)


def deepsleep(ms=0):
    sleeps.append(ms)
    reset()
