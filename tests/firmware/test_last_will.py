"""The panel's last will and state carry (boot, conn), so the gateway can ignore a replaced
connection's will that the broker delivers late (protocol README, "state"). The whole app on
the host HAL against a real Mosquitto, as in test_panel.py."""

import pytest
from fw_app_gateway import FakeGateway
from panel_rig import DEVICE, SITE, Rig


@pytest.mark.e2e
def test_fw_will_and_state_carry_boot_and_conn(broker, mqtt_root, tmp_path):
    gw = FakeGateway(broker, mqtt_root, SITE, DEVICE)
    rig = Rig(broker, mqtt_root, tmp_path)
    try:
        boot = rig.panel.boot
        rig.run_until(rig.online, what="panel online")
        rig.run_until(lambda: any(s["online"] for s in gw.states), what="birth state")
        birth = [s for s in gw.states if s["online"]][0]
        assert (birth["boot"], birth["conn"]) == (boot, 1)
        rig.hal.mqtt_client.sever()  # the broker publishes the will of connection 1
        rig.run_until(lambda: any(not s["online"] for s in gw.states), what="last will")
        will = [s for s in gw.states if not s["online"]][0]
        assert will == {"v": 1, "online": False, "boot": boot, "conn": 1}
        n = len(gw.states)
        rig.run_until(lambda: any(s["online"] for s in gw.states[n:]), timeout_s=15, what="birth after reconnect")
        again = [s for s in gw.states[n:] if s["online"]][0]
        assert again["boot"] == boot and again["conn"] > 1
        assert again["conn"] == rig.panel.link.conn
    finally:
        rig.panel.link.disconnect()
        gw.close()
