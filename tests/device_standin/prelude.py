# Run by bridge.mjs inside the WebAssembly VM at every boot, before the REPL starts.
# It makes the browser VM look like a panel to the tools: "/" is the flash folder, OSError
# numbers are MicroPython's, time.sleep* really sleep, and `machine`/`network` exist.
def _standin_prelude():
    import builtins
    import os
    import sys
    import time

    import _standin

    os.umount("/")
    os.mount(os.VfsPosix("/standin"), "/_standin")
    sys.path.insert(0, "/_standin")
    import machine  # noqa: F401  (fakes/machine.py; stays in sys.modules)
    import network  # noqa: F401

    sys.path.pop(0)
    os.umount("/_standin")
    os.mount(os.VfsPosix("/flash"), "/")
    os.chdir("/")

    # Emscripten errno -> MicroPython errno (what an ESP32 reports; mpremote maps these).
    remap = {
        44: 2,
        20: 17,
        54: 20,
        31: 21,
        28: 22,
        51: 28,
        8: 9,
        2: 13,
        63: 1,
        29: 5,
        69: 30,
        10: 16,
        75: 18,
        33: 24,
        55: 39,
    }

    def wrap(f):
        def call(*args):
            try:
                return f(*args)
            except OSError as e:
                raise OSError(remap.get(e.errno, e.errno))

        return call

    # VfsPosix.rename builds both host paths in one buffer (extmod/vfs_posix.c,
    # vfs_posix_get_path_str), so the second path overwrites the first and e.g.
    # os.rename("/config.json.tmp", "/config.json.ok") fails with ENOENT: the firmware could
    # never keep its checked config here. The board's littlefs renames fine: a copy does it here.
    real_open, real_stat, real_remove, real_rename = builtins.open, os.stat, os.remove, os.rename

    def rename(old, new):
        if real_stat(old)[0] & 0x4000:  # a folder: not copied (the firmware renames files only)
            return real_rename(old, new)
        with real_open(old, "rb") as f:
            data = f.read()
        with real_open(new, "wb") as f:
            f.write(data)
        real_remove(old)

    os.rename = rename
    if not hasattr(os, "urandom"):  # the ESP32's os has it (its hardware RNG); the browser VM not

        def urandom(n):
            import random

            return bytes(random.getrandbits(8) for _ in range(n))

        os.urandom = urandom

    for name in ("stat", "listdir", "ilistdir", "mkdir", "rmdir", "remove", "unlink", "rename", "chdir", "statvfs"):
        if hasattr(os, name):
            setattr(os, name, wrap(getattr(os, name)))
    builtins.open = wrap(builtins.open)

    def sleep_ms(ms):
        if _standin.sleep(int(ms)):  # the watchdog fired meanwhile: the board is gone
            raise SystemExit

    time.sleep_ms = sleep_ms
    time.sleep_us = lambda us: sleep_ms(int(us) // 1000)
    time.sleep = lambda s: sleep_ms(int(s * 1000))


_standin_prelude()
del _standin_prelude
