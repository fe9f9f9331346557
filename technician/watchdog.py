"""The panel's watchdog and the technician's tools.

On the ESP32 a started machine.WDT cannot be stopped: ports/esp32/machine_wdt.c (v1.22 to
v1.27) registers one task-watchdog user and has no deinit, and the soft-reset path leaves it
alone, so it survives Ctrl-C and soft reset. The panel's app starts it with a 30 s timeout
(firmware/app.py Panel.WDT_MS) and feeds it from its main loop. A tool that stops the app
(every raw-REPL session begins with Ctrl-C) therefore has 30 s before the panel reboots under
it, and a deploy or a self-test takes longer.

What the port does with a second `machine.WDT(timeout=...)`: it calls
esp_task_wdt_reconfigure() with the new timeout and adds the user only when it has none, i.e.
it reconfigures the running watchdog. So every tool, right after it has stopped the app,
re-arms the watchdog with a budget that covers the step it is about to take, and feeds it once
(whether reconfiguring restarts the count is ESP-IDF's business; a feed certainly does). The
tools never feed it from the laptop in a loop: a panel left in the REPL (cable pulled, laptop
closed, a step that failed) restarts by itself within the budget and goes back into service.
Commands that do not change the panel's files (`test`, `check`) end with a reset, so the app
starts again at once with its own 30 s watchdog; `deploy` ends with one anyway.

Pure: code and command-line pieces only; console.py, steps.py and the commands use them.
"""

STEP_S = 600  # one deploy step: copying the whole bundle (~60 KB, 25 files; escaped in 256-byte raw-REPL
# chunks, ~3x on the wire) at 115200 baud is ~20-30 s by its size: a wide margin for slow adapters
SELFTEST_NET_S = 120  # LEDs ~1 s, Wi-Fi join up to 15 s, broker up to ~17 s, NTP 2 s, and margin
CHECK_S = 900  # `rating device check`: boot, connect (up to --connect), a Wi-Fi drop, journal, config


def arm_code(budget_s=STEP_S):
    """MicroPython code that re-arms the running watchdog (or starts one) for `budget_s`."""
    return "import machine\nmachine.WDT(timeout=%d).feed()\n" % (int(budget_s) * 1000)


def arm_argv(budget_s=STEP_S):
    """The mpremote command that does the same, first in a step's chain (one line: readable in --dry-run)."""
    return ["exec", "import machine;machine.WDT(timeout=%d).feed()" % (int(budget_s) * 1000)]


def selftest_budget_s(seconds):
    """The self-test's whole duration, bounded: its network checks, then `seconds` of buttons."""
    return SELFTEST_NET_S + int(seconds)


RESET_CODE = "import time, machine\ntime.sleep_ms(100)\nmachine.reset()\n"
