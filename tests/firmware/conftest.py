"""Fixtures of the whole-panel tests: a panel rig on the host HAL and a stand-in gateway."""

import pytest
from fw_app_gateway import FakeGateway
from panel_rig import DEVICE, SITE, Rig


@pytest.fixture
def rig_factory(tmp_path):
    made = []

    def make(broker, root, **timings):
        rig = Rig(broker, root, tmp_path, **timings)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.panel.link.disconnect()


@pytest.fixture
def gateway_factory():
    made = []

    def make(broker, root):
        gw = FakeGateway(broker, root, SITE, DEVICE)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()
