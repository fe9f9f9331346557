"""What the broker holds retained on the panels' ack and config topics is what the gateway says
it should be: republished after a broker lost it (a stock Mosquitto restart without
persistence), and a forged config or ack is replaced or cleared. Real Mosquitto, the gateway as
a process."""

import threading
import time

import paho.mqtt.client as mqtt
from gw_fault_support import StockBroker
from gw_ingest_support import Gateway, event_body
from gw_site_support import apply_site, open_db
from paho.mqtt.enums import CallbackAPIVersion

from gateway import store
from protocol import messages


def retained(broker, topic_filter, wait_s=0.3):
    """{topic: payload} the broker holds retained under `topic_filter` (retained deliveries only)."""
    got = {}
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_message(client, userdata, m):
        if m.retain:
            got[m.topic] = m.payload

    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.subscribe(topic_filter, 1)
    assert subscribed.wait(5)
    time.sleep(wait_s)
    c.disconnect()
    c.loop_stop()
    return got


def publish(broker, items):
    """Publish [(topic, payload, retain)] as another client, QoS 1, and wait for the PUBACKs."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.connect(broker.host, broker.port)
    c.loop_start()
    infos = [c.publish(t, p, qos=1, retain=r) for t, p, r in items]
    for info in infos:
        info.wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def wait_for(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    return check()


def _gateway(broker, url, root, tmp_path, extra=""):
    conf = tmp_path / "gw.toml"
    conf.write_text("config_push_s = 0.2\n" + extra)
    return Gateway(broker.url, url, root, "gw-" + root.replace("/", "-"), extra=["--config", str(conf)]).start()


def test_configs_and_acks_are_published_again_after_a_broker_lost_them(mqtt_root, tmp_path):
    """A stock Mosquitto restarted: its retained configs and acks are gone, and a new or wiped
    panel would get no question. The gateway checks on reconnecting and publishes them again."""
    broker = StockBroker().start()
    url = "sqlite:///%s" % (tmp_path / "r.db")
    db = open_db(url)
    apply_site(db)
    db.close()
    gw = _gateway(broker, url, mqtt_root, tmp_path)
    configs = "%s/+/+/config" % mqtt_root
    try:
        assert len(wait_for(lambda: len(retained(broker, configs)) == 3 and retained(broker, configs))) == 3
        publish(broker, [("%s/msk/desk-1/event" % mqtt_root, event_body(s), False) for s in (1, 2, 3)])
        ack_topic = "%s/msk/desk-1/ack" % mqtt_root
        assert wait_for(lambda: retained(broker, ack_topic).get(ack_topic) == messages.encode_ack(3))
        before = retained(broker, configs)
        broker.restart(down_seconds=0.3)
        assert wait_for(lambda: retained(broker, configs) == before), retained(broker, configs)
        assert wait_for(lambda: retained(broker, ack_topic).get(ack_topic) == messages.encode_ack(3))
        assert gw.output().count("connected to the broker") >= 2
        assert gw.terminate() == 0, gw.output()
    finally:
        gw.kill()
        broker.close()


def test_forged_configs_and_acks_are_replaced_or_cleared(broker, mqtt_root, tmp_path):
    """Someone who may write the panels' topics leaves a retained config with another question,
    a retained ack far above what is stored, and a config for a panel that does not exist. A
    config published while the gateway runs is replaced at once; the rest at the next check."""
    url = "sqlite:///%s" % (tmp_path / "f.db")
    db = open_db(url)
    apply_site(db)
    db.close()
    gw = _gateway(broker, url, mqtt_root, tmp_path, "retained_check_s = 1.0\n")
    desk = "%s/msk/desk-1" % mqtt_root
    configs = "%s/+/+/config" % mqtt_root
    try:
        assert wait_for(lambda: len(retained(broker, configs)) == 3)
        ours = retained(broker, configs)[desk + "/config"]
        publish(broker, [("%s/msk/desk-1/event" % mqtt_root, event_body(s), False) for s in (1, 2)])
        assert wait_for(lambda: retained(broker, desk + "/ack").get(desk + "/ack") == messages.encode_ack(2))
        forged = messages.encode_config({"ver": 99, "question": "Forged?", "kind": "staff"})
        publish(
            broker,
            [
                (desk + "/config", forged, True),
                (desk + "/ack", messages.encode_ack(5000), True),
                ("%s/msk/ghost/config" % mqtt_root, forged, True),
            ],
        )
        assert wait_for(lambda: retained(broker, desk + "/config").get(desk + "/config") == ours)
        assert wait_for(lambda: retained(broker, desk + "/ack").get(desk + "/ack") == messages.encode_ack(2))
        assert wait_for(lambda: "%s/msk/ghost/config" % mqtt_root not in retained(broker, configs))
        assert gw.terminate() == 0, gw.output()
    finally:
        gw.kill()
    d = open_db(url)
    assert store.last_ack(d, "msk", "desk-1") == 2
    assert store.dead_letter_count(d) == 0
    d.close()
