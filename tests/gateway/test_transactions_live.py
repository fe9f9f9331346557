"""POS sales over MQTT into `rating gateway run` through a real broker (SQLite and PostgreSQL):
a sale published while the gateway is down is stored once it is back (QoS 1, its session, and
the gateway's PUBACK only after the commit), a resent sale is stored once, a bad payload and
an office the site file does not have are dead letters; the sale is matched to its poll."""

import time

import paho.mqtt.client as mqtt
import pytest
from gw_ingest_support import Gateway
from gw_site_support import SITE_TOML, T0, Panel, apply_site, open_db, store_events

from gateway import derive
from protocol import messages, topics

pytestmark = pytest.mark.e2e

TILL_SITE = SITE_TOML.replace('device = "desk-1"\n', 'device = "desk-1"\ntill = "till-1"\n', 1)


@pytest.fixture
def url(any_db_url):
    u = any_db_url
    db = open_db(u)
    apply_site(db, TILL_SITE)
    p = Panel()
    p.poll(T0, "no")
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], T0 + 3600000)
    db.close()
    return u


def _client(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def _rows(url, sql):
    db = open_db(url)
    try:
        return db.query(sql)
    finally:
        db.close()


def _wait(url, sql, n):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_rows(url, sql)) < n:
        time.sleep(0.1)


def test_a_sale_over_mqtt_is_stored_once_even_sent_while_the_gateway_is_down_and_matched(broker, mqtt_root, url):
    client_id = "gw-tx-" + mqtt_root.replace("/", "-")
    gw = Gateway(broker.url, url, mqtt_root, client_id).start()
    assert gw.terminate() == 0  # its session stays at the broker: QoS 1 messages wait there
    pos = _client(broker)
    try:
        topic = topics.transactions_topic(mqtt_root, "msk")
        body = messages.encode_transaction({"id": "R-1", "till": "till-1", "t": T0 - 20_000, "loyalty": "crm-1"})
        pos.publish(topic, body, qos=1).wait_for_publish(20)
        gw = Gateway(broker.url, url, mqtt_root, client_id).start()
        _wait(url, "SELECT tx_id FROM transactions", 1)
        assert [r["tx_id"] for r in _rows(url, "SELECT tx_id FROM transactions")] == ["R-1"], gw.output()
        for payload in (body, b'{"v":1,"id":"R-2","till":"till-1"}'):
            pos.publish(topic, payload, qos=1).wait_for_publish(20)
        pos.publish(topics.transactions_topic(mqtt_root, "spb"), body, qos=1).wait_for_publish(20)
        _wait(url, "SELECT id FROM dead_letters", 2)
    finally:
        pos.loop_stop()
        pos.disconnect()
        assert gw.terminate() == 0, gw.output()
    # (not the loyalty reference: the sale is of January 2025, so the running worker wipes it,
    # older than the default 90 days, at its next retention round: test_transactions.py)
    assert _rows(url, "SELECT tx_id, till, at_ms, source FROM transactions") == [
        {"tx_id": "R-1", "till": "till-1", "at_ms": T0 - 20_000, "source": "mqtt"}
    ]
    reasons = sorted(r["reason"] for r in _rows(url, "SELECT reason FROM dead_letters"))
    assert len(reasons) == 2 and reasons[0].startswith("t: missing") and "unknown site: spb" in reasons[1], reasons
    assert _rows(url, "SELECT device, open_seq, tx_id FROM tx_matches") == [
        {"device": "desk-1", "open_seq": 1, "tx_id": "R-1"}
    ]
