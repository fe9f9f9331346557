"""A replaced connection's last will that arrives after the new connection's birth state
(the embedded amqtt broker does this on a reconnect) must not mark a live panel offline:
the will carries (boot, conn) and the gateway ignores one older than the stored online state's.
Real databases: SQLite in tmp_path and PostgreSQL (pg_store_url) where available."""

import logging

import pytest
from gw_ingest_support import T0

from gateway import ingest, store
from protocol import messages

ROOT = "rating/v1"
TOPIC = "%s/s1/p1/state" % ROOT


def birth(boot, conn):
    return messages.encode_state(
        dict(
            online=True,
            boot=boot,
            up=5000,
            t=None,
            fw="1.0",
            seq=4,
            pending=0,
            dropped=0,
            heap=50000,
            rssi=-60,
            faults=[],
            cfg=None,
            cfg_err=None,
            conn=conn,
        )
    )


def online(any_db):
    return store.panel_state(any_db, "s1", "p1")["online"]


@pytest.mark.parametrize("one_batch", [True, False], ids=["one-batch", "two-batches"])
def test_gw_stale_will_keeps_the_panel_online(any_db, one_batch, caplog):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(TOPIC, birth(3, 2), T0)
    if not one_batch:
        ing.flush()
    with caplog.at_level(logging.INFO, logger="gateway.ingest"):
        ing.handle(TOPIC, messages.will_payload(3, 1), T0 + 10)  # connection 1's late will
        ing.flush()
    row = store.panel_state(any_db, "s1", "p1")
    assert row["online"] == 1 and (row["boot"], row["conn"]) == (3, 2)
    assert row["payload"] == birth(3, 2).decode()  # the birth stays the last state stored
    assert ing.stats["stale_wills"] == 1 and ing.stats["states"] == 2
    assert store.dead_letter_count(any_db) == 0  # a fact, not garbage
    assert "stale will (boot 3 conn 1)" in caplog.text
    # an older boot's will is stale too
    ing.handle(TOPIC, messages.will_payload(2, 9), T0 + 20)
    ing.flush()
    assert online(any_db) == 1 and ing.stats["stale_wills"] == 2


def test_gw_current_connections_will_marks_offline(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(TOPIC, birth(3, 2), T0)
    ing.flush()
    ing.handle(TOPIC, messages.will_payload(3, 2), T0 + 10)
    ing.flush()
    row = store.panel_state(any_db, "s1", "p1")
    assert row["online"] == 0 and row["payload"] == messages.will_payload(3, 2).decode()
    assert ing.stats["stale_wills"] == 0
    # once offline, an older will changes nothing either way; the next birth is online again
    ing.handle(TOPIC, messages.will_payload(3, 1), T0 + 20)
    ing.handle(TOPIC, birth(4, 1), T0 + 30)  # rebooted: conn starts over, boot is newer
    ing.flush()
    assert online(any_db) == 1
    ing.handle(TOPIC, messages.will_payload(4, 1), T0 + 40)
    ing.flush()
    assert online(any_db) == 0


@pytest.mark.parametrize("will", [messages.OFFLINE_WILL, b'{"v":1,"online":false,"boot":3}'], ids=["bare", "boot-only"])
def test_gw_will_without_conn_marks_offline_as_before(any_db, will):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(TOPIC, birth(3, 2), T0)
    ing.flush()
    ing.handle(TOPIC, will, T0 + 10)
    ing.flush()
    assert online(any_db) == 0 and ing.stats["stale_wills"] == 0


def test_gw_will_after_old_firmware_birth_marks_offline(any_db):
    # an online state without conn (older firmware) cannot be ordered against: the will wins
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(TOPIC, birth(3, None), T0)
    ing.flush()
    assert store.panel_state(any_db, "s1", "p1")["conn"] is None
    ing.handle(TOPIC, messages.will_payload(3, 1), T0 + 10)
    ing.flush()
    assert online(any_db) == 0
