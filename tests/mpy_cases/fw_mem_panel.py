# Second half of fw_mem_report.py (imported by it, with the same argv): build the Panel as
# firmware.main does - config.load, unload the boot-only modules, Hal, Panel - and print
#   OBJ <what> <bytes>   heap its objects hold (offline: no broker; the connected figure is
#                        tests/firmware/test_panel_on_micropython.py's)
#   LOADED <modules>     the firmware/protocol/umqtt modules still in sys.modules
import gc
import json
import sys

from firmware import config, unload


def _held():
    gc.collect()
    return gc.mem_alloc()


DATA = sys.argv[2]
TEXT = json.dumps({"site": "s1", "device": "p1", "wifi": {"ssid": "shop"}, "mqtt": {"host": "127.0.0.1"}})
cfg = config.load(TEXT)
before = _held()
spare = config.load(TEXT)  # a second one, just to weigh it
print("OBJ cfg %d" % (_held() - before))
del spare, config
unload("firmware.config", "protocol.topics", "protocol.config", "protocol.checks")

from firmware.app import Panel  # noqa: E402
from firmware.hal import Hal  # noqa: E402

before = _held()
hal = Hal(cfg["pins"], root=DATA)
print("OBJ hal %d" % (_held() - before))
before = _held()
panel = Panel(hal, cfg)
print("OBJ panel %d" % (_held() - before))
print("LOADED " + " ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("firmware", "protocol", "umqtt"))))
for name in ("link", "journal", "buttons", "ui", "uptime", "wall", "ntp"):
    before = _held()
    setattr(panel, name, None)  # link first: it holds journal.ack
    print("OBJ panel.%s %d" % (name, before - _held()))
