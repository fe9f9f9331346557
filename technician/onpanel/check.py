# pyright: reportAttributeAccessIssue=false, reportMissingImports=false, reportMissingModuleSource=false
# Run on the panel by `rating device check` (after a soft reset: a fresh heap), or on the
# MicroPython unix port by the tests. It measures what the test VMs cannot: the heap on the
# board's own memory layout (gc and the ESP-IDF heap) after boot, after connecting and around a
# config message, how long a journal append takes on the board's flash, how long the panel takes
# to come back after a Wi-Fi drop, which modules the image freezes, and the MicroPython version
# and chip. It prints one line per finding:
#     CHECK <key> <json>
# and ends each run with "CHECK end {}" or, when the firmware restarted and the check goes on in
# a fresh VM, "CHECK end {"next": STAGE}" (technician/check.py reads them, soft-resets the panel
# and runs this file again with that stage). It boots the deployed firmware exactly as /main.py
# does (firmware.main.boot()) and steps it as the main loop does; the firmware's restarts
# (hal.restart, a soft reset on the panel) end a run here instead, so that the tool can report
# them. The tool resets the panel at the end.
#
# Stages, one soft reset apart, as a panel goes through a remote config message (firmware/README.md,
# "Configuration"): the message is kept in /remote.new and the panel restarts at a quiet moment,
# the next boot checks it and restarts once more, the boot after that runs with it:
#   measure       board, modules, boot (a boot that checks a changed /config.json restarts: then
#                 this stage runs again), connect, Wi-Fi drop, journal appends, then a config
#                 message (the panel's /remote.json and /config.json.ok are copied aside first)
#   check_config  the boot that checks the message, until it restarts
#   new_config    the boot with the new config in force; then the panel's files are put back
#
# Settings: a dict CHECK_ARGS defined before this file runs (the tool sends it first):
#   stage       see above (default "measure")
#   connect_s   how long to wait for the broker (default 60)
#   drop        provoke a Wi-Fi drop once online and time the way back (default True)
#   appends     journal appends to time (default 20)
#   budget_s    the watchdog budget re-armed once the measuring is over (default 900)
#   root        the flash root ("/"), config (path of /config.json), hal (a HAL factory): tests
import gc
import json
import os
import sys
import time

CHECK_DIR = "rating-check"  # under root: the timing journal and the panel's files set aside
SAVED = ("remote.json", "config.json.ok")  # what a config message changes, put back at the end
RESTART_WAIT_MS = 60000  # the firmware restarts for a config at the first quiet moment (3 s)


def _say(key, value):
    print("CHECK %s %s" % (key, json.dumps(value)))


def _heap(bare=None):
    """gc (and on an ESP32 the IDF heap) after a collection; `bare`: the gc_alloc of this run's
    bare interpreter, for the rows measured after a restart (each run is a fresh VM)."""
    gc.collect()
    h = {"gc_free": gc.mem_free(), "gc_alloc": gc.mem_alloc()}
    if bare is not None:
        h["bare_alloc"] = bare
    try:
        import esp32

        regions = esp32.idf_heap_info(esp32.HEAP_DATA)  # (total, free, largest free block, min free)
        h["idf_total"] = sum(r[0] for r in regions)
        h["idf_free"] = sum(r[1] for r in regions)
        h["idf_largest"] = max([r[2] for r in regions] or [0])
        h["idf_min_free"] = sum(r[3] for r in regions)
    except ImportError:
        pass  # not an ESP32 port: gc figures only
    return h


def _system():
    info = {
        "version": ".".join(str(x) for x in sys.implementation.version[:3]),
        "sys_version": sys.version,
        "machine": getattr(sys.implementation, "_machine", ""),
        "mpy": getattr(sys.implementation, "_mpy", None),
        "platform": sys.platform,
        "path": list(sys.path),
    }
    try:
        u = os.uname()
        info["release"] = u.release
        info["build"] = u.version
    except Exception:
        pass
    try:
        import machine

        info["freq_mhz"] = machine.freq() // 1000000
    except Exception:
        pass
    try:
        import esp

        info["flash_bytes"] = esp.flash_size()
    except Exception:
        pass
    try:
        s = os.statvfs("/")
        info["fs_free"] = s[0] * s[3]
        info["fs_total"] = s[0] * s[2]
    except Exception:
        pass
    return info


def _where(mod):
    """frozen / a file on the flash (its path) / built-in, from the module's __file__: frozen
    modules carry their path inside the image ("firmware/__init__.py"), which is no file."""
    f = getattr(mod, "__file__", None)
    if f is None:
        return "built-in"
    try:
        os.stat(f)
        return f if f.startswith("/") else "/" + f
    except OSError:
        return "frozen"


def _file_of(name):
    """The file an import of `name` would load from the file system, or None (frozen or absent)."""
    rel = name.replace(".", "/")
    for entry in sys.path:
        if entry == ".frozen":
            continue
        base = (entry.rstrip("/") + "/" if entry else "") + rel
        for tail in (".py", ".mpy", "/__init__.py", "/__init__.mpy"):
            try:
                os.stat(base + tail)
                return base + tail
            except OSError:
                pass
    return None


def _modules():
    out = {}
    for name in ("firmware", "protocol"):  # a frozen copy would shadow the deployed /lib one
        try:
            out[name] = {"where": _where(__import__(name))}
        except ImportError as e:
            path = _file_of(name)
            if path is None and name in str(e):
                out[name] = {"where": "missing"}
            else:  # it is there but does not load on this port (a module it needs is missing)
                out[name] = {"where": path or "frozen", "error": str(e)}
    # umqtt: only for information. The firmware has its own MQTT client and never imports it;
    # importing it here would put an unused module into the heap this check measures. A stock
    # image freezes it (help('modules') lists it: the tool reads that); a file is a copy an
    # older deploy installed.
    for name in ("umqtt.simple", "umqtt.robust"):
        out[name] = {"file": _file_of(name)}
    return out


def _step(fm, panel, hal):
    fm.loop(panel, hal, max_steps=1)  # one step and the LOOP_MS sleep, as the main loop does


def _wait(fm, panel, hal, online, timeout_ms):
    """ms until panel.link.online == online, or None after timeout_ms."""
    t0 = time.ticks_ms()
    while bool(panel.link.online) != online:
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            return None
        _step(fm, panel, hal)
    return time.ticks_diff(time.ticks_ms(), t0)


def _link(panel):
    link = panel.link
    out = {}
    for name in ("connects", "conn", "published", "resends", "ack_timeouts", "last_error"):
        v = getattr(link, name, None)
        out[name] = v if v is None or isinstance(v, (int, str)) else repr(v)
    return out


def _remove_all(d):
    """Remove folder d and the files in it (absent is fine)."""
    try:
        names = os.listdir(d)
    except OSError:
        return
    for name in names:
        os.remove(d + "/" + name)
    os.rmdir(d)


def _journal_appends(d, n):
    """Time n appends to a journal of its own in folder d (the panel's is not touched), then
    remove it."""
    from firmware import journal

    try:
        os.mkdir(d)
    except OSError:
        pass
    times = []
    try:
        j = journal.Journal(journal.OsFs(), prefix=d + "/j", capacity=max(n * 2, 64))
        for i in range(n):
            payload = journal.pack_event(1, i * 1000, None, "yes")
            t0 = time.ticks_us()
            j.append(payload)
            times.append(time.ticks_diff(time.ticks_us(), t0))
    finally:
        _remove_all(d)
    times.sort()
    return {"n": n, "min_us": times[0], "median_us": times[n // 2], "max_us": times[-1], "all_us": times}


class _Restart(Exception):
    """The firmware asked for its restart (hal.restart): the run ends, the tool soft-resets."""


def _restart():
    raise _Restart()


class _Paths:
    def __init__(self, root, config):
        self.config = config or root + "config.json"
        here = self.config[: self.config.rfind("/") + 1]  # firmware/boot.py keeps these beside it
        self.files = {"remote.json": here + "remote.json", "config.json.ok": self.config + ".ok"}
        self.remote_new = here + "remote.new"
        self.dir = root + CHECK_DIR


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _write(path, data):
    with open(path + ".tmp", "wb") as f:  # write-then-rename, as the firmware keeps its files
        f.write(data)
    os.rename(path + ".tmp", path)


def _set_aside(paths, ver):
    """Copy the files a config message changes into the check's folder; "saved.json", written
    last, says which existed (and that the copies are complete)."""
    try:
        os.mkdir(paths.dir)
    except OSError:
        pass
    had = {}
    for name in SAVED:
        data = _read(paths.files[name])
        had[name] = data is not None
        if data is not None:
            _write(paths.dir + "/" + name, data)
    had["ver"] = ver
    _write(paths.dir + "/saved.json", json.dumps(had).encode())


def _put_back(paths):
    """The panel's files as they were before the config message (a matching /config.json.ok:
    the next boot needs no check); the saved info, or None when nothing was set aside."""
    info = _read(paths.dir + "/saved.json")
    if info is not None:
        info = json.loads(info)
        for name in SAVED:
            if info[name]:
                _write(paths.files[name], _read(paths.dir + "/" + name))
            else:
                try:
                    os.remove(paths.files[name])
                except OSError:
                    pass
        try:
            os.remove(paths.remote_new)  # a message the firmware kept but never checked
        except OSError:
            pass
    _remove_all(paths.dir)
    return info


def _boot(fm, args, paths, root):
    """firmware.main.boot() on a HAL whose restart ends the run: (panel, hal, ms, restarted)."""
    make = args.get("hal")

    def factory(pins):
        if make is not None:
            hal = make(pins)
        else:
            from firmware.hal import Hal

            hal = Hal(pins, root=root)
        hal.restart = _restart  # on this HAL object only
        return hal

    t0 = time.ticks_ms()
    try:
        panel, hal = fm.boot(factory, paths.config, max_ms=3000)
    except _Restart:
        return None, None, time.ticks_diff(time.ticks_ms(), t0), True
    return panel, hal, time.ticks_diff(time.ticks_ms(), t0), False


def _connect_and_drop(fm, panel, hal, args):
    took = _wait(fm, panel, hal, True, args.get("connect_s", 60) * 1000)
    _say("connect", {"ms": took, "timeout_s": args.get("connect_s", 60), "link": _link(panel)})
    if took is None:
        return
    _say("heap_connected", _heap())
    if not args.get("drop", True):
        _say("reconnect", {"skipped": "--no-drop"})
        return
    hal.wifi_disconnect()  # what a technician can provoke: the panel's own Wi-Fi leaves the AP
    t0 = time.ticks_ms()
    down = _wait(fm, panel, hal, False, 30000)
    back = _wait(fm, panel, hal, True, 180000) if down is not None else None
    total = time.ticks_diff(time.ticks_ms(), t0) if back is not None else None
    _say("reconnect", {"noticed_ms": down, "back_ms": total, "link": _link(panel)})


def _config_message(fm, panel, hal, paths):
    """Hand the panel a config message as its link does when one arrives: the remote config in
    force with the next version number (nothing changes but the version). The firmware keeps it
    in /remote.new and restarts at a quiet moment; the heap is measured while it waits. -> the
    next stage, or None when the firmware did not restart (the files are then put back here)."""
    current = panel.cfg.get("remote") or {}
    msg = {}
    for k in current:
        msg[k] = current[k]
    msg["v"] = 1
    msg["ver"] = (current.get("ver") or 0) + 1
    if len(msg) == 2:
        msg["heartbeat_s"] = panel.cfg["timings"]["heartbeat_s"]
    _set_aside(paths, msg["ver"])
    panel.link.on_config(json.dumps(msg).encode())
    result = {"ver": msg["ver"], "kept": _read(paths.remote_new) is not None, "restart_ms": None}
    _say("heap_config", _heap())
    t0 = time.ticks_ms()
    try:
        while time.ticks_diff(time.ticks_ms(), t0) < RESTART_WAIT_MS:
            _step(fm, panel, hal)
    except _Restart:
        result["restart_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    if result["restart_ms"] is None:
        result["error"] = panel.cfg_err or "no restart within %d s" % (RESTART_WAIT_MS // 1000)
    _say("config", result)
    return "check_config" if result["restart_ms"] is not None else None


def _rearm(args):
    import machine

    machine.WDT(timeout=args.get("budget_s", 900) * 1000).feed()  # boot() armed the app's 30 s


def _measure(args, paths, root):
    _say("system", _system())
    _say("heap_bare", _heap())
    # built-in and frozen modules as help() lists them (frozen packages as "umqtt/simple"); only
    # firmware and protocol are imported: importing others could run their code (_boot remounts
    # the flash, webrepl_setup asks questions) or hold heap the firmware does not
    print("CHECK-HELP-MODULES-BEGIN")
    help("modules")
    print("CHECK-HELP-MODULES-END")
    _say("modules", _modules())
    left = _put_back(paths)  # a check that was cut off after its config message
    if left is not None:
        _say("put_back", {"ver": left["ver"]})
    import firmware.main as fm

    panel, hal, ms, restarted = _boot(fm, args, paths, root)
    if restarted:  # a changed /config.json was checked and kept: measure the boot after it
        _say("boot_checked", {"ms": ms})
        return "measure"
    if panel is None:
        _say("boot", {"error": "the panel's /config.json is invalid (see the CONFIG ERROR lines above)"})
        return None
    _say("boot", {"ms": ms, "state": panel.state()})
    _say("heap_boot", _heap())
    _connect_and_drop(fm, panel, hal, args)
    _say("journal", _journal_appends(paths.dir, args.get("appends", 20)))
    panel.hal.wdt_feed()  # as the main loop would between its steps (the appends took a while)
    import machine

    state = panel.state()
    state["link"] = _link(panel)
    state["reset_cause"] = machine.reset_cause()
    _say("counters", state)
    return _config_message(fm, panel, hal, paths)


def _check_config(args, paths, root):
    bare = _heap()["gc_alloc"]
    import firmware.main as fm

    panel, _hal, ms, restarted = _boot(fm, args, paths, root)
    _say("config_check", {"ms": ms, "restart": restarted})
    if restarted:  # the heap with the checking code's names, which the restart drops
        _say("heap_config_check", _heap(bare))
        return "new_config"
    if panel is None:
        return None
    return _new_config(args, panel, bare, paths)  # no restart: a flash that cannot keep it


def _new_config(args, panel, bare, paths):
    panel.hal.wdt_feed()  # boot() armed the app's watchdog
    _say("heap_new_config", _heap(bare))
    _rearm(args)
    info = _put_back(paths) or {}
    remote = panel.cfg.get("remote") or {}
    applied = remote.get("ver") == info.get("ver")
    _say("config_applied", {"ver": info.get("ver"), "applied": applied, "error": panel.cfg_err, "put_back": True})
    return None


def _boot_new_config(args, paths, root):
    bare = _heap()["gc_alloc"]
    import firmware.main as fm

    panel, _hal, _ms, restarted = _boot(fm, args, paths, root)
    if panel is None:
        _say("config_applied", {"error": "the boot restarted again" if restarted else "the config is invalid"})
        return None
    return _new_config(args, panel, bare, paths)


STAGES = {"measure": _measure, "check_config": _check_config, "new_config": _boot_new_config}


def run(args):
    root = args.get("root", "/")
    paths = _Paths(root, args.get("config"))
    nxt = None
    try:
        nxt = STAGES[args.get("stage", "measure")](args, paths, root)
    except Exception as e:
        sys.print_exception(e)
        _say("failed", {"error": repr(e)})
    if nxt is None:  # the last run: the panel's files as they were, a long watchdog until the reset
        try:
            _put_back(paths)
        except Exception as e:
            _say("failed", {"error": "putting the panel's files back: %r" % e})
    _rearm(args)
    _say("end", {"next": nxt} if nxt else {})


run(globals().get("CHECK_ARGS") or {})
