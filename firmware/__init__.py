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


def unload(*names):
    """Forget modules only needed now and then (config validation at boot and on a remote
    config) so the GC can free their code: ~9 KB for firmware.config on the unix port. A later
    import loads them again. Only on MicroPython: under CPython a second module object would
    confuse isinstance() and module-level state."""
    if sys.implementation.name != "micropython":
        return
    for name in names:
        if sys.modules.pop(name, None) is not None:
            pkg, _, attr = name.rpartition(".")
            parent = sys.modules.get(pkg)
            if parent is not None and attr in parent.__dict__:
                delattr(parent, attr)
