# Stand-in `machine` for the WebAssembly panel (the browser VM has none). Buttons read the
# schedule the test wrote to buttons.json (through the bridge); reset() is a real VM restart.
import _standin

_out = {}


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        if value is not None:
            _out[id] = 1 if value else 0

    def value(self, v=None):
        if v is None:
            if self.mode == Pin.OUT:
                return _out.get(self.id, 0)
            return _standin.level(self.id)
        _out[self.id] = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3):
        pass


class PWM:
    def __init__(self, pin, freq=1000, duty=0):
        self.pin = pin
        self._freq = freq
        self._duty = duty

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty(self, d=None):
        if d is None:
            return self._duty
        self._duty = d

    def duty_u16(self, d=None):
        if d is None:
            return self._duty * 64
        self._duty = d // 64

    def deinit(self):
        pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


class RTC:
    _t = (2000, 1, 1, 5, 0, 0, 0, 0)

    def datetime(self, t=None):
        if t is None:
            return RTC._t
        RTC._t = tuple(t)


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset():
    _standin.reset()
    raise SystemExit  # a reset never returns; the bridge starts a fresh VM


def soft_reset():
    raise SystemExit


def reset_cause():
    return PWRON_RESET


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def freq(hz=None):
    return 240000000


def idle():
    pass
