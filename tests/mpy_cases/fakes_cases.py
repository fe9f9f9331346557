"""Cases for the machine/network fakes themselves (run by tests/firmware/test_fakes_match_the_esp32.py)."""

import install_fakes  # noqa: F401  (must come before `import machine`)
import machine
import network
from mpytest import raises


def test_machine_is_the_fake():
    assert hasattr(machine, "set_level"), "built-in machine module was not replaced"


def test_pull_up_button_reads_high_until_pressed():
    pin = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
    assert pin.value() == 1
    machine.set_level(4, 0)
    assert pin.value() == 0


def test_irq_fires_on_falling_edge():
    seen = []
    pin = machine.Pin(5, machine.Pin.IN, machine.Pin.PULL_UP)
    pin.irq(lambda p: seen.append(p.id), machine.Pin.IRQ_FALLING)
    machine.set_level(5, 0)
    machine.set_level(5, 1)
    assert seen == [5], seen


def test_pwm_records_duty():
    pwm = machine.PWM(machine.Pin(13), freq=1000, duty=0)
    pwm.duty(512)
    assert machine.pwms[13].duty() == 512


def test_wdt_counts_feeds_and_reset_raises():
    wdt = machine.WDT(timeout=8000)
    wdt.feed()
    wdt.feed()
    assert machine.wdt_feeds == 2 and machine.wdt_timeout == 8000
    raises(machine.Reset, machine.reset)
    assert machine.resets == 1


def test_state_is_reset_between_tests():
    assert machine.wdt_feeds == 0 and machine.levels == {}


def test_wlan_connect_and_rssi():
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    assert not wlan.isconnected()
    wlan.connect("shop", "secret")
    assert wlan.isconnected() and wlan.status() == network.STAT_GOT_IP
    assert wlan.status("rssi") == -55
    assert network.joins == [("shop", "secret")]
    assert len(wlan.config("mac")) == 6
    network.connected = False  # the test drops Wi-Fi
    assert not wlan.isconnected()


def test_wlan_join_failure():
    network.join_ok = False
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wlan.connect("shop", "wrong")
    assert not wlan.isconnected() and wlan.status() == network.STAT_NO_AP_FOUND


def test_rtc_datetime_settable():
    rtc = machine.RTC()
    rtc.datetime((2026, 1, 2, 4, 3, 4, 5, 0))
    assert rtc.datetime()[0] == 2026
