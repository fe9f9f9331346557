"""Review findings on firmware.link (via the whole Panel on the host HAL, real Mosquitto)."""

from test_fw_app_panel import gateway_factory, rig_factory  # noqa: F401 (fixtures)


def test_fw_review_link_unreadable_record_is_retried_without_a_new_press(
    broker, mqtt_root, rig_factory, gateway_factory
):  # noqa: F811
    # A journal read that fails once (next_after -> None although head > sent) made the link
    # jump `sent` to head with no ack clock running: the press then waited for the next press
    # or a reconnect, however long that took. It must be resent after the ack timeout.
    gateway_factory(broker, mqtt_root)
    rig = rig_factory(broker, mqtt_root, ack_timeout_s=5)
    rig.run_until(rig.online, what="panel online")
    rig.run_for(1500)  # past the link's wait for the retained ack
    panel = rig.panel
    real = panel.next_after
    misses = []

    def flaky(seq):
        if not misses:
            misses.append(seq)
            return None
        return real(seq)

    panel.next_after = flaky
    rig.press("yes")
    assert misses and panel.journal.seq == 1
    rig.run_until(lambda: panel.journal.acked == 1, timeout_s=20, what="ack of the press")
    assert panel.link.connects == 1
