"""The external tools' command lines (mpremote, esptool): built here, printed by --dry-run,
run one by one with their output shown, failures turned into plain words.

A step that carries a secret (the Wi-Fi or MQTT password in /config.json) is not a command
line: it runs in this process over the serial line (`action`), and --dry-run describes it.
"""

import os
import shlex
import subprocess
import sys

from technician import extra, watchdog
from technician.errors import StepFailed
from technician.i18n import _


class Step:
    """One command line, or one in-process action, and why it runs (shown to the technician)."""

    def __init__(self, why, argv=None, tool="mpremote", action=None, describe=None):
        self.why = why
        self.argv = list(argv or [])  # empty for an in-process step
        self.tool = tool
        self.action = action  # callable(out) for a step that runs in this process
        self.describe = describe  # what --dry-run prints for an in-process step

    def command(self):
        if self.action is not None:
            return _("(in this program, over the serial line: %s)") % self.describe
        return shlex.join(self.argv)

    def __repr__(self):
        return "Step(%r, %r)" % (self.why, self.argv)


def mpremote(port, *args, resume=True, arm=True):
    """argv of `python -m mpremote connect PORT [resume] [re-arm +] ARGS...`.

    With `arm` the chain starts by re-arming the panel's watchdog (technician/watchdog.py):
    mpremote's first act is a Ctrl-C that stops the app, which fed it."""
    argv = [sys.executable, "-m", "mpremote", "connect", port]
    if resume:
        argv.append("resume")  # no soft reset between our steps: the panel stays stopped
    if arm:
        argv += watchdog.arm_argv() + ["+"]
    return argv + list(args)


def chain(*commands):
    """mpremote runs several commands in one connection when they are joined with '+'."""
    out = []
    for cmd in commands:
        if out:
            out.append("+")
        out.extend(cmd)
    return out


def print_plan(steps, out=print, start=1):
    for i, step in enumerate(steps, start):
        out("%d. %s" % (i, step.why))
        out("   %s" % step.command())


def run(step, out=print, capture=False, timeout=300):
    """Run one step; return its stdout text (also echoed unless capture). StepFailed on error."""
    out("- %s" % step.why)
    if step.action is not None:
        step.action(out)
        return ""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.run(step.argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise StepFailed(
            _(
                "%(tool)s did not finish within %(s)d s (%(step)s). Unplug and replug the panel, then "
                "run the command again."
            )
            % {"tool": step.tool, "s": timeout, "step": step.why}
        ) from None
    if not capture and proc.stdout.strip():
        for line in proc.stdout.rstrip().splitlines():
            out("    " + line)
    if proc.returncode != 0:
        raise StepFailed(explain_failure(step, proc.stdout + proc.stderr))
    return proc.stdout


def explain_failure(step, text):
    # the deploy probe's answer carries the panel's /config.json, passwords included: never shown
    text = "\n".join(line for line in text.splitlines() if not line.startswith("RATING-PROBE "))
    missing = extra.missing_in_output(text)
    if missing:
        return extra.message([missing])
    tail = "\n".join(text.strip().splitlines()[-6:])
    low = text.lower()
    if "could not enter raw repl" in low or "could not exec command" in low:
        hint = _(
            "the board stopped answering like MicroPython; press its RESET button, wait 3 s and run the command again"
        )
    elif "failed to access" in low or "could not exclusively lock" in low or "resource busy" in low:
        hint = _("the port is in use by another program; close it and try again")
    elif "no space" in low or "enospc" in low or "errno 28" in low:
        hint = _("the panel's flash is full; remove old files with `mpremote fs rm` or reflash it")
    else:
        hint = _("see the tool's message above; run the command again, and if it repeats, unplug and replug the panel")
    return _("%(tool)s failed at step %(step)s: %(hint)s") % {"tool": step.tool, "step": step.why, "hint": hint} + (
        "\n" + tail
    )
