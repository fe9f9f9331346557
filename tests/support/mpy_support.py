"""Run code under the MicroPython unix port from CPython tests.

    from mpy_support import run_micropython, check_mpy_cases

    proc = run_micropython("print(1)")                    # a code string
    proc = run_micropython("/path/to/script.py", args=("x",))  # a file
    check_mpy_cases("tests/mpy_cases/journal_cases.py")   # mpytest runner; fails with its output

The VM is `.venv/bin/micropython` next to the running interpreter. MICROPYPATH is the repo root
(so `import protocol`, `import firmware` work as on the device), then tests/mpy (fakes of
`machine`/`network`, `install_fakes`, `mpytest`), then `path_extra`.
A file's own folder comes first on sys.path, as MicroPython always does.
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
REPO = os.path.dirname(HERE)
MPY_DIR = os.path.join(HERE, "mpy")
CASES_DIR = os.path.join(HERE, "mpy_cases")


def _tool(name):
    """A tool installed in the venv of the running interpreter (fall back to the repo .venv, PATH)."""
    for folder in (os.path.dirname(sys.executable), os.path.join(REPO, ".venv", "bin")):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return shutil.which(name)


def micropython_binary():
    return _tool("micropython")


def mpy_cross_binary():
    return _tool("mpy-cross")


def micropypath(path_extra=()):
    return os.pathsep.join([REPO, MPY_DIR] + [str(p) for p in path_extra])


def run_micropython(script, *, heapsize="100k", path_extra=(), timeout=60, args=(), cwd=None):
    """Run `script` (a .py file path, or code text) under MicroPython; return the CompletedProcess.

    stdout/stderr are captured as text. Never raises on a non-zero exit: check `.returncode`.
    `heapsize` mimics the RAM left on an ESP32 after Wi-Fi/MQTT (100k default).
    """
    binary = micropython_binary()
    if not binary:
        raise RuntimeError("MicroPython unix port not found; run `make test` to bootstrap .venv")
    script = str(script)
    cmd = [binary, "-X", "heapsize=%s" % heapsize]
    if "\n" not in script and script.endswith(".py") and os.path.exists(script):
        cmd.append(script)
    else:
        cmd += ["-c", script]
    cmd += [str(a) for a in args]
    env = dict(os.environ)
    env["MICROPYPATH"] = micropypath(path_extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd or REPO)


def check_mpy_cases(cases, *, k=None, heapsize="100k", path_extra=(), timeout=60):
    """Run the test_* functions of a cases file under MicroPython via tests/mpy/mpytest.py.

    `cases` is a path or a bare name looked up in tests/mpy_cases ("journal_cases").
    Fails the calling pytest test with the VM's full output when any case fails.
    Returns the CompletedProcess on success.
    """
    path = str(cases)
    if not os.path.exists(path):
        name = path if path.endswith(".py") else path + ".py"
        path = os.path.join(CASES_DIR, name)
    args = [path] + (["-k", k] if k else [])
    proc = run_micropython(
        os.path.join(MPY_DIR, "mpytest.py"), heapsize=heapsize, path_extra=path_extra, timeout=timeout, args=args
    )
    if proc.returncode != 0:
        raise AssertionError(
            "MicroPython cases %s failed (exit %d):\n%s\n%s"
            % (os.path.basename(path), proc.returncode, proc.stdout, proc.stderr)
        )
    return proc
