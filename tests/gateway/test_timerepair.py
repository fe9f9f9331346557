"""Time repair: pure resolve() and the boot clock the ingest learns."""

from gateway import ingest, schema, store, timerepair
from protocol import messages

T0 = 1717000000000
ROOT = "rating/v1"


def test_gw_ingest_resolve_prefers_device_then_repaired_then_arrival():
    offsets = {1: T0 - 5000}
    assert timerepair.resolve(T0 + 1, 1, 7000, T0 + 99, offsets) == (T0 + 1, "device")
    assert timerepair.resolve(None, 1, 7000, T0 + 99, offsets) == (T0 + 2000, "repaired")
    assert timerepair.resolve(None, 2, 7000, T0 + 99, offsets) == (T0 + 99, "arrival")
    assert timerepair.resolve(None, 2, 7000, T0 + 99, {}) == (T0 + 99, "arrival")
    assert timerepair.offset(T0, 5000) == T0 - 5000 and timerepair.offset(None, 5) is None


def test_gw_ingest_null_time_repaired_from_a_later_message_of_the_same_boot(tmp_path):
    db = schema.open_database("sqlite:///%s" % (tmp_path / "t.db"))
    ing = ingest.Ingestor(db, ROOT)
    topic = ROOT + "/s1/p1/event"
    # boot 1: no clock at first; a later heartbeat of boot 1 has t and up
    ing.handle(topic, messages.encode_event(1, 1, 1000, None, "seller_short"), T0 + 500000)
    ing.handle(topic, messages.encode_event(2, 1, 4000, None, "yes"), T0 + 500001)
    ing.flush()
    assert [r["time_source"] for r in store.timed_events(db, "s1", "p1")] == ["arrival", "arrival"]
    state = dict(
        online=True,
        boot=1,
        up=60000,
        t=T0 + 60000,
        fw="1",
        seq=2,
        pending=0,
        dropped=0,
        heap=1,
        rssi=None,
        faults=[],
        cfg=None,
        cfg_err=None,
    )
    ing.handle(ROOT + "/s1/p1/state", messages.encode_state(state), T0 + 500002)
    # boot 2 never gets a clock; an event of boot 2 with t does not repair boot 1 or 2's others
    ing.handle(topic, messages.encode_event(3, 2, 100, None, "no"), T0 + 600000)
    ing.handle(topic, messages.encode_event(4, 1, 5000, T0 + 5000 + 7, "no"), T0 + 600001)
    ing.flush()
    rows = store.timed_events(db, "s1", "p1")
    assert [(r["at_ms"], r["time_source"]) for r in rows] == [
        (T0 + 1000, "repaired"),
        (T0 + 4000, "repaired"),
        (T0 + 600000, "arrival"),
        (T0 + 5007, "device"),
    ]
    # the first message with a clock fixed boot 1's offset; later ones do not move it
    assert store.boot_offsets(db, "s1", "p1") == {1: T0}
    db.close()
