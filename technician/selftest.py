"""`rating device test`: run the panel's self-test over the serial console and judge it.

The firmware prints one machine-readable line per check (firmware/selftest.py):
SELFTEST START fw=..., LED <name> ok|fail, WIFI ok rssi=..|fail .., MQTT .., NTP ..,
PRESS <s>, BUTTON <name> down|up, END. `SelfTestReport` reads them (pure); `run_selftest`
drives the board through mpremote's raw REPL transport and shows progress.
"""

import time

from technician.errors import DeviceError

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


HINTS = {
    "Wi-Fi": "check --wifi-ssid/--wifi-password (2.4 GHz network only) and the distance to the access point",
    "broker": "check the broker address/port and user/password, and that the shop network lets the panel reach it",
    "clock sync": "the shop network may block NTP (UDP 123); the panel still works, events get times later",
}


def code(seconds):
    return "import firmware.selftest as s\ns.run(seconds=%d)\n" % seconds


def run_selftest(port, seconds=60, interactive=True, start_timeout=15.0, net_timeout=60.0, out=print, ask=input):
    """Drive the self-test; return the report. Timeouts per phase raise DeviceError."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    from technician.console import check_board

    check_board(port)
    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise DeviceError("cannot open %s: %s" % (port, exc)) from None
    report = SelfTestReport()
    try:
        t.enter_raw_repl(soft_reset=False)
        if interactive:
            ask(
                "The self-test lights each LED in turn, then checks Wi-Fi, broker and clock. "
                "Watch the panel and press Enter to start ... "
            )
        t.exec_raw_no_follow(code(seconds))
        _follow(t, report, seconds, interactive, start_timeout, net_timeout, out)
    finally:
        try:
            t.exit_raw_repl()
            t.close()
        except Exception:
            pass
    return report


def _follow(t, report, seconds, interactive, start_timeout, net_timeout, out):
    buf = b""  # standard output not yet split into lines
    err = None  # error output, once standard output has ended (first Ctrl-D)
    phase = "start"
    phase_deadline = time.monotonic() + start_timeout
    while True:
        n = t.serial.in_waiting
        chunk = t.serial.read(n if n else 1)
        if not chunk:
            if time.monotonic() > phase_deadline:
                t.serial.write(b"\x03")
                raise DeviceError(_timeout_message(phase, report))
            continue
        if err is not None:
            err += chunk
            if b"\x04" in err:
                text = err.split(b"\x04", 1)[0].decode("utf-8", "replace").strip()
                if text and "KeyboardInterrupt" not in text:
                    raise DeviceError(_exec_error(text))
                return report
            continue
        buf += chunk
        done = b"\x04" in buf
        if done:
            buf, err = buf.split(b"\x04", 1)
            buf += b"\n"
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = raw.decode("utf-8", "replace").rstrip("\r")
            words = report.feed(line)
            if words is None:
                if line.strip():
                    out("    panel> " + line)
                continue
            phase, phase_deadline = _show(words, report, seconds, interactive, net_timeout, out, phase, phase_deadline)
            if phase == "buttons" and report.all_buttons():
                t.serial.write(b"\x03")  # all pressed: end the wait early (firmware goes to END)
                phase = "ending"
                phase_deadline = time.monotonic() + 10
        if done and b"\x04" in err:
            text = err.split(b"\x04", 1)[0].decode("utf-8", "replace").strip()
            if text and "KeyboardInterrupt" not in text:
                raise DeviceError(_exec_error(text))
            return report


def _show(words, report, seconds, interactive, net_timeout, out, phase, deadline):
    kind = words[0]
    now = time.monotonic()
    if kind == "START":
        out("Self-test started (firmware %s)." % (report.fw or "?"))
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
            out("Now press and release each button in turn: YES, NO, UNSURE, SELLER (%d s)." % secs)
        return "buttons", now + secs + 10
    elif kind == "BUTTON":
        name, what = words[1], words[2]
        out("  button %-6s %s" % (BUTTON_LABEL.get(name, name), what))
        if interactive and what == "up":
            left = [BUTTON_LABEL[b] for b in BUTTONS if not report.button_ok(b)]
            if left:
                out("  still to press: %s" % ", ".join(left))
    elif kind == "END":
        return "end", now + 10
    return phase, deadline


def _exec_error(err):
    if "ImportError" in err and "selftest" in err:
        return "the panel has no self-test module (firmware not deployed?). Run `rating device deploy` first.\n" + err
    return "the self-test crashed on the panel:\n" + err


def _timeout_message(phase, report):
    if phase == "start":
        return (
            "the panel did not start its self-test within the time limit. Press RESET on the "
            "panel, wait 5 s and run the test again."
        )
    if phase == "buttons":
        return "the self-test did not finish the button phase in time; run the test again."
    return "the panel stopped answering during the self-test (%s phase)." % phase


def format_report(report, out=print):
    out("")
    out("Result (firmware %s):" % (report.fw or "?"))
    for check, ok, detail in report.rows():
        out("  %-4s %-16s %s" % ("PASS" if ok else "FAIL", check, detail))
        if not ok and check in HINTS:
            out("       -> %s" % HINTS[check])
    out("Overall: %s" % ("PASS" if report.passed() else "FAIL"))
