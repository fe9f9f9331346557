"""Cases for the fake watchdog (tests/mpy/fake_machine.py): it behaves as ports/esp32/machine_wdt.c
says, run by tests/technician/test_watchdog.py on the MicroPython unix port."""

import time

import install_fakes  # noqa: F401  (must come before `import machine`)
import machine
from mpytest import raises


def test_a_starved_watchdog_resets_the_board():
    wdt = machine.WDT(timeout=50)
    time.sleep_ms(80)
    raises(machine.WatchdogReset, wdt.feed)
    assert machine.reset_cause() == machine.WDT_RESET and machine.wdt_fired == 1
    assert machine.wdt_timeout is None  # the reset it caused stopped it


def test_a_fed_watchdog_keeps_the_board_running():
    wdt = machine.WDT(timeout=60)
    for _ in range(5):
        time.sleep_ms(30)
        wdt.feed()
    machine.wdt_check()
    assert machine.wdt_fired == 0 and machine.wdt_feeds == 5


def test_the_watchdog_survives_a_soft_reset():
    machine.WDT(timeout=50)
    raises(machine.Reset, machine.soft_reset)
    assert machine.wdt_timeout == 50
    time.sleep_ms(80)
    raises(machine.WatchdogReset, machine.wdt_check)


def test_a_hard_reset_stops_the_watchdog():
    machine.WDT(timeout=50)
    raises(machine.Reset, machine.reset)
    time.sleep_ms(80)
    machine.wdt_check()
    assert machine.wdt_timeout is None and machine.wdt_fired == 0


def test_constructing_it_again_changes_the_timeout_but_only_a_feed_restarts_the_count():
    machine.WDT(timeout=50)
    time.sleep_ms(30)
    longer = machine.WDT(timeout=100)  # the same watchdog, reconfigured
    assert machine.wdt_timeout == 100
    time.sleep_ms(40)
    longer.feed()  # 70 ms after the start: within the new timeout
    time.sleep_ms(70)
    machine.wdt_check()
    time.sleep_ms(60)
    raises(machine.WatchdogReset, longer.feed)


def test_it_refuses_what_the_port_refuses():
    raises(ValueError, machine.WDT, 1, 1000)
    raises(ValueError, machine.WDT, 0, 0)
