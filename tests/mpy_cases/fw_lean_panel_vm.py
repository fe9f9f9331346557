# Review of the lean panel (kept config, _applied), on the REAL MicroPython VM (unix port), run
# by tests/firmware/test_lean_panel_checks.py:
#
#   micropython fw_lean_panel_vm.py LIB DIR MODE
#
# LIB holds the firmware/ and protocol/ the boot runs (a copy the test may change); DIR the flash.
# MODE "boot": boot.start() on DIR/config.json; prints CFG <json or None>.
# MODE "config": a Panel on DIR gets a retained config json.loads cannot hold (deep nesting:
# MemoryError on MicroPython); prints RAISED <exception or None>, CFG_ERR <text> and
# RESTART_DUE <up or None> (a new config is kept for the next boot to check).
import sys

LIB, DIR, MODE = sys.argv[1:4]
DEEP = b"[" * 6000  # made first, while the heap is in one piece
sys.path.insert(0, LIB)

import json  # noqa: E402

import fake_network  # noqa: E402
import install_fakes  # noqa: F401,E402

import firmware  # noqa: E402

assert firmware.__file__.startswith(LIB), firmware.__file__
from firmware import boot  # noqa: E402

cfg = boot.start(lambda pins: None, DIR + "/config.json", log=lambda line: None, max_ms=200)
if MODE == "boot":
    print("CFG", json.dumps(cfg))
else:
    import gc  # noqa: E402

    # as firmware.main.boot() does between the config check and the Panel's imports: collect from
    # this shallow frame. A collection the imports below force deep in their own frames scans
    # stale stack words that can still point at the unloaded config code and keep it; whether it
    # does depends on where the heap happens to fill (with the fakes of the day this script ran
    # out at 180-210k and passed at 150k and 220k).
    gc.collect()
    from firmware.app import Panel  # noqa: E402
    from firmware.hal import Hal  # noqa: E402

    fake_network.connected = True
    panel = Panel(Hal(cfg["pins"], root=DIR + "/"), cfg)
    link = panel.link
    raised = None
    try:
        link._on_message(link.t_config.encode(), DEEP)  # as the client delivers it
    except Exception as e:
        raised = repr(e)
        sys.print_exception(e)
    print("RAISED", raised)
    print("CFG_ERR", panel.cfg_err)
    print("RESTART_DUE", panel.restart_due)
