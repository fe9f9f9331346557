"""`rating device check`: measure on the panel what the test VMs cannot (docs/technician.md).

The program that measures runs on the panel (technician/onpanel/check.py, sent by mpremote
after a soft reset, so the heap starts fresh) and prints `CHECK <key> <json>` lines;
`CheckReport` reads them (pure) and `format_report` prints them for a person. A run that ends
where the firmware restarts (a boot that checked a changed /config.json, a config message, the
boot that checks it: firmware/README.md, "Configuration") names the stage that follows, and the
program is run again after another soft reset, as the panel itself would start again. The panel
is reset at the end, so its app runs again.
"""

import json
import os
import subprocess
import threading

from technician import steps, watchdog
from technician.errors import DeviceError, StepFailed
from technician.i18n import N_, _, ngettext, number

PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onpanel", "check.py")
BUDGET_KB = 40  # the firmware's heap budget after start-up (firmware/README.md, "Heap")
# (key, row label, what "held by the firmware" is said of, checked against the budget?)
HEAP_ROWS = (
    ("heap_bare", N_("bare interpreter"), None, False),
    ("heap_boot", N_("after boot"), N_("after boot"), True),
    ("heap_connected", N_("after connect"), N_("when connected"), True),
    ("heap_config", N_("after a config message"), N_("after a config message"), True),
    ("heap_config_check", N_("boot checking it"), N_("as the boot that checks it restarts"), False),
    ("heap_new_config", N_("with the new config"), N_("after boot with the new config"), True),
)
# The stages of the on-panel program, in order; a run names the next one (a fresh VM each)
STAGES = ("measure", "check_config", "new_config")
MAX_RUNS = 5  # the stages, plus the boot after a changed /config.json once, plus one spare
UMQTT = ("umqtt.simple", "umqtt.robust")


class CheckReport:
    """The CHECK lines of one run, by key; `modules_help` is what help('modules') printed."""

    def __init__(self):
        self.found = {}
        self.modules_help = []
        self._in_help = False
        self.ended = False  # the last run ended (no stage follows)
        self.next = None  # the stage the last run asked for (the firmware restarted)
        self.runs = 0

    def feed(self, line):
        """One console line; True when it was part of the check's output."""
        line = line.rstrip("\r\n")
        if line == "CHECK-HELP-MODULES-BEGIN":
            self._in_help = True
            self.modules_help = []  # a run after a restart lists them again
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
        key, _sep, text = line[len("CHECK ") :].partition(" ")
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            return False
        if key == "end":
            self.runs += 1
            self.next = value.get("next")
            self.ended = self.next is None
        else:
            self.found[key] = value
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

    def modules(self):
        """Where each module the program looked at loads from. umqtt is not imported on the
        panel (the firmware has its own MQTT client): frozen when help('modules') lists it,
        else the file an older deploy left, else missing."""
        out = {}
        frozen = self.frozen_packages()
        for name, m in (self.found.get("modules") or {}).items():
            if name in UMQTT:
                m = dict(m)
                m["used"] = False
                m["where"] = "frozen" if name in frozen else m.get("file") or "missing"
            out[name] = m
        return out

    def as_json(self):
        out = dict(self.found)
        if "modules" in out:
            out["modules"] = self.modules()
        out["help_modules"] = self.modules_help
        return out


def _kb(n):
    return "%s KB" % _decimal(n / 1024.0)


def _decimal(x):
    return number(x, 1)  # 0,5 in Russian


def _heap_line(label, h):
    text = "  %-24s " % _(label) + _("gc free %(free)9s  used %(used)9s") % {
        "free": _kb(h["gc_free"]),
        "used": _kb(h["gc_alloc"]),
    }
    if "idf_free" in h:
        text += "   " + _("IDF free %(free)9s  largest block %(largest)9s  lowest ever %(lowest)9s") % {
            "free": _kb(h["idf_free"]),
            "largest": _kb(h["idf_largest"]),
            "lowest": _kb(h["idf_min_free"]),
        }
    return text


def _system_lines(r):
    s = r.get("system") or {}
    line = _("Board: MicroPython %(version)s on %(machine)s") % {
        "version": s.get("version", "?"),
        "machine": s.get("machine") or "?",
    }
    extras = []
    if s.get("freq_mhz"):
        extras.append(_("%d MHz") % s["freq_mhz"])
    if s.get("flash_bytes"):
        extras.append(_("flash %d MB") % (s["flash_bytes"] // (1024 * 1024)))
    if s.get("fs_free") is not None:
        extras.append(_("file system %s free") % _kb(s["fs_free"]))
    if extras:
        line += " (%s)" % ", ".join(extras)
    return [line, "  " + _("module search order: %s") % " ".join(repr(p) for p in s.get("path") or [])]


def _heap_lines(r):
    out = [_("Heap (gc: MicroPython's heap; IDF: the ESP-IDF heap Wi-Fi, lwIP and TLS share):")]
    for key, label, _said, _budget in HEAP_ROWS:
        h = r.get(key)
        if h:
            out.append(_heap_line(label, h))
        elif key not in ("heap_config_check", "heap_new_config") or r.get("heap_config"):
            out.append("  %-24s " % _(label) + _("not measured"))
    bare = r.get("heap_bare")
    for key, _label, said, budget in HEAP_ROWS[1:]:
        h = r.get(key)
        if not h or not (bare or "bare_alloc" in h):
            continue
        # rows measured after a restart carry their own run's bare interpreter
        held = h["gc_alloc"] - h.get("bare_alloc", bare and bare["gc_alloc"])
        if budget:
            if held <= BUDGET_KB * 1024:
                note = _("within the %d KB budget") % BUDGET_KB
            else:
                note = _("OVER the %d KB budget") % BUDGET_KB
        else:
            note = _("the restart frees it")
        out.append(
            "  "
            + _("held by the firmware %(when)s: %(held)s (%(note)s)")
            % {"when": _(said), "held": _kb(held), "note": note}
        )
    return out


def _network_lines(r):
    out = []
    boot = r.get("boot") or {}
    if r.get("put_back"):
        out.append(
            _("Earlier check: it was cut off after its config message; the panel's settings were put back first")
        )
    if r.get("boot_checked"):
        out.append(
            _(
                "Boot: the first one checked a changed /config.json in %d ms and restarted (as the firmware does); "
                "measured from the next boot"
            )
            % r.get("boot_checked")["ms"]
        )
    if "error" in boot:
        out.append(_("Boot: FAILED: %s") % boot["error"])
    elif boot:
        out.append(_("Boot: a running panel after %d ms") % boot["ms"])
    c = r.get("connect")
    if c:
        link = c.get("link") or {}
        if c.get("ms") is None:
            out.append(
                _("Connect: not online within %(s)s s (last error: %(error)s)")
                % {"s": c.get("timeout_s"), "error": link.get("last_error")}
            )
        else:
            out.append(_("Connect: online %s s after boot") % _decimal(c["ms"] / 1000.0))
    rc = r.get("reconnect")
    if rc:
        if rc.get("skipped"):
            out.append(_("Wi-Fi drop: not provoked (%s)") % rc["skipped"])
        elif rc.get("back_ms") is None:
            out.append(_("Wi-Fi drop (WLAN.disconnect()): NOT back online within 3 minutes"))
        else:
            out.append(_("Wi-Fi drop (WLAN.disconnect()): back online after %s s") % _decimal(rc["back_ms"] / 1000.0))
    elif c and c.get("ms") is None:
        out.append(_("Wi-Fi drop: not provoked (the panel never came online)"))
    return out


def _other_lines(r):
    out = []
    j = r.get("journal")
    if j:
        out.append(
            ngettext(
                "Journal append: median %(median)s ms, fastest %(min)s ms, slowest %(max)s ms (%(n)d append)",
                "Journal append: median %(median)s ms, fastest %(min)s ms, slowest %(max)s ms (%(n)d appends)",
                j["n"],
            )
            % {
                "median": _decimal(j["median_us"] / 1000.0),
                "min": _decimal(j["min_us"] / 1000.0),
                "max": _decimal(j["max_us"] / 1000.0),
                "n": j["n"],
            }
        )
    out += _config_lines(r)
    mods = r.modules()
    for name in sorted(mods):
        m = mods[name]
        where = str(m.get("where"))
        said = {"frozen": _("frozen into the image"), "missing": _("not present"), "built-in": _("built in")}
        text = said.get(where) or _("from %s") % where
        if m.get("error"):
            text += _(", but it does not load here: %s") % m["error"]
        if m.get("used") is False and where != "missing":
            text += " " + _("(not used: the firmware has its own MQTT client)")
        out.append(_("Module %(name)s: %(how)s") % {"name": name, "how": text})
    return out


def _config_lines(r):
    """The config message as the firmware takes it: kept, restart, checked at boot, restart,
    in force (firmware/README.md, "Configuration")."""
    cfg = r.get("config")
    if not cfg:
        return []
    if cfg.get("restart_ms") is None:
        kept = _("not kept") if not cfg.get("kept") else _("kept, but no restart followed")
        return [_("Config message: %s") % (kept + " " + _("(%s); the panel's files were put back") % cfg.get("error"))]
    what = _("kept, restart %s s later") % _decimal(cfg["restart_ms"] / 1000.0)
    check = r.get("config_check") or {}
    if "ms" in check:
        what += "; " + _("its boot checked it in %s s") % _decimal(check["ms"] / 1000.0)
        what += " " + (_("and restarted") if check.get("restart") else _("(no restart: the result could not be kept)"))
    applied = r.get("config_applied") or {}
    if applied.get("applied"):
        what += "; " + _("applied as version %s, then the panel's /remote.json put back") % applied["ver"]
    elif applied:
        what += "; " + _("NOT applied (%s), the panel's /remote.json put back") % applied.get("error")
    else:
        what += "; " + _("the check stopped before the boot with it")
    return [_("Config message: %s") % what]


def format_report(r, port, out=print):
    out("")
    out(_("Panel check on %s") % port)
    for line in _system_lines(r) + _heap_lines(r) + _network_lines(r) + _other_lines(r):
        out(line)
    if r.modules_help:
        frozen = r.frozen_packages()
        out(_("Frozen packages (help('modules')): %s") % (", ".join(frozen) or _("none")))
        out(_("Built-in and frozen modules: %s") % " ".join(r.modules_help))
    counters = r.get("counters")
    if counters:
        link = counters.get("link") or {}
        out(
            _(
                "Panel counters: boot %(boot)s, seq %(seq)s, pending %(pending)s, dropped %(dropped)s, "
                "rssi %(rssi)s, connects %(connects)s, reset cause %(reset)s"
            )
            % {
                "boot": counters.get("boot"),
                "seq": counters.get("seq"),
                "pending": counters.get("pending"),
                "dropped": counters.get("dropped"),
                "rssi": counters.get("rssi"),
                "connects": link.get("connects"),
                "reset": counters.get("reset_cause"),
            }
        )
    if r.get("failed"):
        out(_("The check stopped early on the panel: %s") % r.get("failed", {}).get("error"))


def settings(connect_s=60, drop=True, appends=20, stage="measure"):
    return {
        "connect_s": int(connect_s),
        "drop": bool(drop),
        "appends": int(appends),
        "budget_s": watchdog.CHECK_S,
        "stage": stage,
    }


WHY = {
    "measure": N_(
        "Stop the app, soft-reset the panel (a fresh heap), re-arm the watchdog for %(budget)d s and run the "
        "check there (boots the deployed firmware, waits up to %(connect)d s for the broker, then hands it a config "
        "message, which it keeps and restarts for; run again once if its boot checks a changed /config.json "
        "and restarts)"
    ),
    "check_config": N_(
        "Soft-reset the panel as its restart does and run the boot that checks the config message "
        "(it restarts once more)"
    ),
    "new_config": N_(
        "Soft-reset the panel again: the boot with the new config in force; then put the panel's "
        "/remote.json and kept config back"
    ),
}


def stage_step(port, stage, connect_s=60, drop=True):
    """One run of the on-panel program, after a soft reset (no `resume`): a fresh VM."""
    args = "CHECK_ARGS = dict(%s)" % ", ".join(
        "%s=%r" % kv for kv in sorted(settings(connect_s, drop, stage=stage).items())
    )
    return steps.Step(
        _(WHY[stage]) % {"budget": watchdog.CHECK_S, "connect": connect_s} if stage == "measure" else _(WHY[stage]),
        steps.mpremote(
            port,
            *steps.chain(watchdog.arm_argv(watchdog.CHECK_S), ["exec", args], ["run", PROGRAM]),
            resume=False,
            arm=False,
        ),
    )


def reset_step(port):
    return steps.Step(_("Restart the panel so its app runs again"), steps.mpremote(port, "reset", arm=False))


def plan(port, connect_s=60, drop=True):
    return [stage_step(port, stage, connect_s, drop) for stage in STAGES] + [reset_step(port)]


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
                out("    " + _("measured: %s") % line.split()[1])
        proc.wait()
    finally:
        killer.cancel()
    if proc.returncode != 0 and not (report.ended or report.next):
        raise StepFailed(steps.explain_failure(step, "".join(seen[-20:])))


def run_check(port, connect_s=60, drop=True, out=print):
    """Run the check on the panel; return the CheckReport. The panel is reset at the end."""
    from technician.console import check_board

    check_board(port, budget_s=watchdog.CHECK_S)
    report = CheckReport()
    stage = STAGES[0]
    try:
        while stage is not None:
            if report.runs >= MAX_RUNS:
                raise DeviceError(
                    ngettext(
                        "the panel restarted %(n)d time during the check, more than the firmware does for a config "
                        "(the last stage asked for: %(stage)s). Run `rating device logs` to see why.",
                        "the panel restarted %(n)d times during the check, more than the firmware does for a config "
                        "(the last stage asked for: %(stage)s). Run `rating device logs` to see why.",
                        report.runs,
                    )
                    % {"n": report.runs, "stage": stage}
                )
            report.next = None
            _stream(stage_step(port, stage, connect_s, drop), report, out, timeout=watchdog.CHECK_S)
            stage = report.next
    finally:
        try:
            steps.run(reset_step(port), out=out)
        except DeviceError:
            out(
                _(
                    "warning: could not restart the panel; press its RESET button (or it restarts by itself "
                    "within %d s, when the watchdog budget runs out)."
                )
                % watchdog.CHECK_S
            )
    if not report.ended:
        raise DeviceError(
            _(
                "the check did not finish on the panel (no result came back). Press its RESET button, "
                "wait 5 s and run it again; `rating device logs` shows what the panel prints."
            )
        )
    return report
