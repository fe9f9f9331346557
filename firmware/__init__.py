"""Panel firmware (MicroPython, ESP32); see README.md."""

import sys

# `from firmware import const` for the modules: X = const(3) makes mpy-cross put the number into
# the bytecode (a name with a leading underscore is then not even interned); CPython (simulator,
# tests) just gets the int.
try:
    import micropython

    const = micropython.const
    del micropython
except ImportError:
    const = int


# On MicroPython a loaded module's names stay interned for good (firmware/README.md, "Heap"):
# the panel restarts rather than keep the config-checking code's names (app.Panel, main.boot).
MPY = sys.implementation.name == "micropython"
# 31-bit small ints (the ESP32, any 32-bit port): a number past 2**30 - 1 is a heap object
SMALL_INTS = getattr(sys, "maxsize", 1 << 63) < (1 << 32)


def unload(*names):
    """Forget modules only needed now and then (config validation at boot and on a remote
    config) so the GC can free their code: ~9 KB for firmware.config on the unix port. A later
    import loads them again. Only on MicroPython: under CPython a second module object would
    confuse isinstance() and module-level state."""
    if not MPY:
        return
    for name in names:
        if sys.modules.pop(name, None) is not None:
            pkg, _, attr = name.rpartition(".")
            parent = sys.modules.get(pkg)
            if parent is not None and attr in parent.__dict__:
                delattr(parent, attr)
