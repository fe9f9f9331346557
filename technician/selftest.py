"""`rating device test`: run the panel's self-test over the serial console and judge it.

The firmware prints one machine-readable line per check (firmware/selftest.py):
SELFTEST START fw=..., LED <name> ok|fail, WIFI ok rssi=..|fail .., MQTT .., NTP ..,
PRESS <s>, BUTTON <name> down|up, END. `SelfTestReport` reads them (pure); `run_selftest`
drives the board through mpremote's raw REPL transport and shows progress.
"""

import time

from technician import watchdog
from technician.errors import DeviceError
from technician.i18n import _

BUTTONS = ("yes", "no", "unsure", "seller")
LEDS = ("rate", "thanks", "status", "seller")
BUTTON_LABEL = {"yes": "YES", "no": "NO", "unsure": "UNSURE", "seller": "SELLER"}


class SelfTestReport:
    def __init__(self):
        self.fw = None
        self.started = False
        self.ended = False
        self.leds = {}
        self.net = {}  # WIFI/MQTT/NTP -> (ok, detail)
        self.down = set()
        self.up = set()
        self.press_s = None

    def feed(self, line):
        """One console line; returns the parsed words (or None for other output)."""
        line = line.strip()
        if not line.startswith("SELFTEST "):
            return None
        words = line.split()[1:]
        if not words:
            return None
        kind = words[0]
        if kind == "START":
            self.started = True
            for w in words[1:]:
                if w.startswith("fw="):
                    self.fw = w[3:]
        elif kind == "LED" and len(words) >= 3:
            self.leds[words[1]] = (words[2] == "ok", " ".join(words[3:]))
        elif kind in ("WIFI", "MQTT", "NTP") and len(words) >= 2:
            self.net[kind] = (words[1] == "ok", " ".join(words[2:]))
        elif kind == "PRESS" and len(words) >= 2:
            self.press_s = int(words[1]) if words[1].isdigit() else None
        elif kind == "BUTTON" and len(words) >= 3:
            (self.down if words[2] == "down" else self.up).add(words[1])
        elif kind == "END":
            self.ended = True
        return words

    def button_ok(self, name):
        return name in self.down and name in self.up

    def all_buttons(self):
        return all(self.button_ok(b) for b in BUTTONS)

    def rows(self):
        """[(check, passed, detail)] in the order a technician reads them."""
        out = []
        for name in LEDS:
            ok, detail = self.leds.get(name, (False, "no answer"))
            out.append(("LED %s" % name, ok, detail or "lit"))
        for name in BUTTONS:
            if self.button_ok(name):
                out.append(("button %s" % BUTTON_LABEL[name], True, "pressed and released"))
            elif name in self.down:
                out.append(("button %s" % BUTTON_LABEL[name], False, "pressed but never released (stuck?)"))
            else:
                out.append(
                    ("button %s" % BUTTON_LABEL[name], False, "no press seen: check its wires to GND and the pin")
                )
        labels = {"WIFI": "Wi-Fi", "MQTT": "broker", "NTP": "clock sync"}
        for key in ("WIFI", "MQTT", "NTP"):
            ok, detail = self.net.get(key, (False, "no answer"))
            out.append((labels[key], ok, detail))
        return out

    def passed(self):
        return self.started and self.ended and all(ok for _c, ok, _d in self.rows())


def N_(message):
    return message  # marks a message for `make i18n`; translated where it is shown


HINTS = {
    "Wi-Fi": N_("check --wifi-ssid/--wifi-password (2.4 GHz network only) and the distance to the access point"),
    "broker": N_("check the broker address/port and user/password, and that the shop network lets the panel reach it"),
    "clock sync": N_("the shop network may block NTP (UDP 123); the panel still works, events get times later"),
}


def code(seconds):
    """The self-test as it runs on the panel: the watchdog re-armed for the whole (bounded) test
    first (technician/watchdog.py), since the app that fed it has just been stopped."""
    return watchdog.arm_code(watchdog.selftest_budget_s(seconds)) + (
        "import firmware.selftest as s\ns.run(seconds=%d)\n" % seconds
    )


def plan(port, seconds):
    """What `rating device test` does, as --dry-run prints it (an mpremote equivalent)."""
    from technician import steps

    return [
        steps.Step(
            "Stop the app, re-arm the watchdog for %d s and run the self-test (buttons for %d s)"
            % (watchdog.selftest_budget_s(seconds), seconds),
            steps.mpremote(port, "exec", code(seconds), arm=False),
        ),
        steps.Step("Restart the panel so its app runs again", steps.mpremote(port, "reset", arm=False)),
    ]


def run_selftest(port, seconds=60, interactive=True, start_timeout=15.0, net_timeout=60.0, out=print, ask=input):
    """Drive the self-test; return the report. Timeouts per phase raise DeviceError. The panel
    is reset at the end whatever happened, so that its app runs again."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    from technician.console import check_board

    if interactive:  # before the app is stopped: the technician may take their time here
        ask(
            "The self-test lights each LED in turn, then checks Wi-Fi, broker and clock. "
            "Watch the panel and press Enter to start ... "
        )
    check_board(port, budget_s=watchdog.selftest_budget_s(seconds))
    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise DeviceError(_("cannot open %(port)s: %(error)s") % {"port": port, "error": exc}) from None
    report = SelfTestReport()
    try:
        t.enter_raw_repl(soft_reset=False)
        t.exec_raw_no_follow(code(seconds))
        _follow(t, report, seconds, interactive, start_timeout, net_timeout, out)
    finally:
        reset_panel(t, watchdog.selftest_budget_s(seconds), out)
    return report


def reset_panel(t, budget_s, out=print):
    """Hard-reset the panel through an open SerialTransport and close it (best effort: a panel
    that no longer answers restarts by itself when the watchdog budget runs out)."""
    try:
        t.serial.write(b"\r\x03\x03")  # whatever still runs
        t.enter_raw_repl(soft_reset=False)
        t.exec_raw_no_follow(watchdog.RESET_CODE)
        out(_("Panel restarted: its app runs again."))
    except Exception:
        out(
            _(
                "warning: could not restart the panel; press its RESET button (or it restarts by itself "
                "within %d s, when the watchdog budget runs out)."
            )
            % budget_s
        )
    finally:
        try:
            t.close()
        except Exception:
            pass


class _Follow:
    """The raw REPL's answer to the self-test: standard output up to the first Ctrl-D (the
    SELFTEST lines, shown as they come), then the error output up to the second."""

    def __init__(self, t, report, seconds, interactive, net_timeout, out):
        self.t, self.report, self.out = t, report, out
        self.seconds, self.interactive, self.net_timeout = seconds, interactive, net_timeout
        self.buf = b""  # standard output not yet split into lines
        self.err = b""  # error output, once standard output has ended
        self.in_err = False
        self.phase = "start"
        self.deadline = 0.0

    def feed(self, chunk):
        """True once the answer is complete (DeviceError if the self-test crashed)."""
        if self.in_err:
            self.err += chunk
        else:
            self.buf += chunk
            if b"\x04" in self.buf:
                self.buf, self.err = self.buf.split(b"\x04", 1)
                self.buf += b"\n"
                self.in_err = True
            self._lines()
        if not (self.in_err and b"\x04" in self.err):
            return False
        text = self.err.split(b"\x04", 1)[0].decode("utf-8", "replace").strip()
        if text and "KeyboardInterrupt" not in text:
            raise DeviceError(_exec_error(text))
        return True

    def _lines(self):
        while b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
            line = raw.decode("utf-8", "replace").rstrip("\r")
            words = self.report.feed(line)
            if words is None:
                if line.strip():
                    self.out("    panel> " + line)
                continue
            self.phase, self.deadline = _show(
                words,
                self.report,
                self.seconds,
                self.interactive,
                self.net_timeout,
                self.out,
                self.phase,
                self.deadline,
            )
            if self.phase == "buttons" and self.report.all_buttons():
                self.t.serial.write(b"\x03")  # all pressed: end the wait early (firmware goes to END)
                self.phase = "ending"
                self.deadline = time.monotonic() + 10


def _follow(t, report, seconds, interactive, start_timeout, net_timeout, out):
    f = _Follow(t, report, seconds, interactive, net_timeout, out)
    f.deadline = time.monotonic() + start_timeout
    while True:
        n = t.serial.in_waiting
        chunk = t.serial.read(n if n else 1)
        if chunk:
            if f.feed(chunk):
                return report
        elif time.monotonic() > f.deadline:
            t.serial.write(b"\x03")
            raise DeviceError(_timeout_message(f.phase, report))


def _show(words, report, seconds, interactive, net_timeout, out, phase, deadline):
    kind = words[0]
    now = time.monotonic()
    if kind == "START":
        out(_("Self-test started (firmware %s).") % (report.fw or "?"))
        return "leds", now + net_timeout
    if kind == "LED":
        out("  LED %-7s %s" % (words[1], "lit" if words[2] == "ok" else "FAILED " + " ".join(words[3:])))
    elif kind in ("WIFI", "MQTT", "NTP"):
        ok = words[1] == "ok"
        label = {"WIFI": "Wi-Fi", "MQTT": "broker", "NTP": "clock"}[kind]
        out("  %-7s %s %s" % (label, "ok" if ok else "FAILED", " ".join(words[2:])))
    elif kind == "PRESS":
        secs = report.press_s or seconds
        if interactive:
            out(_("Now press and release each button in turn: YES, NO, UNSURE, SELLER (%d s).") % secs)
        return "buttons", now + secs + 10
    elif kind == "BUTTON":
        name, what = words[1], words[2]
        out("  button %-6s %s" % (BUTTON_LABEL.get(name, name), what))
        if interactive and what == "up":
            left = [BUTTON_LABEL[b] for b in BUTTONS if not report.button_ok(b)]
            if left:
                out(_("  still to press: %s") % ", ".join(left))
    elif kind == "END":
        return "end", now + 10
    return phase, deadline


def _exec_error(err):
    if "ImportError" in err and "selftest" in err:
        return (
            _("the panel has no self-test module (firmware not deployed?). Run `rating device deploy` first.")
            + "\n"
            + err
        )
    return _("the self-test crashed on the panel:") + "\n" + err


def _timeout_message(phase, report):
    if phase == "start":
        return _(
            "the panel did not start its self-test within the time limit. Press RESET on the "
            "panel, wait 5 s and run the test again."
        )
    if phase == "buttons":
        return _("the self-test did not finish the button phase in time; run the test again.")
    return _("the panel stopped answering during the self-test (%s phase).") % phase


def format_report(report, out=print):
    out("")
    out(_("Result (firmware %s):") % (report.fw or "?"))
    for check, ok, detail in report.rows():
        out("  %-4s %-16s %s" % ("PASS" if ok else "FAIL", check, detail))
        if not ok and check in HINTS:
            out("       -> %s" % _(HINTS[check]))
    out(_("Overall: %s") % ("PASS" if report.passed() else "FAIL"))
