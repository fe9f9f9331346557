"""An idle panel does not keep the CPU busy (issue 11 item 7). On the ESP32 time.sleep_ms spins
for any part of a wait shorter than a FreeRTOS tick (10 ms), so the main loop's sleep_ms(10)
kept the CPU at 100 % while nothing happened; the device HAL's sleep waits in a poll instead,
which the ESP32 port serves by sleeping until the next tick. Measured as CPU time per loop
step on the real MicroPython VM with the ESP32's sleep_ms (tests/mpy_cases/fw_idle_vm.py), next
to a control run whose HAL sleeps with time.sleep_ms. CPU time per step, not CPU/wall time:
a loaded machine stretches wall time, not the CPU a step takes.
"""

import os
import subprocess

import pytest
from mpy_support import CASES_DIR, REPO, micropypath, micropython_binary

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.realtime,
    pytest.mark.skipif(not micropython_binary(), reason="MicroPython unix port not installed"),
]
STEPS = 200


def cpu_ms_per_step(lib, tmp_path, mode):
    """(CPU ms, wall ms) per main-loop step of the VM run: its own rusage (os.wait4), not that
    of every child the test process reaped meanwhile."""
    data = tmp_path / mode
    data.mkdir()
    cmd = [micropython_binary(), "-X", "heapsize=200k", os.path.join(CASES_DIR, "fw_idle_vm.py"), lib, str(data), mode]
    env = dict(os.environ, MICROPYPATH=micropypath())
    with subprocess.Popen(cmd + [str(STEPS)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO) as p:
        out = p.stdout.read().decode()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0 and "DONE %d" % STEPS in out, out
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    wall = int(out.split("DONE ")[1].split()[1])
    return cpu / STEPS, wall / STEPS


def test_fw_idle_main_loop_sleeps_instead_of_spinning(bundle_lib, tmp_path):
    device, device_wall = cpu_ms_per_step(bundle_lib, tmp_path, "device")
    spin, spin_wall = cpu_ms_per_step(bundle_lib, tmp_path, "spin")
    print(
        "\nCPU per idle step: device HAL %.2f ms (%.1f ms a step), time.sleep_ms %.2f ms (%.1f ms a step)"
        % (device, device_wall, spin, spin_wall)
    )
    assert spin > 3.0, spin  # the control spins (most of its 10 ms, however loaded the machine)
    assert device < 1.5, device  # includes the VM's start-up, spread over the steps
