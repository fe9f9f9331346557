# pyright: reportAttributeAccessIssue=false
# Run on the panel by `rating device deploy` (mpremote run): what is on its flash. Prints one
# line, "RATING-PROBE <json>": the sha256 of every file in the folders a deploy writes (/main.py,
# /lib/firmware, /lib/protocol, and /lib/umqtt that older deploys wrote), which of those folders exist, the manifest of the
# last deploy, /config.json, the root listing, whether Wi-Fi is up and the free flash. A file,
# not a command line: no temporary file on the laptop, and `--dry-run` shows what runs.
import json
import os
import sys

OWNED = ("lib", "lib/firmware", "lib/protocol", "lib/umqtt")


def _hash(path):
    try:
        import binascii
        import hashlib

        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(512)
                if not b:
                    break
                h.update(b)
        return binascii.hexlify(h.digest()).decode()
    except OSError:
        return None


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def probe():
    o = {
        "machine": sys.implementation._machine,
        "version": list(sys.implementation.version)[:3],
        "mpy": getattr(sys.implementation, "_mpy", None),
    }
    files = {"main.py": _hash("/main.py")}
    dirs = []
    for d in OWNED:
        if _is_dir("/" + d):
            dirs.append(d)
            if d != "lib":
                for name in os.listdir("/" + d):
                    files[d + "/" + name] = _hash("/" + d + "/" + name)
    o["files"] = files
    o["dirs"] = dirs
    o["manifest"] = _read("/rating-manifest.json")
    o["config"] = _read("/config.json")
    o["root"] = sorted(os.listdir("/"))
    try:
        import network

        o["online"] = network.WLAN(network.STA_IF).isconnected()
    except Exception:
        o["online"] = False
    try:
        s = os.statvfs("/")
        o["free"] = s[0] * s[3]
    except Exception:
        o["free"] = None
    print("RATING-PROBE " + json.dumps(o))


probe()
