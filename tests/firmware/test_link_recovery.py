"""The whole panel through network faults, on the REAL MicroPython VM (unix port) with the
driver-like fake Wi-Fi (tests/mpy/fake_network.py) and the real broker
(tests/mpy_cases/fw_link_vm.py; panel time runs faster than real time there, the network is real):

- an access point gone for 60 s: the ESP32 driver reconnects by itself, the link only asks it
  once and never calls connect() while it is connecting (a second one raises "Wifi Internal
  Error"), and the broker's backoff starts over when Wi-Fi is back: online within ~10 s of the
  access point's return (it was up to ~150 s: Wi-Fi and broker failures shared a backoff that
  climbed to 120 s);
- a half-open connection (a proxy that goes silent, no FIN, no RST): noticed within 1.5 x
  keepalive, reconnected, presses acked;
- the failure reasons on the console, the same one at most once a minute.
"""

import json
import os

import pytest
from fw_app_gateway import FakeGateway
from mpy_support import CASES_DIR, micropython_binary, run_micropython
from tcp_support import FreezingProxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.realtime,
    pytest.mark.skipif(not micropython_binary(), reason="MicroPython unix port not installed"),
]
SCRIPT = os.path.join(CASES_DIR, "fw_link_vm.py")


def run(lib, tmp_path, port, root, mode):
    data = tmp_path / "flash"
    data.mkdir()
    proc = run_micropython(SCRIPT, heapsize="200k", timeout=120, args=(lib, data, "127.0.0.1", port, root, mode))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    result = json.loads(out.split("RESULT ")[1].splitlines()[0])
    return out, result


def test_fw_link_back_online_within_10_s_of_the_access_point(broker, mqtt_root, tmp_path, bundle_lib):
    gw = FakeGateway(broker, mqtt_root, "vm-site", "vm-panel")
    try:
        out, result = run(bundle_lib, tmp_path, broker.port, mqtt_root, "outage")
    finally:
        gw.close()
    assert "RECOVERED" in out, out
    ms = int(out.split("RECOVERED ")[1].split()[0])
    joins = int(out.split("JOINS ")[1].split()[0])
    print("\nback online %d ms after the access point; connect() called %d time(s)" % (ms, joins))
    assert ms <= 10000, out
    assert joins == 1, out  # asked once at boot: the driver did the rest
    assert "Wifi Internal Error" not in out
    assert result["acked"] == result["seq"] == 1, result  # the press made while offline
    # the reasons were logged, and the repeated one rate-limited: 60 s of a missing access point
    # is ~4 looks at the driver, not a line per look
    lost = [line for line in result["console"] if line.startswith("link: mqtt lost")]
    joined = [line for line in result["console"] if line.startswith("link: wifi not joined")]
    assert lost and "wifi lost" in lost[0], result["console"]
    assert 1 <= len(joined) <= 2, result["console"]


def test_fw_link_notices_a_half_open_connection_and_reconnects(broker, mqtt_root, tmp_path, bundle_lib):
    gw = FakeGateway(broker, mqtt_root, "vm-site", "vm-panel")
    proxy = FreezingProxy(broker.port, freeze_after_s=2.5)
    try:
        out, result = run(bundle_lib, tmp_path, proxy.port, mqtt_root, "halfopen")
    finally:
        proxy.close()
        gw.close()
    assert "LOST" in out, out
    ms = int(out.split("LOST ")[1].split()[0])
    print("\nhalf-open connection noticed after %d ms of panel time (keepalive 10 s)" % ms)
    assert ms <= 15000 + 1000, out  # 1.5 x keepalive after the last packet (and a poll)
    assert "broker silent" in out.split("LOST ")[1].splitlines()[0], out
    # reconnected (a loaded machine can stretch a real ping past 1.5 x keepalive of the
    # compressed panel time: a further reconnect is the test's clock, not the panel)
    assert result["connects"] >= 2 and proxy.connections >= 2, result
    assert result["acked"] == result["seq"] == 1, result
    assert any("mqtt lost: mqtt: broker silent" in line for line in result["console"]), result["console"]
