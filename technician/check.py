"""`rating device check`: measure on the panel what the test VMs cannot (docs/technician.md).

The program that measures runs on the panel (technician/onpanel/check.py, sent by mpremote
after a soft reset, so the heap starts fresh) and prints `CHECK <key> <json>` lines;
`CheckReport` reads them (pure) and `format_report` prints them for a person. The panel is reset
at the end, so its app runs again.
"""

import json
import os
import subprocess
import threading

from technician import steps, watchdog
from technician.errors import DeviceError, StepFailed

PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onpanel", "check.py")
BUDGET_KB = 40  # the firmware's heap budget after start-up (firmware/README.md, "Heap")
HEAP_ROWS = (
    ("heap_bare", "bare interpreter"),
    ("heap_boot", "after boot"),
    ("heap_connected", "after connect"),
    ("heap_config", "after a config message"),
)


class CheckReport:
    """The CHECK lines of one run, by key; `modules_help` is what help('modules') printed."""

    def __init__(self):
        self.found = {}
        self.modules_help = []
        self._in_help = False
        self.ended = False

    def feed(self, line):
        """One console line; True when it was part of the check's output."""
        line = line.rstrip("\r\n")
        if line == "CHECK-HELP-MODULES-BEGIN":
            self._in_help = True
            return True
        if line == "CHECK-HELP-MODULES-END":
            self._in_help = False
            return True
        if self._in_help:
            if line.strip() and not line.startswith("Plus any modules"):
                self.modules_help.extend(line.split())
            return True
        if not line.startswith("CHECK "):
            return False
        key, _, text = line[len("CHECK ") :].partition(" ")
        try:
            self.found[key] = json.loads(text) if text else {}
        except ValueError:
            return False
        if key == "end":
            self.ended = True
        return True

    def get(self, key):
        return self.found.get(key)

    def passed(self):
        """The check ran to the end and the firmware booted (the figures are there to read)."""
        boot = self.found.get("boot") or {}
        return self.ended and "ms" in boot and "failed" not in self.found

    def frozen_packages(self):
        """The modules of frozen packages, from help('modules') (which lists them by path:
        "umqtt/simple", "asyncio/__init__"); frozen single-file modules look like built-ins there."""
        names = {name.replace("/", ".").removesuffix(".__init__") for name in self.modules_help if "/" in name}
        return sorted(names)

    def as_json(self):
        out = dict(self.found)
        out.pop("end", None)
        out["help_modules"] = self.modules_help
        return out


def _kb(n):
    return "%.1f KB" % (n / 1024.0)


def _heap_line(label, h):
    text = "  %-24s gc free %9s  used %9s" % (label, _kb(h["gc_free"]), _kb(h["gc_alloc"]))
    if "idf_free" in h:
        text += "   IDF free %9s  largest block %9s  lowest ever %9s" % (
            _kb(h["idf_free"]),
            _kb(h["idf_largest"]),
            _kb(h["idf_min_free"]),
        )
    return text


def _system_lines(r):
    s = r.get("system") or {}
    line = "Board: MicroPython %s on %s" % (s.get("version", "?"), s.get("machine") or "?")
    extras = []
    if s.get("freq_mhz"):
        extras.append("%d MHz" % s["freq_mhz"])
    if s.get("flash_bytes"):
        extras.append("flash %d MB" % (s["flash_bytes"] // (1024 * 1024)))
    if s.get("fs_free") is not None:
        extras.append("file system %s free" % _kb(s["fs_free"]))
    if extras:
        line += " (%s)" % ", ".join(extras)
    return [line, "  module search order: %s" % " ".join(repr(p) for p in s.get("path") or [])]


def _heap_lines(r):
    out = ["Heap (gc: MicroPython's heap; IDF: the ESP-IDF heap Wi-Fi, lwIP and TLS share):"]
    for key, label in HEAP_ROWS:
        h = r.get(key)
        if h:
            out.append(_heap_line(label, h))
        else:
            out.append("  %-24s not measured" % label)
    bare, boot = r.get("heap_bare"), r.get("heap_boot")
    if bare and boot:
        held = boot["gc_alloc"] - bare["gc_alloc"]
        verdict = "within" if held <= BUDGET_KB * 1024 else "OVER"
        out.append("  held by the firmware after boot: %s (%s the %d KB budget)" % (_kb(held), verdict, BUDGET_KB))
        cfg = r.get("heap_config")
        if cfg:
            out.append("  held after a config message:     %s" % _kb(cfg["gc_alloc"] - bare["gc_alloc"]))
    return out


def _network_lines(r):
    out = []
    boot = r.get("boot") or {}
    if "error" in boot:
        out.append("Boot: FAILED: %s" % boot["error"])
    elif boot:
        out.append("Boot: a running panel after %d ms" % boot["ms"])
    c = r.get("connect")
    if c:
        link = c.get("link") or {}
        if c.get("ms") is None:
            out.append(
                "Connect: not online within %s s (last error: %s)" % (c.get("timeout_s"), link.get("last_error"))
            )
        else:
            out.append("Connect: online %.1f s after boot" % (c["ms"] / 1000.0))
    rc = r.get("reconnect")
    if rc:
        if rc.get("skipped"):
            out.append("Wi-Fi drop: not provoked (%s)" % rc["skipped"])
        elif rc.get("back_ms") is None:
            out.append("Wi-Fi drop (WLAN.disconnect()): NOT back online within 3 minutes")
        else:
            out.append("Wi-Fi drop (WLAN.disconnect()): back online after %.1f s" % (rc["back_ms"] / 1000.0))
    elif c and c.get("ms") is None:
        out.append("Wi-Fi drop: not provoked (the panel never came online)")
    return out


def _other_lines(r):
    out = []
    j = r.get("journal")
    if j:
        out.append(
            "Journal append: median %.1f ms, fastest %.1f ms, slowest %.1f ms (%d appends)"
            % (j["median_us"] / 1000.0, j["min_us"] / 1000.0, j["max_us"] / 1000.0, j["n"])
        )
    cfg = r.get("config")
    if cfg:
        if cfg.get("restart"):
            what = "the firmware restarts to apply it (heap measured at the restart)"
        elif cfg.get("applied"):
            what = "applied as version %s, then /remote.json put back" % cfg["ver"]
        else:
            what = "refused: %s" % cfg.get("error")
        out.append("Config message: %s" % what)
    mods = r.get("modules") or {}
    for name in sorted(mods):
        m = mods[name]
        where = m.get("where")
        text = {"frozen": "frozen into the image", "missing": "not present", "built-in": "built in"}.get(
            where, "from %s" % where
        )
        if m.get("version"):
            text += ", version %s" % m["version"]
        if m.get("error"):
            text += ", but it does not load here: %s" % m["error"]
        out.append("Module %s: %s" % (name, text))
    return out


def format_report(r, port, out=print):
    out("")
    out("Panel check on %s" % port)
    for line in _system_lines(r) + _heap_lines(r) + _network_lines(r) + _other_lines(r):
        out(line)
    if r.modules_help:
        frozen = r.frozen_packages()
        out("Frozen packages (help('modules')): %s" % (", ".join(frozen) or "none"))
        out("Built-in and frozen modules: %s" % " ".join(r.modules_help))
    counters = r.get("counters")
    if counters:
        link = counters.get("link") or {}
        out(
            "Panel counters: boot %s, seq %s, pending %s, dropped %s, rssi %s, connects %s, reset cause %s"
            % (
                counters.get("boot"),
                counters.get("seq"),
                counters.get("pending"),
                counters.get("dropped"),
                counters.get("rssi"),
                link.get("connects"),
                counters.get("reset_cause"),
            )
        )
    if r.get("failed"):
        out("The check stopped early on the panel: %s" % r.get("failed", {}).get("error"))


def settings(connect_s=60, drop=True, appends=20):
    return {"connect_s": int(connect_s), "drop": bool(drop), "appends": int(appends), "budget_s": watchdog.CHECK_S}


def plan(port, connect_s=60, drop=True):
    args = "CHECK_ARGS = dict(%s)" % ", ".join("%s=%r" % kv for kv in sorted(settings(connect_s, drop).items()))
    return [
        steps.Step(
            "Stop the app, soft-reset the panel (a fresh heap), re-arm the watchdog for %d s and run the "
            "check there (boots the deployed firmware, waits up to %d s for the broker)"
            % (watchdog.CHECK_S, connect_s),
            steps.mpremote(
                port,
                *steps.chain(watchdog.arm_argv(watchdog.CHECK_S), ["exec", args], ["run", PROGRAM]),
                resume=False,
                arm=False,
            ),
        ),
        steps.Step("Restart the panel so its app runs again", steps.mpremote(port, "reset", arm=False)),
    ]


def _stream(step, report, out, timeout):
    """Run the check step, showing the panel's own lines as they come; feed CHECK lines to report."""
    out("- %s" % step.why)
    proc = subprocess.Popen(
        step.argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    seen = []
    killer = threading.Timer(timeout, proc.kill)  # a panel that falls silent does not hang the laptop
    killer.start()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            seen.append(line)
            if not report.feed(line):
                out("    panel> " + line.rstrip())
            elif line.startswith("CHECK ") and not line.startswith("CHECK end"):
                out("    measured: %s" % line.split()[1])
        proc.wait()
    finally:
        killer.cancel()
    if proc.returncode != 0 and not report.ended:
        raise StepFailed(steps.explain_failure(step, "".join(seen[-20:])))


def run_check(port, connect_s=60, drop=True, out=print):
    """Run the check on the panel; return the CheckReport. The panel is reset at the end."""
    from technician.console import check_board

    check_board(port, budget_s=watchdog.CHECK_S)
    report = CheckReport()
    measure, reset = plan(port, connect_s, drop)
    try:
        _stream(measure, report, out, timeout=watchdog.CHECK_S)
    finally:
        try:
            steps.run(reset, out=out)
        except DeviceError:
            out(
                "warning: could not restart the panel; press its RESET button (or it restarts by itself "
                "within %d s, when the watchdog budget runs out)." % watchdog.CHECK_S
            )
    if not report.ended:
        raise DeviceError(
            "the check did not finish on the panel (no result came back). Press its RESET button, "
            "wait 5 s and run it again; `rating device logs` shows what the panel prints."
        )
    return report
