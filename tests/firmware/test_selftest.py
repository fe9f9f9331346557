"""Self-test console protocol (firmware/selftest.py) on the host HAL, with a real broker."""

import json

import pytest

from firmware import config
from firmware.selftest import SelfTest
from simulator.host_hal import HostHal


def _cfg(host, port):
    return config.load(
        json.dumps({"site": "s-1", "device": "d-1", "wifi": {"ssid": "x"}, "mqtt": {"host": host, "port": port}})
    )


def _hal(tmp_path, script):
    hal = HostHal(data_dir=str(tmp_path))
    hal.ntp_unix_ms = lambda: 1764000000000
    sleep = hal.sleep_ms

    def sleep_and_press(ms):  # the technician's fingers, on the simulated clock
        sleep(ms)
        for name, start, end in script:
            hal.set_pressed(name, start <= hal.now_ms < end)

    hal.sleep_ms = sleep_and_press
    return hal


def test_fw_app_selftest_lines_are_machine_readable(broker, tmp_path):
    lines = []
    hal = _hal(tmp_path, [("yes", 3000, 3300), ("seller", 4000, 4100)])
    SelfTest(hal, _cfg(broker.host, broker.port), out=lines.append).run(seconds=5)
    assert lines[0] == "SELFTEST START fw=0.1.0" or lines[0].startswith("SELFTEST START fw=")
    assert ["SELFTEST LED %s ok" % n for n in ("rate", "thanks", "status", "seller")] == lines[1:5]
    assert lines[5] == "SELFTEST WIFI ok rssi=-55"
    assert lines[6] == "SELFTEST MQTT ok %s:%d" % (broker.host, broker.port)
    assert lines[7] == "SELFTEST NTP ok 1764000000000"
    assert lines[8] == "SELFTEST PRESS 5"
    assert lines[9:] == [
        "SELFTEST BUTTON yes down",
        "SELFTEST BUTTON yes up",
        "SELFTEST BUTTON seller down",
        "SELFTEST BUTTON seller up",
        "SELFTEST END",
    ]
    assert any(c[1] == "rate" and c[2] == 100 and c[0] >= 3000 for c in hal.led_log), "press echo"


@pytest.mark.e2e
def test_fw_app_selftest_reports_failures_with_reasons(tmp_path):
    lines = []
    hal = _hal(tmp_path, [])
    hal.ntp_unix_ms = None
    from simulator.services import free_port

    SelfTest(hal, _cfg("127.0.0.1", free_port()), out=lines.append).run(seconds=0)
    mqtt = [line for line in lines if line.startswith("SELFTEST MQTT")][0]
    ntp = [line for line in lines if line.startswith("SELFTEST NTP")][0]
    assert mqtt.startswith("SELFTEST MQTT fail ") and " " not in mqtt[len("SELFTEST MQTT fail ") :]
    assert ntp.startswith("SELFTEST NTP fail ")
    lines.clear()
    hal.wifi_up = False
    SelfTest(hal, _cfg("127.0.0.1", 1), out=lines.append).run(seconds=0)
    assert "SELFTEST WIFI fail no_ap_found" in lines and "SELFTEST MQTT fail no_wifi" in lines
    lines.clear()
    SelfTest(hal, None, cfg_error=ValueError("mqtt.port: bad"), out=lines.append).run(seconds=0)
    assert [line for line in lines if line.startswith("SELFTEST WIFI")][0].startswith("SELFTEST WIFI fail config:")
    assert lines[-1] == "SELFTEST END"
