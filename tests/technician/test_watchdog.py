"""The panel's watchdog vs the technician's tools (technician/watchdog.py).

On the ESP32 a started machine.WDT survives Ctrl-C and soft reset, and a second WDT(timeout=...)
reconfigures it (ports/esp32/machine_wdt.c, v1.22-v1.27). The fakes behave so (the unix fake
and the stand-in panel's bridge), and the tools re-arm it before anything else.
"""

import time

import pytest
from device_standin.standin import Standin, StandinUnavailable, ensure_vm
from mpy_support import check_mpy_cases

from rating.cli import main
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


def deploy(capsys, panel, fw_bundle):
    rc = main(
        ["device", "deploy", "--port", panel.port, "--bundle", fw_bundle, "--wait", "0", "--site", "office-1"]
        + ["--device", "panel-1", "--wifi-ssid", "Shop", "--broker", "mqtt://127.0.0.1:9"]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.out + cap.err


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


@pytest.mark.e2e
def test_a_tool_that_stops_the_app_without_rearming_loses_the_panel(capsys, panel, fw_bundle):
    """What the tools did before: the deployed app's watchdog fires under the technician. The
    stand-in tests would catch it (their fixture asserts no watchdog reset)."""
    deploy(capsys, panel, fw_bundle)
    assert last_boot(panel, "hard")[-1] == "hard"
    time.sleep(2)  # the app runs and feeds its 1.5 s watchdog
    assert not panel.events("watchdog")
    check_board(panel.port, budget_s=0)  # Ctrl-C, raw REPL, no re-arm
    time.sleep(2.5)
    assert len(panel.events("watchdog")) == 1


@pytest.mark.e2e
def test_the_tools_rearm_it_and_test_and_check_restart_the_panel(capsys, panel, fw_bundle):
    deploy(capsys, panel, fw_bundle)
    last_boot(panel, "hard")
    check_board(panel.port)  # re-arms for a deploy step
    time.sleep(2.5)
    assert not panel.events("watchdog")
    boots = len(panel.events("boot"))
    rc = main(["device", "test", "--port", panel.port, "--seconds", "2", "--non-interactive"])
    out = capsys.readouterr().out
    assert "Panel restarted: its app runs again." in out and rc == 1  # no broker in the VM
    assert last_boot(panel, "hard", boots) == ["hard"]
    deadline = time.monotonic() + 10
    while [w["timeout"] for w in panel.events("wdt")][-1] != 1500 and time.monotonic() < deadline:
        time.sleep(0.05)  # the restarted app starts its own watchdog
    timeouts = [w["timeout"] for w in panel.events("wdt")]
    assert timeouts[-3:] == [watchdog.selftest_budget_s(2) * 1000] * 2 + [1500]  # check_board, self-test, app
    time.sleep(2)  # the app runs again and feeds its watchdog
    assert not panel.events("watchdog")
