"""The panel's entry point: boot, maybe self-test, run the panel forever. The device's /main.py is

    import firmware.main
    firmware.main.run()

Nothing escapes run(): a bad /config.json shows the config-error LED pattern and names the
field on the serial console until the file is fixed (checked every few seconds, no reboot
loop); any other start-up failure is logged, blinked and retried slowly. Once running, the
watchdog is fed only by a healthy Panel.step(); a step that raises is logged and retried, and
if it keeps failing the watchdog resets the panel.

    panel, hal = boot()      # config (firmware.boot, unloaded after), HAL, self-test, Panel
    loop(panel, hal)         # step it every Panel.LOOP_MS, forever

Only boot()/loop()/run() stay in the heap; the config checks live in firmware/boot.py.
"""

import gc
import time

from firmware import MPY, const, unload

_START_RETRY_MS = const(30000)  # after an unexpected start-up failure
_SELFTEST_SECONDS = const(60)


def boot(hal_factory=None, path=None, log=print, selftest_seconds=None, max_ms=None):
    """config (firmware.boot, unloaded again) -> Panel code -> HAL -> (self-test) -> Panel with
    the watchdog running: (panel, hal); (None, None) only if a config error outlived max_ms."""
    # protocol.panel stays resident but firmware.config imports it: load it first, so that it
    # does not end up between the blocks the boot-only code frees (less fragmentation)
    import protocol.panel  # noqa: F401
    from firmware import boot as b

    cfg = b.start(hal_factory or _default_hal, path or b.CONFIG_PATH, log, max_ms)
    fresh = b.fresh
    del b  # with the module unloaded, nothing refers to its code any more
    unload("firmware.boot")
    if cfg is None:
        return None, None
    # collect now, from this shallow frame: a collection forced later, deep inside the imports
    # below, scans stale stack words that may still point at the config code and keep it
    # (seen on the VM at 100k: MemoryError with 68 KB free after an explicit collect)
    gc.collect()
    if fresh and MPY:
        # The config was checked and kept (/config.json.ok): the checking code's names stay
        # interned in this VM for good (~3.5 KB, past the 40 KB budget). A soft reset starts
        # a new VM, whose boot reads the kept config without that code (firmware/README.md).
        hal = (hal_factory or _default_hal)(cfg["pins"])
        log("panel: config checked; restart")
        hal.restart()
    from firmware.app import Panel  # before the HAL: the big code blocks find room first

    hal = (hal_factory or _default_hal)(cfg["pins"])
    if hal.pressed("yes") and hal.pressed("no"):
        from firmware import selftest

        selftest.SelfTest(hal, cfg, out=log).run(selftest_seconds or _SELFTEST_SECONDS)
        del selftest
        unload("firmware.selftest", "firmware.ntp")
    panel = Panel(hal, cfg)
    hal.wdt_start(Panel.WDT_MS)
    return panel, hal


def _default_hal(pins):
    from firmware.hal import Hal

    return Hal(pins)


def start(hal_factory=None, path=None, log=print, max_steps=None, selftest_seconds=None):
    """One boot, then the Panel loop. Returns after max_steps (tests only)."""
    panel, hal = boot(hal_factory, path, log, selftest_seconds)
    if panel is None:
        return None
    return loop(panel, hal, log, max_steps)


def loop(panel, hal, log=print, max_steps=None):
    """Step the Panel every LOOP_MS, forever (or max_steps times); returns the panel."""
    failures = 0
    steps = 0
    while max_steps is None or steps < max_steps:
        steps += 1
        try:
            panel.step()
            failures = 0
        except Exception as e:  # no feed this round: repeated failures end in a WDT reset
            failures += 1
            if failures == 1 or failures % 100 == 0:
                log("panel: step failed (%d): %r" % (failures, e))
            hal.sleep_ms(100)
        if panel.restart:  # a new remote config, at a quiet moment (firmware.app)
            log("panel: restart")
            panel.link.disconnect()
            hal.restart()  # SystemExit on the device: never returns
        hal.sleep_ms(panel.LOOP_MS)
    return panel


def run():
    """The device entry point: never returns, never raises."""
    while True:
        try:
            start()
        except KeyboardInterrupt:
            print("panel: stopped from the console (Ctrl-C); machine.reset() to start again")
            return
        except Exception as e:
            print("panel: start-up failed: %r; retrying in %d s" % (e, _START_RETRY_MS // 1000))
            try:
                import sys

                sys.print_exception(e)
            except Exception:
                pass
            time.sleep_ms(_START_RETRY_MS)
