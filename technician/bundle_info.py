"""Reading a `make firmware` bundle (build/firmware/manifest.json) and deciding what to copy.

Pure functions over manifests and hashes; the device side is asked in deploy.py.
"""

import json
import os

from technician.errors import DeviceError
from technician.i18n import _

DEVICE_MANIFEST = "rating-manifest.json"  # the bundle's manifest as last deployed, on the panel
NOT_COPIED = ("config.example.json", "manifest.json")
OWNED_PREFIXES = ("lib/firmware/", "lib/protocol/")  # stale files here are ours to remove
# Files older bundles put on the panel outside those folders: fw 0.1.0 installed umqtt.simple,
# which the firmware no longer imports (it has its own MQTT client). Removed when the panel's
# last manifest lists it, i.e. when a deploy of ours put it there.
RETIRED = ("lib/umqtt/simple.mpy",)
MPY_MAJOR = 6  # .mpy format of mpy-cross 1.22+ (MicroPython >= 1.22)


def load(bundle_dir):
    path = os.path.join(bundle_dir, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise DeviceError(
            _(
                "no firmware bundle in %s (manifest.json missing). Build it with "
                "`make firmware`, or pass --bundle FOLDER."
            )
            % bundle_dir
        ) from None
    except ValueError as exc:
        raise DeviceError(
            _("%(path)s is not valid JSON (%(error)s); rebuild with `make firmware`.") % {"path": path, "error": exc}
        ) from None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise DeviceError(_("%s lists no files; rebuild with `make firmware`.") % path)
    for rel in files:
        if rel not in NOT_COPIED and not os.path.exists(os.path.join(bundle_dir, rel)):
            raise DeviceError(
                _("bundle file %(file)s is missing from %(folder)s; rebuild with `make firmware`.")
                % {"file": rel, "folder": bundle_dir}
            )
    return manifest


def deployable(manifest):
    """Relative paths that go onto the panel."""
    return sorted(p for p in manifest["files"] if p not in NOT_COPIED)


def changed(manifest, device_hashes):
    """Files whose sha256 on the panel differs from the bundle's (missing counts as differing)."""
    return [p for p in deployable(manifest) if device_hashes.get(p) != manifest["files"][p]]


def stale(old_manifest, manifest):
    """Our modules a previous deploy put on the panel that this bundle no longer has."""
    if not old_manifest:
        return []
    old = old_manifest.get("files") or {}
    return sorted(p for p in old if (p.startswith(OWNED_PREFIXES) or p in RETIRED) and p not in manifest["files"])


def emptied(stale_paths, manifest):
    """Folders of removed files that no file of the bundle needs (lib/umqtt), deepest first:
    removed when empty."""
    keep = parents(deployable(manifest))
    return sorted((d for d in parents(stale_paths) if d not in keep), key=lambda d: -d.count("/"))


def parents(paths):
    """Every folder the paths need, parents first ('lib', 'lib/firmware', ...)."""
    out = []
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in out:
                out.append(d)
    return out
