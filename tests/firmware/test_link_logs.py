"""The link says why it is offline on the serial console, and does not flood it: a new reason
at once, the same one again at most once a minute with how often it came meanwhile (the whole
panel on the host HAL, a broker port nobody listens on, simulated time)."""

import json

from firmware import config, deadlines
from firmware.app import Panel
from simulator.host_hal import HostHal
from simulator.services import free_port


def test_fw_link_failure_reasons_logged_once_a_minute(tmp_path):
    hal = HostHal(data_dir=str(tmp_path), now_ms=0)
    raw = {"site": "s1", "device": "p1", "wifi": {"ssid": "x"}, "mqtt": {"host": "127.0.0.1", "port": free_port()}}
    panel = Panel(hal, config.load(json.dumps(raw)))
    while hal.now_ms < 10 * 60000:  # ten minutes of a broker that refuses every connection
        panel.step(hal.ticks_ms())
        hal.now_ms += max(10, deadlines.idle_ms(panel))
    failed = [line for line in hal.console if line.startswith("link: mqtt connect failed")]
    attempts = panel.link.conn
    print("\n%d connect attempts, %d console lines:\n%s" % (attempts, len(failed), "\n".join(failed)))
    assert attempts >= 10  # backoff 1, 2, 4 ... 120 s
    assert "refused" in failed[0].lower(), failed[0]  # the reason, not just "failed"
    assert 2 <= len(failed) <= 11 and len(failed) < attempts, failed
    assert "more since)" in failed[1], failed  # the repeats are counted, not lost
