# Where the panel's heap goes, measured on the real MicroPython VM (unix port, 64-bit).
#
#   MICROPYPATH=<repo>:<repo>/tests/mpy \
#       micropython -X heapsize=200k tests/mpy_cases/fw_mem_report.py [LIB [DATA_DIR]]
#
# LIB (optional) is a `make firmware` bundle's lib/ folder (`python -m technician.bundle
# OUT` -> OUT/lib): modules then load from .mpy exactly as on the panel; without it they are
# compiled from the repo's .py sources (the compiler's garbage is collected, but the .py path
# shows what the source costs).
#
# Each module is imported in the app's order after a gc.collect(); the line
#   MEM <module> <bytes held after import>
# is the growth of gc.mem_alloc() (after another gc.collect()) that the import added, i.e.
# that module's own code, constants and module-level objects (its dependencies were imported
# before it). Then
#   MEM_TOTAL <bytes>     everything the panel's start-up imports hold
#   qstr pool: ...        micropython.qstr_info(): n_qstr = names interned by then
# (tests/firmware/test_heap_budget.py runs this file and prints / checks the numbers). Per-module
# figures include the growth of shared tables they trigger (the interned-name pool and its
# doubling), so they shift a little with the import order; MEM_TOTAL does not.
# With DATA_DIR (an empty folder for the journal) it then builds a Panel (offline: no broker)
# and prints OBJ lines (what its objects hold) and LOADED (the modules left in sys.modules).
import gc
import sys

import install_fakes  # noqa: F401 - the firmware's hal imports machine/network
import micropython

if len(sys.argv) > 1 and sys.argv[1]:
    sys.path.insert(0, sys.argv[1])

# What a running panel holds, dependencies first (firmware.main runs the loop; firmware.mqtt
# loads with the first connect). BOOT_ONLY: imported by firmware.boot and
# dropped once the Panel runs (selftest only with Yes+No held at boot; messages never on the
# panel, measured for comparison).
PANEL = (
    "protocol",
    "protocol.panel",
    "firmware.version",
    "firmware.clock",
    "firmware.buttons",
    "firmware.journal",
    "firmware.ui",
    "firmware.link",
    "firmware.app",
    "firmware.hal",
    "firmware.mqtt",
    "firmware.main",
)
BOOT_ONLY = (
    "protocol.topics",
    "protocol.checks",
    "protocol.config",
    "protocol.messages",
    "firmware.config",
    "firmware.remote",
    "firmware.boot",
    "firmware.selftest",
    "firmware.ntp",
    "firmware.memfs",
)


def _held():
    gc.collect()
    return gc.mem_alloc()


def _import(name):
    try:
        __import__(name)
        return True
    except ImportError as e:
        if name.startswith("protocol.panel"):
            raise  # the panel's own protocol module must be there
        print("SKIP %s %s" % (name, e))
        return False


start = _held()
for name in PANEL:
    before = _held()
    if _import(name):
        print("MEM %s %d" % (name, _held() - before))
print("MEM_TOTAL %d" % (_held() - start))
micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=<names interned so far>, ..."
for name in BOOT_ONLY:
    before = _held()
    if _import(name):
        print("MEM_BOOT %s %d" % (name, _held() - before))
print("FREE %d" % gc.mem_free())

# Back to the panel's own set: what the boot unloads.
from firmware import unload  # noqa: E402

unload(*BOOT_ONLY)
if len(sys.argv) > 2:
    import fw_mem_panel  # noqa: F401 - the OBJ / LOADED part, below in its own file
