"""A panel running past 2**30 ms (12.4 days) on a 32-bit MicroPython VM (the WebAssembly port:
small ints end at 2**30 - 1 as on the ESP32), tests/mpy_cases/fw_uptime_wasm32.py: its step
times stay small ints (firmware/rebase.py), so the idle steps make no long-int garbage, and its
events still carry the real uptime. A control panel without the rebase allocates at every step.
"""

import os
import shutil
import subprocess

import pytest
from device_standin.standin import StandinUnavailable, ensure_vm
from mpy_support import CASES_DIR, MPY_DIR

RUNNER = os.path.join(CASES_DIR, "wasm_run.mjs")
SCRIPT = os.path.join(CASES_DIR, "fw_uptime_wasm32.py")


@pytest.fixture(scope="module")
def vm():
    if not shutil.which("node"):
        pytest.skip("node not found (the 32-bit MicroPython VM is the npm WebAssembly port)")
    try:
        return ensure_vm()
    except StandinUnavailable as exc:
        pytest.skip(str(exc))


def _fields(line):
    return dict(kv.split("=") for kv in line.split()[2:])


@pytest.mark.e2e
def test_fw_step_times_stay_small_ints_past_2_30_ms_on_32_bit(vm, bundle_lib):
    proc = subprocess.run(
        ["node", RUNNER, vm, "400000", SCRIPT, bundle_lib + "=/lib", MPY_DIR + "=/fakes", "=/data"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    panel = {line.split()[1]: _fields(line) for line in lines if line.startswith("PANEL ")}
    event = {line.split()[1]: _fields(line) for line in lines if line.startswith("EVENT ")}
    print("\n" + "\n".join(line for line in lines if line.startswith(("PANEL", "EVENT"))))
    rebased, control = panel["rebased"], panel["control"]
    assert int(rebased["up"]) > 2**30 and int(rebased["step_up"]) < 2**28, rebased
    assert int(control["step_up"]) > 2**30, control  # the control really ran on long ints
    # 300 idle steps: almost nothing (an LED redraw, a look at the Wi-Fi driver) where the
    # control allocates at every step
    assert int(rebased["garbage"]) < 300 * 4, rebased
    assert int(control["garbage"]) > 300 * 16, control
    # the event carries the real uptime, past 2**30, as the control's does
    for name in ("rebased", "control"):
        e = event[name]
        assert e["ev"] == "yes" and int(e["up"]) > 2**30, e
        assert abs(int(e["up"]) - int(e["expected"])) <= 20, e
