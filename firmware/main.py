"""Boot: read /config.json, maybe self-test, run the panel forever. The device's /main.py is

    import firmware.main
    firmware.main.run()

Nothing escapes run(): a bad /config.json shows the config-error LED pattern and names the
field on the serial console until the file is fixed (checked every few seconds, no reboot
loop); any other start-up failure is logged, blinked and retried slowly. Once running, the
watchdog is fed only by a healthy Panel.step(); a step that raises is logged and retried, and
if it keeps failing the watchdog resets the panel.
"""
import time

from firmware import ui

CONFIG_PATH = "/config.json"
CONFIG_RECHECK_MS = 5000     # a fixed /config.json is picked up within this time
CONFIG_REPEAT_MS = 60000     # repeat the error message for a console attached later
START_RETRY_MS = 30000       # after an unexpected start-up failure
SELFTEST_SECONDS = 60


def read_config(path=CONFIG_PATH):
    """-> (cfg, None) or (None, message naming the field)."""
    from firmware import config
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, "%s: file missing; copy config.example.json there and fill it in" % path
    try:
        return config.load(text), None
    except config.ConfigError as e:
        return None, str(e)


def _hal_for_error(hal_factory):
    """A HAL for blinking, even when the pins part of the config is what is broken."""
    from firmware import config
    try:
        return hal_factory(config.DEFAULTS["pins"])
    except Exception:
        return None


def config_error_loop(hal, message, path, log=print, max_ms=None):
    """Blink the config-error pattern until `path` validates; return its cfg."""
    face = ui.Ui(100)
    face.config_error = True
    waited = 0
    next_check = CONFIG_RECHECK_MS
    next_say = 0
    while max_ms is None or waited < max_ms:
        if waited >= next_say:
            log("CONFIG ERROR %s: %s -- fix the file; the panel starts by itself once it is valid"
                % (path, message))
            next_say = waited + CONFIG_REPEAT_MS
        if hal is not None:
            frame = face.frame(waited)
            for i in range(4):
                hal.led(ui.NAMES[i], frame[i])
        time.sleep_ms(25)
        waited += 25
        if waited >= next_check:
            next_check = waited + CONFIG_RECHECK_MS
            cfg, message = read_config(path)
            if cfg is not None:
                log("CONFIG OK %s" % path)
                return cfg
    return None


def start(hal_factory=None, path=CONFIG_PATH, log=print, max_steps=None, selftest_seconds=None):
    """One boot: config -> (self-test) -> Panel loop. Returns after max_steps (tests only)."""
    if hal_factory is None:
        from firmware.hal import Hal
        hal_factory = Hal
    cfg, message = read_config(path)
    if cfg is None:
        cfg = config_error_loop(_hal_for_error(hal_factory), message, path, log)
        if cfg is None:
            return None
    hal = hal_factory(cfg["pins"])
    if hal.pressed("yes") and hal.pressed("no"):
        from firmware import selftest
        selftest.SelfTest(hal, cfg, out=log).run(selftest_seconds or SELFTEST_SECONDS)
    from firmware.app import Panel
    panel = Panel(hal, cfg)
    hal.wdt_start(Panel.WDT_MS)
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
        hal.sleep_ms(Panel.LOOP_MS)
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
            print("panel: start-up failed: %r; retrying in %d s" % (e, START_RETRY_MS // 1000))
            try:
                import sys
                sys.print_exception(e)
            except Exception:
                pass
            time.sleep_ms(START_RETRY_MS)
