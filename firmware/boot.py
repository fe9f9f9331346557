"""Boot, once per start: read and validate /config.json, showing the config-error LEDs and a
console message until it is fixed.

    cfg = boot.start()       # firmware.main.boot() calls this, then unloads this module

None of it stays in the panel's heap while the panel runs (firmware.main keeps only its loop).
"""
import sys
import time

from firmware import unload

CONFIG_PATH = "/config.json"
CONFIG_RECHECK_MS = 5000     # a fixed /config.json is picked up within this time
CONFIG_REPEAT_MS = 60000     # repeat the error message for a console attached later


def chip(machine):
    """sys.implementation._machine -> the config's chip: "esp32s3" on an ESP32-S3 (MicroPython
    ends the string with "with ESP32S3"), else "esp32" (the plain ESP32, the unix port)."""
    return "esp32s3" if "ESP32S3" in machine else "esp32"


def read_config(path=CONFIG_PATH, chip="esp32"):
    """-> (cfg, None) or (None, message naming the field)."""
    from firmware import config
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, "%s: file missing; copy config.example.json there and fill it in" % path
    try:
        return config.load(text, chip), None
    except config.ConfigError as e:
        return None, str(e)


def _hal_for_error(hal_factory, chip="esp32"):
    """A HAL for blinking, even when the pins part of the config is what is broken (the chip's
    default pins: the ESP32's would hit the S3's flash pins)."""
    from firmware import config
    try:
        return hal_factory(config.defaults(chip)["pins"])
    except Exception:
        return None


def config_error_loop(hal, message, path, log=print, max_ms=None, chip="esp32"):
    """Blink the config-error pattern until `path` validates; return its cfg."""
    from firmware import ui
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
            cfg, message = read_config(path, chip)
            if cfg is not None:
                log("CONFIG OK %s" % path)
                return cfg
    return None


def start(hal_factory, path=CONFIG_PATH, log=print, max_ms=None):
    """The validated config (firmware.config unloaded again), checked with the rules of the chip
    it runs on. With a bad file it blinks (on a HAL of its own, the chip's default pins) until
    the file is fixed; None only if max_ms ran out (tests)."""
    c = chip(getattr(sys.implementation, "_machine", ""))
    cfg, message = read_config(path, c)
    if cfg is None:
        cfg = config_error_loop(_hal_for_error(hal_factory, c), message, path, log, max_ms, c)
    unload("firmware.config", "protocol.config", "protocol.topics", "protocol.checks")  # validated: free it first
    return cfg
