"""The firmware bundle (`make firmware`, technician/bundle.py)."""

import json
import os

import pytest

from technician import bundle


@pytest.mark.e2e
def test_the_bundle_ships_the_firmwares_own_example_config(fw_bundle):
    with open(os.path.join(bundle.REPO, "firmware", "config.example.json"), "rb") as f:
        firmware_example = f.read()
    with open(os.path.join(fw_bundle, "config.example.json"), "rb") as f:
        assert f.read() == firmware_example  # one source: no copy of its own in technician/
    manifest = json.load(open(os.path.join(fw_bundle, "manifest.json")))
    assert "config.example.json" in manifest["files"]
