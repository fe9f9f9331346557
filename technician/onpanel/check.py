# pyright: reportAttributeAccessIssue=false, reportMissingImports=false, reportMissingModuleSource=false
# Run on the panel by `rating device check` (after a soft reset: a fresh heap), or on the
# MicroPython unix port by the tests. It measures what the test VMs cannot: the heap on the
# board's own memory layout (gc and the ESP-IDF heap) after boot, after connecting and after a
# config message, how long a journal append takes on the board's flash, how long the panel takes
# to come back after a Wi-Fi drop, which modules the image freezes (a frozen module shadows
# /lib), and the MicroPython version and chip. It prints one line per finding:
#     CHECK <key> <json>
# then "CHECK end {}" (technician/check.py reads them). It boots the deployed firmware exactly
# as /main.py does (firmware.main.boot()), steps it as the main loop does, and restores
# /remote.json after the config message; the tool resets the panel afterwards.
#
# Settings: a dict CHECK_ARGS defined before this file runs (the tool sends it first):
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


def _say(key, value):
    print("CHECK %s %s" % (key, json.dumps(value)))


def _heap():
    gc.collect()
    h = {"gc_free": gc.mem_free(), "gc_alloc": gc.mem_alloc()}
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
    modules carry their path inside the image ("umqtt/simple.py"), which is no file."""
    f = getattr(mod, "__file__", None)
    if f is None:
        return "built-in"
    try:
        os.stat(f)
        return f if f.startswith("/") else "/" + f
    except OSError:
        return "frozen"


def _umqtt_version(mod):
    """umqtt.simple carries no version: tell the releases apart by what changed between them
    (micropython-lib: 1.4.0 made ssl an SSLContext and dropped ssl_params, 1.6.0 brought
    ssl_params back with connect(timeout=...), 1.7.0 added unsubscribe)."""
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    cls = mod.MQTTClient
    if hasattr(cls, "unsubscribe"):
        return ">=1.7.0"
    c = cls("rating-check", "127.0.0.1")  # no I/O before connect()
    if c.ssl is False:
        return "<=1.3.4"
    if not hasattr(c, "ssl_params"):
        return "1.4.0-1.5.0"
    return "1.6.x"


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
    for name in ("umqtt.simple", "umqtt.robust", "firmware", "protocol"):
        try:
            mod = __import__(name)
            for part in name.split(".")[1:]:
                mod = getattr(mod, part)
        except ImportError as e:
            path = _file_of(name)
            if path is None and name.split(".")[-1] in str(e):
                out[name] = {"where": "missing"}
            else:  # it is there but does not load on this port (a module it needs is missing)
                out[name] = {"where": path or "frozen", "error": str(e)}
            continue
        entry = {"where": _where(mod)}
        if name == "umqtt.simple":
            try:
                entry["version"] = _umqtt_version(mod)
            except Exception as e:
                entry["version"] = "unknown (%s)" % e
        out[name] = entry
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


def _journal_appends(root, n):
    """Time n appends to a journal of its own (the panel's is not touched), then remove it."""
    from firmware import journal

    d = root + "rating-check"
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
        for name in os.listdir(d):
            os.remove(d + "/" + name)
        os.rmdir(d)
    times.sort()
    return {"n": n, "min_us": times[0], "median_us": times[n // 2], "max_us": times[-1], "all_us": times}


class _Restart(Exception):
    pass


def _restart():
    raise _Restart()


def _config_message(panel, hal):
    """Hand the panel a config message as its link does when one arrives (the config in force
    with the next version number: nothing changes but the version), measure the heap, then put
    /remote.json back as it was. A firmware that restarts to apply a config is stopped at the
    restart (hal.reset), which is where its heap is measured."""
    path = hal.path("remote.json")
    try:
        with open(path) as f:
            saved = f.read()
    except OSError:
        saved = None
    current = panel.cfg.get("remote") or {}
    msg = {}
    for k in current:
        msg[k] = current[k]
    msg["v"] = 1
    msg["ver"] = (current.get("ver") or 0) + 1
    if len(msg) == 2:
        msg["heartbeat_s"] = panel.cfg["timings"]["heartbeat_s"]
    result = {"ver": msg["ver"], "restart": False}
    hal.reset = _restart  # on this HAL object only
    try:
        panel.link.on_config(json.dumps(msg).encode())
    except _Restart:
        result["restart"] = True
    finally:
        heap = _heap()
        if saved is None:
            try:
                os.remove(path)
            except OSError:
                pass
        else:
            with open(path, "w") as f:
                f.write(saved)
    remote = panel.cfg.get("remote") or {}
    result["applied"] = remote.get("ver") == msg["ver"]
    result["error"] = panel.cfg_err
    return heap, result


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


def main(args):
    import machine

    _say("system", _system())
    _say("heap_bare", _heap())
    # built-in and frozen modules as help() lists them (frozen packages as "umqtt/simple"); only
    # the modules named in _modules() are imported: importing others could run their code
    # (_boot remounts the flash, webrepl_setup asks questions)
    print("CHECK-HELP-MODULES-BEGIN")
    help("modules")
    print("CHECK-HELP-MODULES-END")
    _say("modules", _modules())
    import firmware.main as fm

    root = args.get("root", "/")
    hal_factory = args.get("hal")
    if hal_factory is None and root != "/":

        def hal_factory(pins):
            from firmware.hal import Hal

            return Hal(pins, root=root)

    t0 = time.ticks_ms()
    panel, hal = fm.boot(hal_factory, args.get("config"), max_ms=3000)
    if panel is None:
        _say("boot", {"error": "the panel's /config.json is invalid (see the CONFIG ERROR lines above)"})
        return
    _say("boot", {"ms": time.ticks_diff(time.ticks_ms(), t0), "state": panel.state()})
    _say("heap_boot", _heap())
    _connect_and_drop(fm, panel, hal, args)
    _say("journal", _journal_appends(root, args.get("appends", 20)))
    heap, result = _config_message(panel, hal)
    _say("heap_config", heap)
    _say("config", result)
    state = panel.state()
    state["link"] = _link(panel)
    state["reset_cause"] = machine.reset_cause()
    _say("counters", state)
    machine.WDT(timeout=args.get("budget_s", 900) * 1000).feed()  # boot() armed the app's 30 s


def run(args):
    try:
        main(args)
    except Exception as e:
        sys.print_exception(e)
        _say("failed", {"error": repr(e)})
    _say("end", {})


run(globals().get("CHECK_ARGS") or {})
