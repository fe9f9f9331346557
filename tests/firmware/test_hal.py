"""The device HAL (firmware/hal.py) on the MicroPython unix port, over the machine/network fakes."""

import pytest
from mpy_support import check_mpy_cases


@pytest.mark.e2e
def test_fw_hal_cases_under_micropython():
    proc = check_mpy_cases("fw_hal_cases", heapsize="300k")  # the .py sources compile on the VM
    assert "4 passed, 0 failed" in proc.stdout, proc.stdout
