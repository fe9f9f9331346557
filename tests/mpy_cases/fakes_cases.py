"""Cases for the machine/network fakes themselves (run by tests/firmware/test_fakes_match_the_esp32.py)."""

import time

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


class Clock:
    """A test's own clock for the driver-like fake (fake_network.clock)."""

    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def _wlan():
    clock = Clock()
    network.clock = clock
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    return wlan, clock


def test_wlan_joins_after_a_while_and_reports_rssi():
    wlan, clock = _wlan()
    assert not wlan.isconnected() and wlan.status() == network.STAT_IDLE
    wlan.connect("shop", "secret")
    assert not wlan.isconnected() and wlan.status() == network.STAT_CONNECTING
    clock.t += network.JOIN_MS
    assert wlan.isconnected() and wlan.status() == network.STAT_GOT_IP
    assert wlan.status("rssi") == -55
    assert network.joins == [("shop", "secret")]
    assert len(wlan.config("mac")) == 6


def test_wlan_connect_needs_active():
    wlan = network.WLAN(network.STA_IF)
    raises(OSError, wlan.connect, "shop", "secret")  # "Wifi Not Started"


def test_wlan_second_connect_while_connecting_raises_internal_error():
    # ports/esp32/network_wlan.c -> esp_wifi_connect() -> ESP_ERR_WIFI_CONN (issues #7139, #17661)
    wlan, clock = _wlan()
    wlan.connect("shop", "secret")
    try:
        wlan.connect("shop", "secret")
        raise AssertionError("a second connect while connecting must raise")
    except OSError as e:
        assert "Wifi Internal Error" in str(e), e
    wlan.disconnect()  # ...unless the attempt is ended first (mqtt_as does this)
    assert wlan.status() == network.STAT_IDLE
    wlan.connect("shop", "secret")
    clock.t += network.JOIN_MS
    assert wlan.isconnected()


def test_wlan_missing_access_point_is_retried_by_the_driver():
    wlan, clock = _wlan()
    network.ap(False)
    wlan.connect("shop", "secret")
    clock.t += network.SCAN_MS
    assert not wlan.isconnected() and wlan.status() == network.STAT_NO_AP_FOUND
    clock.t += 10 * network.SCAN_MS  # the driver keeps trying by itself
    network.ap(True)
    clock.t += network.SCAN_MS + network.JOIN_MS  # the scan under way, then one that finds it
    assert wlan.isconnected() and network.joins == [("shop", "secret")]  # no second connect()


def test_wlan_lost_access_point_noticed_after_beacon_timeout_then_rejoined():
    wlan, clock = _wlan()
    wlan.connect("shop", "secret")
    clock.t += network.JOIN_MS
    assert wlan.isconnected()
    network.ap(False)
    clock.t += network.BEACON_TIMEOUT_MS - 1
    assert wlan.isconnected()  # not noticed yet
    clock.t += 1
    assert not wlan.isconnected() and wlan.status() == network.STAT_CONNECTING
    clock.t += 60000
    assert wlan.status() == network.STAT_NO_AP_FOUND
    network.ap(True)
    clock.t += network.SCAN_MS + network.JOIN_MS
    assert wlan.isconnected()


def test_wlan_wrong_password_reads_connecting():
    wlan, clock = _wlan()
    network.password_ok = False
    wlan.connect("shop", "wrong")
    clock.t += 5 * network.SCAN_MS
    assert not wlan.isconnected() and wlan.status() == network.STAT_CONNECTING


def test_pwm_starts_at_half_duty_unless_given():
    # ports/esp32/machine_pwm.c: PWM_DUTY is 50 % when the constructor gets no duty
    assert machine.PWM(machine.Pin(13), freq=1000).duty() == 512
    assert machine.PWM(machine.Pin(14), freq=1000, duty_u16=0).duty() == 0
    assert machine.pwms[14].history == [0]


def test_input_only_pins_ignore_the_pull_and_float():
    pin = machine.Pin(36, machine.Pin.IN, machine.Pin.PULL_UP)  # no pull-ups on 34..39
    seen = set()
    for _ in range(40):
        seen.add(pin.value())
        time.sleep_ms(20)
    assert seen == {0, 1}, seen  # phantom presses on an active-low button
    machine.set_level(36, 1)  # an external pull-up holds it
    assert pin.value() == 1


def test_rtc_datetime_settable():
    rtc = machine.RTC()
    rtc.datetime((2026, 1, 2, 4, 3, 4, 5, 0))
    assert rtc.datetime()[0] == 2026
