"""Boot, once per start: read and validate /config.json, showing the config-error LEDs and a
console message until it is fixed.

    cfg = boot.start()       # firmware.main.boot() calls this, then unloads this module

None of it stays in the panel's heap while the panel runs (firmware.main keeps only its loop).

The validated config, with /remote.json applied, is kept in /config.json.ok under a key of what
it was made from (firmware version, chip, CRCs of /config.json, /remote.json and the modules
with the rules: firmware.config, protocol.config, .topics, .checks). A boot whose key matches
reads it back and imports none of the config code: the unloaded code's RAM comes back, but
the names it interned (~160) would stay in the heap for good, and they are what brings the
panel near the next doubling of the name pool (firmware/README.md, "Heap"). A new file, a new
remote config or a firmware update misses the key, and the config is validated again.
"""

import sys
import time

from firmware import unload

CONFIG_PATH = "/config.json"
VALIDATED = ".ok"  # CONFIG_PATH + VALIDATED: the validated config, keyed (see above)
REMOTE = "remote.json"  # firmware.app.REMOTE_FILE, next to /config.json
CONFIG_RECHECK_MS = 5000  # a fixed /config.json is picked up within this time
CONFIG_REPEAT_MS = 60000  # repeat the error message for a console attached later


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
            log("CONFIG ERROR %s: %s -- fix the file; the panel starts by itself once it is valid" % (path, message))
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
    it runs on, /remote.json applied. With a bad file it blinks (on a HAL of its own, the
    chip's default pins) until the file is fixed; None only if max_ms ran out (tests)."""
    c = chip(getattr(sys.implementation, "_machine", ""))
    key = _key(path, c)
    cfg = _validated(path, key)
    if cfg is not None:
        return cfg
    cfg, message = read_config(path, c)
    if cfg is None:
        cfg = config_error_loop(_hal_for_error(hal_factory, c), message, path, log, max_ms, c)
        key = _key(path, c)  # of the fixed file
    if cfg is not None:
        cfg = _with_remote(cfg, path)
        _keep(path, key, cfg)
    unload("firmware.config", "protocol.config", "protocol.topics", "protocol.checks")  # validated: free it first
    return cfg


def _key(path, c):
    import binascii

    import firmware
    import protocol
    from firmware.version import FW

    key = "%s %s" % (FW, c)
    # the rules' CRCs too: a changed rule set (an update under the same version number) must
    # not let an old verdict stand. They are firmware.config and, in protocol/, config (the
    # timing ranges of /config.json and the remote knobs'), topics (ids, root) and checks.
    # No __file__ when frozen: only a new image changes them.
    paths = [path, path[: path.rfind("/") + 1] + REMOTE]
    for pkg in (firmware, protocol):
        where = getattr(pkg, "__file__", "")
        where = where[: where.rfind("/") + 1]
        for name in ("config.", "topics.", "checks.") if pkg is protocol else ("config.",):
            paths += (where + name + "mpy", where + name + "py")
    buf = bytearray(256)
    for p in paths:
        crc = None
        try:
            with open(p, "rb") as f:
                crc = 0
                n = f.readinto(buf)
                while n:
                    crc = binascii.crc32(memoryview(buf)[:n], crc)
                    n = f.readinto(buf)
        except OSError:
            pass
        key += " -" if crc is None else " %08x" % crc
    return key


def _validated(path, key):
    """The kept config if it was made from what `key` describes, else None."""
    import json

    try:
        with open(path + VALIDATED) as f:
            if f.readline().rstrip("\n") == key:
                return json.loads(f.read())
    except Exception:  # none yet, unreadable, torn: validate again
        pass
    return None


def _with_remote(cfg, path):
    """cfg with /remote.json applied when it is valid (the Panel reports a bad one in state)."""
    from firmware import config

    try:
        with open(path[: path.rfind("/") + 1] + REMOTE) as f:
            text = f.read()
    except OSError:
        return cfg
    new, err = config.load_remote(cfg, text)
    return cfg if err else new


def _keep(path, key, cfg):
    import json
    import os

    try:  # write-then-rename: a power cut leaves the old file (its key misses) or the new one
        with open(path + ".tmp", "w") as f:
            f.write(key + "\n")
            f.write(json.dumps(cfg))
        os.rename(path + ".tmp", path + VALIDATED)
    except Exception:  # read-only or full: the next boot validates again
        pass
