"""A tiny test runner for MicroPython (no pytest there).

    micropython tests/mpy/mpytest.py tests/mpy_cases/journal_cases.py [-k substring] [--list]

Imports the cases file as a module, runs every function named test_* (sorted by name, since
MicroPython module dicts are unordered), prints one line per failure with its traceback, then
"N passed, M failed" and exits 1 on any failure or when no test ran (a silent no-op must not pass).
Before each test the machine/network fakes are reset (if installed) and the module's setup()
runs if it has one; teardown() runs after, even on failure.

Helpers for cases files: `raises(ExcType, fn, *args, **kw)` returns the exception or fails;
`make_tmp(prefix)` makes a fresh folder under /tmp and `remove_tmp(path)` empties and removes
it (flat: the journal's files).
From CPython use tests/mpy_support.check_mpy_cases("journal_cases").
"""

import sys


def raises(exc_type, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised by %s" % (exc_type.__name__, getattr(fn, "__name__", fn)))


def make_tmp(prefix):
    import os

    path = "/tmp/%s-%d" % (prefix, int.from_bytes(os.urandom(4), "little"))
    os.mkdir(path)
    return path


def remove_tmp(path):
    import os

    for name in os.listdir(path):
        os.remove(path + "/" + name)
    os.rmdir(path)


def _reset_fakes():
    fakes = sys.modules.get("install_fakes")
    if fakes:
        fakes.reset()


def run(module, pattern=None, out=print):
    names = sorted(n for n in dir(module) if n.startswith("test_") and (pattern is None or pattern in n))
    passed = failed = 0
    setup = getattr(module, "setup", None)
    teardown = getattr(module, "teardown", None)
    for name in names:
        fn = getattr(module, name)
        if not callable(fn):
            continue
        _reset_fakes()
        try:
            if setup:
                setup()
            try:
                fn()
            finally:
                if teardown:
                    teardown()
            passed += 1
        except Exception as e:  # report and go on: one run shows every failure
            failed += 1
            out("FAIL %s: %r" % (name, e))
            sys.print_exception(e)
    out("%d passed, %d failed" % (passed, failed))
    return passed, failed


def _import_path(path):
    """Import a .py file by path: put its folder first on sys.path, import its stem."""
    slash = path.rfind("/")
    folder, base = (path[:slash], path[slash + 1 :]) if slash >= 0 else (".", path)
    if base.endswith(".py"):
        base = base[:-3]
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return __import__(base)


def main(argv):
    if len(argv) < 2:
        print("usage: mpytest.py CASES.py [-k substring] [--list]")
        sys.exit(2)
    module = _import_path(argv[1])
    pattern = None
    if "-k" in argv:
        pattern = argv[argv.index("-k") + 1]
    if "--list" in argv:
        for n in sorted(dir(module)):
            if n.startswith("test_"):
                print(n)
        return
    passed, failed = run(module, pattern)
    if failed or not passed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
