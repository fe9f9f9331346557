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
remote config or a firmware update misses the key, and the config is validated again; on
MicroPython the boot then restarts the panel (`fresh`, firmware.main.boot), so that no running
panel ever holds those names.

A remote config message the running panel received is kept as it came in /remote.new
(firmware.app); this boot checks it: valid, it becomes /remote.json; refused, /remote.json
stays in force and the kept config carries the error (`remote_err`, sent in state cfg_err)
and the refused payload's CRC (`remote_bad`), so the same retained message does not restart
the panel again. `remote_crc` is the CRC of /remote.json in force.
"""

import sys
import time

from firmware import unload

CONFIG_PATH = "/config.json"
VALIDATED = ".ok"  # CONFIG_PATH + VALIDATED: the validated config, keyed (see above)
REMOTE = "remote.json"  # firmware.app.REMOTE_FILE, next to /config.json
REMOTE_NEW = "remote.new"  # firmware.app.REMOTE_NEW: a config message to check
CONFIG_RECHECK_MS = 5000  # a fixed /config.json is picked up within this time
CONFIG_REPEAT_MS = 60000  # repeat the error message for a console attached later
fresh = False  # start() validated the config and kept the result (a restart may follow)


def chip(machine):
    """sys.implementation._machine -> the config's chip: "esp32s3" on an ESP32-S3 (MicroPython
    ends the string with "with ESP32S3"); "esp32wrover" where the image says GPIO 16/17 are
    taken (the SPIRAM images, "... module with SPIRAM with ESP32", run on WROVER modules whose
    PSRAM is there; the M5Stack ATOM's PICO-D4 has its flash there); else "esp32" (the plain
    ESP32, the unix port: whether a board is a WROVER or PICO cannot be known otherwise)."""
    if "ESP32S3" in machine:
        return "esp32s3"
    if "SPIRAM" in machine or "ATOM with ESP32" in machine:
        return "esp32wrover"
    return "esp32"


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
    it runs on, /remote.json (or a new /remote.new) applied. With a bad file it blinks (on a
    HAL of its own, the chip's default pins) until the file is fixed; None only if max_ms ran
    out (tests). Sets `fresh` when it validated and kept the result."""
    global fresh
    fresh = False
    c = chip(getattr(sys.implementation, "_machine", ""))
    new = _read(_beside(path, REMOTE_NEW))
    key = _key(path, c)
    cfg = _validated(path, key) if new is None else None
    if cfg is not None:
        return cfg
    cfg, message = read_config(path, c)
    if cfg is None:
        cfg = config_error_loop(_hal_for_error(hal_factory, c), message, path, log, max_ms, c)
    if cfg is not None:
        cfg = _with_remote(cfg, path, new, log)
        fresh = _keep(path, _key(path, c), cfg)  # the key of the files as they are now
    unload("firmware.config", "protocol.config", "protocol.topics", "protocol.checks")  # validated: free it first
    return cfg


def _beside(path, name):
    return path[: path.rfind("/") + 1] + name


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


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


def _with_remote(cfg, path, new=None, log=print):
    """cfg with /remote.json applied when it is valid, then a new /remote.new over it."""
    import binascii
    import os

    from firmware import config

    old = _read(_beside(path, REMOTE))
    if old is not None:
        got, err = config.load_remote(cfg, old)
        if err:  # e.g. stricter rules after a firmware update: the file's values stay in force
            cfg["remote_err"] = err
        else:
            cfg = got
            cfg["remote_crc"] = binascii.crc32(old)
    if new is None:
        return cfg
    from protocol import ProtocolError
    from protocol import config as pconfig

    try:
        got, err = config.merge_remote(cfg, pconfig.decode_config(new))
    except ProtocolError as e:
        got, err = cfg, str(e)
    except Exception as e:  # MemoryError on absurd nesting: refused like any bad payload
        got, err = cfg, "payload: %r" % e
    try:
        if err:
            log("panel: remote config refused: %s" % err)
            cfg["remote_err"] = err[:200]
            cfg["remote_bad"] = binascii.crc32(new)
            os.remove(_beside(path, REMOTE_NEW))
            return cfg
        os.rename(_beside(path, REMOTE_NEW), _beside(path, REMOTE))
    except OSError as e:  # read-only flash: run with what is in force, check again next boot
        log("panel: remote config not kept: %s" % e)
        return cfg
    got["remote_crc"] = binascii.crc32(new)
    got.pop("remote_err", None)
    got.pop("remote_bad", None)
    log("panel: remote config ver %s applied" % got["remote"].get("ver"))
    return got


def _keep(path, key, cfg):
    """Write the kept config; True when it reads back under `key` (only then may the boot
    restart: a read-only or full flash must not make a restart loop)."""
    import json
    import os

    from firmware import MPY

    if MPY:  # what only a check of a new remote config needs: done at boot there, not kept
        cfg = dict(cfg)
        cfg.pop("local", None)
    try:  # write-then-rename: a power cut leaves the old file (its key misses) or the new one
        with open(path + ".tmp", "w") as f:
            f.write(key + "\n")
            f.write(json.dumps(cfg))
        os.rename(path + ".tmp", path + VALIDATED)
    except Exception:  # read-only or full: the next boot validates again
        return False
    return _validated(path, key) is not None
