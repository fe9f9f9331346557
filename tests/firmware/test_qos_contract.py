"""The QoS contract (protocol/README.md "Delivery and QoS") and what the firmware does agree:
events and state from the panel at QoS 0 (the spec allows 0 or 1), the last will and every
subscription at QoS 1, ack/config QoS 1 retained. The end-to-end delivery itself (QoS 0
publishes, journal, retained cumulative ack, resend) runs against a real broker in
tests/firmware/test_panel_on_micropython.py and tests/firmware/test_panel.py."""

import os
import re

from firmware.link import Link
from protocol import topics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spec_rows():
    """{kind: (qos text, retained text)} from protocol/README.md's topics table."""
    with open(os.path.join(REPO, "protocol", "README.md"), encoding="utf-8") as f:
        text = f.read()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `<root>/<site>/(?:<device>/)?(\w+)` \|[^|]*\|([^|]*)\|([^|]*)\|", line)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip())
    return rows


def test_fw_mem_qos_spec_table_matches_topics_publish():
    rows = _spec_rows()
    assert set(rows) == {"event", "state", "ack", "config", "counts", "transactions"}, rows
    for kind, (qos, retained) in rows.items():
        want_qos, want_retained = topics.PUBLISH[kind]
        allowed = {0, 1} if qos.startswith("0 or 1") else {int(qos)}
        assert want_qos in allowed, (kind, qos, topics.PUBLISH[kind])
        assert retained.startswith("yes") == want_retained, (kind, retained)
    assert rows["event"][0].startswith("0 or 1") and rows["state"][0].startswith("0 or 1")
    assert rows["ack"] == ("1", "yes") and rows["config"] == ("1", "yes")
    assert topics.SUBSCRIBE_QOS == 1


def test_fw_mem_qos_firmware_publishes_as_the_spec_says():
    assert Link.EVENT_QOS == topics.PUBLISH["event"][0] == 0
    assert Link.STATE_QOS == topics.PUBLISH["state"][0] == 0
    assert Link.WILL_QOS == 1  # the offline state must not be lost when the panel vanishes
    assert Link.SUB_QOS == topics.SUBSCRIBE_QOS
