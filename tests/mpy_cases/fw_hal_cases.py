"""firmware.hal on the MicroPython VM over the fakes (run by tests/firmware/test_hal.py)."""

import fake_network
import install_fakes  # noqa: F401

from firmware import config
from firmware.hal import Hal


def test_rssi_is_kept_in_the_protocols_range():
    # a state with rssi outside -127..0 is refused whole by the gateway (dead letter)
    hal = Hal(config.DEFAULTS["pins"], root="/tmp/")
    for driver, sent in ((-55, -55), (-128, -127), (3, 0), (0, 0)):
        fake_network.rssi = driver
        assert hal.wifi_rssi() == sent, (driver, hal.wifi_rssi())


def test_leds_start_dark_not_at_the_esp32s_half_duty():
    # ports/esp32/machine_pwm.c starts a PWM at 50 % unless the constructor gets a duty: the
    # HAL passes duty_u16=0, so no LED ever glows at boot (not even between two calls)
    import fake_machine

    Hal(config.DEFAULTS["pins"], root="/tmp/")
    assert len(fake_machine.pwms) == 4
    for pin, pwm in fake_machine.pwms.items():
        assert pwm.history == [0], (pin, pwm.history)


def test_reset_cause_names_the_esp32_ports_constants():
    import fake_machine

    hal = Hal(config.DEFAULTS["pins"], root="/tmp/")
    for const, name in (
        (fake_machine.PWRON_RESET, "power_on"),
        (fake_machine.HARD_RESET, "hard"),
        (fake_machine.WDT_RESET, "watchdog"),
        (fake_machine.DEEPSLEEP_RESET, "deep_sleep"),
        (fake_machine.SOFT_RESET, "soft"),
        (0, "unknown"),  # ESP_RST_UNKNOWN, ESP_RST_SDIO: the port returns 0
        (9, "unknown"),
    ):
        fake_machine.reset_reason = const
        assert hal.reset_cause() == name, (const, hal.reset_cause())


def test_a_button_on_an_input_only_pin_floats_into_phantom_presses():
    # why config.load refuses buttons on 34..39 without pins.external_pull: the ESP32 ignores
    # the pull-up request there (tests/mpy/fake_machine.py floats such a pin)
    import time

    from mpytest import make_tmp, remove_tmp

    from firmware.app import Panel

    cfg = config.load('{"site": "s", "device": "d", "wifi": {"ssid": "x"}, "mqtt": {"host": "127.0.0.1"}}')
    cfg["pins"]["unsure"] = 36  # past the config check, as if it had none
    tmp = make_tmp("fwhal")
    try:
        panel = Panel(Hal(cfg["pins"], root=tmp), cfg)
        t = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t) < 1500:
            panel.step()
            time.sleep_ms(10)
        assert panel.journal.seq >= 2, panel.journal.seq  # nobody pressed anything
    finally:
        remove_tmp(tmp)
