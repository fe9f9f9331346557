"""The kept validated config (firmware/boot.py, /config.json.ok) on the MicroPython unix port."""

import pytest
from mpy_support import check_mpy_cases


@pytest.mark.e2e
def test_fw_boot_kept_config_cases_under_micropython():
    proc = check_mpy_cases("fw_boot_kept_cases", heapsize="200k", timeout=60)
    assert "5 passed, 0 failed" in proc.stdout, proc.stdout
