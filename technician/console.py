"""Talking to the panel's serial console: is MicroPython there, follow its output.

MicroPython's REPL answers Ctrl-C (stop the running program) and Ctrl-A (raw REPL) with
"raw REPL; CTRL-B to exit"; anything else on the line (nothing, boot-loader text, garbage) is
a board without MicroPython, a wrong baud rate, or a board in download mode.
"""

import time

from technician import watchdog
from technician.errors import DeviceError, NotMicroPython
from technician.i18n import _
from technician.ports import open_port

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"


class Console:
    """The panel's console over pyserial, read line by line."""

    ANSWER_S = 3.0  # a MicroPython board answers Ctrl-A within milliseconds; USB adapters lag

    def __init__(self, port, baudrate=115200):
        self.port = port
        self.serial = open_port(port, baudrate)
        self.pending = b""

    def close(self):
        try:
            self.serial.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read_until(self, ending, timeout):
        """Bytes up to and including `ending`, or (data, False) after `timeout` seconds."""
        data = self.pending
        self.pending = b""
        deadline = time.monotonic() + timeout
        while ending not in data and time.monotonic() < deadline:
            data += self.serial.read(max(1, self.serial.in_waiting))
        i = data.find(ending)
        if i < 0:
            return data, False
        self.pending = data[i + len(ending) :]
        return data[: i + len(ending)], True

    def lines(self, timeout=None, idle=None):
        """Yield decoded lines as they arrive (None on each quiet `idle` period)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        quiet_since = time.monotonic()
        while deadline is None or time.monotonic() < deadline:
            chunk = self.serial.read(max(1, self.serial.in_waiting))
            if chunk:
                quiet_since = time.monotonic()
                self.pending += chunk
                while b"\n" in self.pending:
                    line, self.pending = self.pending.split(b"\n", 1)
                    yield line.rstrip(b"\r").decode("utf-8", "replace")
            elif idle is not None and time.monotonic() - quiet_since >= idle:
                quiet_since = time.monotonic()
                yield None

    def check_micropython(self, timeout=None, budget_s=watchdog.STEP_S):
        """Stop the running program, enter the raw REPL, re-arm the panel's watchdog for
        `budget_s` (technician/watchdog.py: the app that fed it has just been stopped) and leave
        the raw REPL: proves MicroPython is there."""
        timeout = self.ANSWER_S if timeout is None else timeout
        self.serial.write(b"\r\x03\x03")
        time.sleep(0.05)
        self.serial.reset_input_buffer()
        self.serial.write(b"\r\x01")
        seen, ok = self.read_until(RAW_BANNER, timeout)
        if not ok:
            # one more try: a panel busy at boot may have missed the first Ctrl-C
            self.serial.write(b"\r\x03\x03\r\x01")
            more, ok = self.read_until(RAW_BANNER, timeout)
            seen += more
        if not ok:
            raise NotMicroPython(not_micropython_message(self.port, seen))
        if budget_s:
            self.exec_raw(watchdog.arm_code(budget_s), timeout)
        self.serial.write(b"\r\x02")  # back to the normal REPL
        time.sleep(0.05)
        self.serial.reset_input_buffer()

    def exec_raw(self, code, timeout):
        """Run `code` in the raw REPL (already entered); return its output, DeviceError on an error."""
        self.serial.write(code.encode() + b"\x04")
        seen, ok = self.read_until(b"\x04>", timeout)
        if not ok or not seen.startswith(b"OK"):
            raise DeviceError(
                _(
                    "the panel on %(port)s stopped answering (got %(seen)r). Press its RESET button, wait 3 s and "
                    "run the command again."
                )
                % {"port": self.port, "seen": seen[-80:]}
            )
        out, _sep, err = seen[2:-2].partition(b"\x04")
        if err.strip():
            raise DeviceError(
                _("the panel on %(port)s could not run %(code)r: %(error)s")
                % {"port": self.port, "code": code, "error": err.decode(errors="replace")}
            )
        return out.decode(errors="replace")


def not_micropython_message(port, seen):
    shown = seen[-120:].decode("ascii", "backslashreplace") if seen else ""
    if not seen:
        what = _("nothing came back")
    elif b"waiting for download" in seen or b"DOWNLOAD" in seen:
        return (
            _(
                "the board on %s is in download (flashing) mode, not running MicroPython. Press its "
                "RESET/EN button once (without BOOT) and try again."
            )
            % port
        )
    else:
        what = _("it answered %r") % shown
    return _(
        "the board on %(port)s does not answer like MicroPython (%(what)s). Check that this is the panel's "
        "port (`rating device list`); if the board is new or was flashed with something else, "
        "install MicroPython with `rating device flash --port %(port)s --image <MicroPython .bin>`."
    ) % {"port": port, "what": what}


def check_board(port, timeout=None, budget_s=watchdog.STEP_S):
    """Port present, free, and MicroPython answering, the app stopped and the watchdog re-armed
    for `budget_s`; the port is closed again afterwards."""
    with Console(port) as c:
        c.check_micropython(timeout, budget_s)
