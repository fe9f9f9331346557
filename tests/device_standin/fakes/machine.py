# Stand-in `machine` for the WebAssembly panel (the browser VM has none): the unix port's fake
# (tests/mpy/fake_machine.py, which bridge.mjs puts next to this file) with the stand-in's
# board wired in. Buttons read the schedule the test wrote to buttons.json (through the
# bridge); reset() is a real VM restart; the clock starts unset, as on a fresh ESP32. The
# watchdog lives in the bridge (it must outlive the VM across a soft reset, as on the board):
# same rules as fake_machine.WDT, but it expires in real time, also while the REPL is idle.
import _standin
import fake_machine
from fake_machine import *  # noqa: F401,F403  (PWM, WDT, RTC, Timer, constants, ...)

fake_machine.rtc_time = (2000, 1, 1, 5, 0, 0, 0, 0)


class Pin(fake_machine.Pin):
    def value(self, v=None):
        if v is None and self.mode != Pin.OUT:
            return _standin.level(self.id)
        return fake_machine.Pin.value(self, v)


def reset():
    _standin.reset()
    raise SystemExit  # a reset never returns; the bridge starts a fresh VM


def soft_reset():
    raise SystemExit


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset_cause():
    return _standin.cause()


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError()
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        if _standin.wdt(int(timeout)):
            raise SystemExit  # it had already expired: the bridge restarts the VM

    def feed(self):
        if _standin.feed():
            raise SystemExit
