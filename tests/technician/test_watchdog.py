"""The panel's watchdog vs the technician's tools (technician/watchdog.py).

On the ESP32 a started machine.WDT survives Ctrl-C and soft reset, and a second WDT(timeout=...)
reconfigures it (ports/esp32/machine_wdt.c, v1.22-v1.27). The fakes behave so (the unix fake
and the stand-in panel's bridge), and the tools re-arm it before anything else.
"""

import json
import shutil
import time

import pytest
from device_standin.standin import Standin, StandinUnavailable, ensure_vm
from mpy_support import check_mpy_cases

from technician import watchdog
from technician.console import check_board

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def vm():
    try:
        return ensure_vm()
    except StandinUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def panel(vm, tmp_path):
    p = Standin(tmp_path / "panel")
    p.app_watchdog(1500)
    p.start()
    yield p
    p.stop()


def raw(port):
    from mpremote.transport_serial import SerialTransport

    return SerialTransport(port, baudrate=115200)


def last_boot(panel, kind, after=0, timeout=10.0):
    """Wait for the stand-in to report a boot of `kind` (a reset is sent, not waited for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kinds = [b["kind"] for b in panel.events("boot")[after:]]
        if kinds and kinds[-1] == kind:
            return kinds
        time.sleep(0.05)
    return [b["kind"] for b in panel.events("boot")[after:]]


@pytest.mark.e2e
def test_the_fake_watchdog_behaves_as_the_esp32_port():
    proc = check_mpy_cases("fake_wdt_cases")
    assert "6 passed, 0 failed" in proc.stdout


@pytest.mark.e2e
def test_the_standin_watchdog_survives_a_soft_reset_and_fires_while_the_repl_waits(panel):
    t = raw(panel.port)
    try:
        t.enter_raw_repl(soft_reset=False)
        t.exec("import machine\nmachine.WDT(timeout=1500)")
        t.enter_raw_repl(soft_reset=True)  # Ctrl-D: a fresh VM, as a soft reset is on the board
        assert t.eval("__import__('machine').reset_cause()") == 5
        assert not panel.events("watchdog")
        time.sleep(2.5)  # nobody feeds it: the REPL just waits for input
    finally:
        t.close()
    fired = panel.events("watchdog")
    assert len(fired) == 1 and fired[0]["timeout"] == 1500
    assert [b["kind"] for b in panel.events("boot")][-1] == "watchdog"
    t = raw(panel.port)
    try:
        t.enter_raw_repl(soft_reset=False)
        assert t.eval("__import__('machine').reset_cause()") == 3  # WDT_RESET
    finally:
        t.close()


@pytest.mark.e2e
def test_a_reconstructed_watchdog_takes_the_new_timeout(panel):
    t = raw(panel.port)
    try:
        t.enter_raw_repl(soft_reset=False)
        t.exec("import machine\nmachine.WDT(timeout=800)")
        t.exec(watchdog.arm_code(5))  # what the tools send first: 5 s instead of 0.8 s, and a feed
        time.sleep(1.5)
        assert t.eval("1 + 1") == 2
    finally:
        t.close()
    assert not panel.events("watchdog")


def installed(tmp_path, fw_bundle):
    """A stand-in whose flash already holds the deployed firmware and a valid /config.json, as
    `rating device deploy` leaves it: its app starts (and starts its watchdog) at power-on."""
    flash = tmp_path / "installed" / "flash"
    shutil.copytree(fw_bundle, flash, ignore=shutil.ignore_patterns("manifest.json", "config.example.json"))
    cfg = {"site": "office-1", "device": "panel-1", "wifi": {"ssid": "Shop"}, "mqtt": {"host": "127.0.0.1", "port": 9}}
    (flash / "config.json").write_text(json.dumps(cfg))
    p = Standin(tmp_path / "installed")
    p.app_watchdog(1500)
    return p.start()


@pytest.mark.e2e
def test_a_tool_must_rearm_the_watchdog_of_the_app_it_stops(tmp_path, vm, fw_bundle):
    """What the tools did before (stop the app, re-arm nothing) loses the panel to its watchdog;
    the stand-in tests would catch it (their fixture asserts no watchdog reset)."""
    panel = installed(tmp_path, fw_bundle)
    try:
        assert [w["timeout"] for w in panel.events("wdt")] == [1500]  # the app started it
        time.sleep(2)  # the app runs and feeds it
        check_board(panel.port)  # Ctrl-C, raw REPL, re-armed for a deploy step
        time.sleep(2.5)
        assert not panel.events("watchdog")
        assert [w["timeout"] for w in panel.events("wdt")][-1] == watchdog.STEP_S * 1000
        panel.stop()
        panel.start()  # power cycle: the app runs again with its 1.5 s watchdog
        time.sleep(1)
        check_board(panel.port, budget_s=0)  # Ctrl-C, raw REPL, no re-arm
        time.sleep(2.5)
        assert len(panel.events("watchdog")) == 1
        assert last_boot(panel, "watchdog")[-1] == "watchdog"
    finally:
        panel.stop()
