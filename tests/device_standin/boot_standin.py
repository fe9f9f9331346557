# Run by bridge.mjs after a hard reset, in place of /main.py: the panel firmware's main loop
# needs sockets (Wi-Fi, MQTT) the WebAssembly VM does not have, and would never return. This
# imports the deployed firmware from the VM's own flash and validates /config.json with the
# firmware's own code, then reports what it found to the test (events.jsonl).
def _standin_boot():
    import json
    import os

    import _standin

    try:
        os.stat("/main.py")
    except OSError:
        print("standin: no /main.py (nothing deployed)")
        return
    try:
        from firmware import config
        from firmware.version import FW

        with open("/config.json") as f:
            cfg = config.load(f.read())
    except Exception as e:
        print("standin: firmware did not start: %r" % (e,))
        _standin.booted(json.dumps({"ok": False, "error": repr(e)}))
        return
    # firmware.main.boot() starts the watchdog once the Panel exists, and the main loop feeds
    # it until a Ctrl-C stops the app (the bridge plays the feeding: the app "runs" until then)
    try:
        from firmware.app import Panel

        wdt_ms = Panel.WDT_MS
    except Exception:
        wdt_ms = 30000
    import machine

    machine.WDT(timeout=_standin.appWatchdogMs() or wdt_ms)
    m = cfg["mqtt"]
    print("standin: firmware %s imported, /config.json valid for %s/%s" % (FW, cfg["site"], cfg["device"]))
    _standin.booted(
        json.dumps(
            {
                "ok": True,
                "fw": FW,
                "site": cfg["site"],
                "device": cfg["device"],
                "root": m["root"],
                "host": m["host"],
                "port": m["port"],
            }
        )
    )


_standin_boot()
del _standin_boot
