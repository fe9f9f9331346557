"""The gateway's background worker (gateway/worker.py): derivation off the ack path, in bounded
rounds, gives what a rebuild gives; the clock advances only panels with an ended window; the
configs due are computed there and recorded once the broker confirmed them; it runs on its own
thread and connection while the ingest thread commits."""

import random
import time

from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, derived, open_db, store_events

from gateway import configpush, derive, ingest, store
from gateway.worker import Worker
from protocol import messages

ROOT = "rating/v1"
EVENTS = ("seller_short", "seller_short", "yes", "no", "unsure", "seller_long")


def _presses(seed, devices=("desk-1", "exit", "door"), n=150):
    rng = random.Random(seed)
    out = []
    for device in devices:
        p = Panel(device=device)
        t = T0
        for _ in range(n):
            t += rng.choice([500, 2000, 4000, 15000, 29000, 31000, 120000, 20 * MIN])
            p.press(t, rng.choice(EVENTS), clock=rng.random() > 0.2, received_ms=t + 100)
        out.extend(p.events)
    return out


def _rounds(worker, db, now_ms, limit=10000):
    for _ in range(limit):
        if not worker.run_round(db, now_ms):
            return
    raise AssertionError("the worker never finished")


def test_bounded_rounds_derive_what_a_rebuild_derives(tmp_path):
    """Events arrive in batches (a late batch fills gaps), a settings change and a boot clock
    come in the middle; the worker feeds at most 7 events a panel and 2 panels a round."""
    a, b = open_db("sqlite:///%s" % (tmp_path / "a.db")), open_db("sqlite:///%s" % (tmp_path / "b.db"))
    events = _presses(3)
    rng = random.Random(5)
    rng.shuffle(events)
    batches = [sorted(events[i : i + 90], key=lambda e: (e["device"], e["seq"])) for i in range(0, len(events), 90)]
    worker = Worker(a.url, ROOT, max_events=7, max_panels=2, tick_s=0.0)
    changed = SITE_TOML.replace("window_s = 30", "window_s = 10").replace(
        "from = 2025-01-01T00:00:00Z\n\n[deployment.reference]", "\n[deployment.reference]"
    )
    for db in (a, b):
        apply_site(db)
    now = T0
    for i, batch in enumerate(batches):
        for db in (a, b):
            store_events(db, batch)
            if i == 2:
                apply_site(db, changed, now_ms=T0 + 30 * MIN)
            if i == 3:
                for device in ("desk-1", "exit", "door"):
                    store.record_boot_clock(db, "msk", device, 1, T0, 3600000, "state", T0)
        worker.changed({(e["site"], e["device"]) for e in batch})
        now += 40 * MIN
        worker.run_round(a, now)  # some work now, the rest later: rounds are bounded
    final = now + 60 * MIN
    _rounds(worker, a, final)
    derive.rebuild(b, final)
    assert derived(a) == derived(b)
    assert sum(len(rows) for rows in derived(a).values()) > 100


def test_only_panels_whose_window_ended_are_advanced_by_the_clock(tmp_path):
    db = open_db("sqlite:///%s" % (tmp_path / "d.db"))
    apply_site(db)
    p = Panel(device="desk-1")
    p.press(T0, "seller_short", received_ms=T0 + 100)  # a poll opens: 30 s window
    quiet = Panel(device="exit")
    quiet.poll(T0 - 10 * MIN, "yes")  # answered long ago: nothing open
    store_events(db, p.events + quiet.events)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], T0 + 1000)
    assert derive.due_panels(db, T0 + 1000) == []
    closes = T0 + 30000
    assert derive.due_panels(db, closes + derive.MARGIN_MS) == []
    assert derive.due_panels(db, closes + derive.MARGIN_MS + 1) == [("msk", "desk-1")]
    worker = Worker(db.url, ROOT, tick_s=0.0)
    worker._rev = 1  # the settings are not new: only what is due
    _rounds(worker, db, closes + derive.MARGIN_MS + 1)
    (poll,) = [r for r in derived(db)["polls"] if r[1] == "desk-1"]
    row = dict(zip(derive.POLL_COLUMNS, poll, strict=True))
    assert row["answer"] is None and row["provisional"] == 1  # silent, provisional: closed by the clock
    assert derive.due_panels(db, T0 + 24 * 60 * MIN) == []  # nothing left to close


def test_configs_are_computed_by_the_worker_and_recorded_once_confirmed(tmp_path):
    db = open_db("sqlite:///%s" % (tmp_path / "c.db"))
    apply_site(db)
    worker = Worker(db.url, ROOT, config_push_s=0.001)
    worker.run_round(db, T0)
    due = worker.take_configs()
    assert {t for t, _ in due} == {"rating/v1/msk/%s/config" % d for d in ("desk-1", "exit", "door")}
    assert worker.take_configs() == []
    for topic, payload in due:
        worker.pushed(topic, payload)  # the broker confirmed them
    time.sleep(0.01)
    worker.run_round(db, T0 + 1000)
    assert worker.take_configs() == []
    assert configpush.in_force(db, ROOT, now_ms=T0) == dict(due)


def test_the_worker_derives_on_its_own_thread_while_ingest_commits(tmp_path):
    """Ingest hands each commit's panels over and never waits for derivation; the worker (its
    own connection) derives them; stopping it derives what is still pending."""
    url = "sqlite:///%s" % (tmp_path / "w.db")
    db = open_db(url)
    apply_site(db)
    worker = Worker(url, ROOT, every_s=0.05).start()
    ing = ingest.Ingestor(db, ROOT, on_commit=worker.changed)
    events = sorted(_presses(11, devices=("desk-1", "exit"), n=80), key=lambda e: e["received_ms"])
    try:
        for i, e in enumerate(events):
            body = messages.encode_event(e["seq"], e["boot"], e["up_ms"], e["t_ms"], e["ev"], e["hold_ms"])
            ing.handle("%s/msk/%s/event" % (ROOT, e["device"]), body, e["received_ms"])
            if i % 10 == 9:
                ing.flush()
            if i == len(events) // 2:
                # derivation goes on while ingest keeps committing: the first half is derived
                # by a round of the worker's own (a loaded machine may take a while to run it)
                deadline = time.monotonic() + 60
                while worker.stats["panels"] < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert worker.stats["panels"] >= 1, "the worker derived nothing within 60 s"
        ing.flush()
    finally:
        worker.stop(timeout=30)
    fed = {r["device"]: r["fed_seq"] for r in db.query("SELECT device, fed_seq FROM derive_state")}
    assert fed == {"desk-1": 80, "exit": 80}
    assert worker.stats["errors"] == 0 and worker.stats["rounds"] >= 2
