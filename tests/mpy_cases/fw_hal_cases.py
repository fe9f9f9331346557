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
