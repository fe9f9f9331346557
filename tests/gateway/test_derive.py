"""derive.update (incremental, after each ingest commit) == derive.rebuild (from scratch)."""

import shutil
import tempfile

from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, derived, open_db, sqlite_db, store_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import derive, store

EVENTS = ("seller_short", "seller_short", "yes", "no", "unsure", "seller_long")


@st.composite
def scenarios(draw):
    """Two panels' events, delivered in random batches (late resends fill gaps), with clock
    offsets learnt late, a settings change, and update() calls at random clock times."""
    out = []
    for device in ("desk-1", "exit"):
        p = Panel(device=device)
        t = T0
        for _ in range(draw(st.integers(0, 25))):
            t += draw(st.sampled_from([0, 500, 2000, 4000, 15000, 29000, 31000, 120000, 20 * MIN]))
            jitter = draw(st.sampled_from([0, 0, 0, -3000]))  # clock going backwards sometimes
            clock = draw(st.sampled_from([True, True, True, False]))
            ev = draw(st.sampled_from(EVENTS))
            hold = draw(st.sampled_from([None, 150, 900])) if ev.startswith("seller") else None
            p.press(t + jitter, ev, clock=clock, received_ms=t + 100, hold=hold)
        out.extend(p.events)
    order = draw(st.permutations(range(len(out))))
    n_batches = draw(st.integers(1, 6))
    cuts = sorted(draw(st.lists(st.integers(0, len(out)), min_size=n_batches - 1, max_size=n_batches - 1)))
    batches, prev = [], 0
    for c in cuts + [len(out)]:
        # within a batch events go in seq order; across batches a low seq may come late
        batches.append(sorted((out[i] for i in order[prev:c]), key=lambda e: (e["device"], e["seq"])))
        prev = c
    offset_at = draw(st.integers(0, len(batches)))  # when the boot clock offset becomes known
    settings_at = draw(st.integers(0, len(batches) + 1))  # when a settings change is applied
    nows = [draw(st.integers(T0, T0 + 12 * 60 * MIN)) for _ in batches]
    return batches, offset_at, settings_at, nows


CHANGED = SITE_TOML.replace("window_s = 30", "window_s = 10").replace(
    "from = 2025-01-01T00:00:00Z\n\n[deployment.reference]", "\n[deployment.reference]"
)


def _run(db, batches, offset_at, settings_at, nows, incremental):
    apply_site(db)
    for i, batch in enumerate(batches):
        if i == offset_at:
            for device in ("desk-1", "exit"):
                store.record_boot_clock(db, "msk", device, 1, T0, 3600000, "state", T0)
        if i == settings_at:
            apply_site(db, CHANGED, now_ms=T0 + 30 * MIN)
        store_events(db, batch)
        if incremental:
            derive.update(db, {(e["site"], e["device"]) for e in batch}, nows[i])
    if offset_at >= len(batches):
        for device in ("desk-1", "exit"):
            store.record_boot_clock(db, "msk", device, 1, T0, 3600000, "state", T0)
    if settings_at >= len(batches):
        apply_site(db, CHANGED, now_ms=T0 + 30 * MIN)
    final = T0 + 13 * 60 * MIN
    if incremental:
        derive.update(db, [("msk", "desk-1"), ("msk", "exit")], final)
    else:
        derive.rebuild(db, final)
    return derived(db)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_gw_review_update_equals_rebuild(scenario):
    batches, offset_at, settings_at, nows = scenario
    folder = tempfile.mkdtemp(prefix="gw-derive-")
    try:
        a = open_db("sqlite:///%s/a.db" % folder)
        b = open_db("sqlite:///%s/b.db" % folder)
        inc = _run(a, batches, offset_at, settings_at, nows, True)
        full = _run(b, batches, offset_at, settings_at, nows, False)
        assert inc == full
        # and rebuilding the incremental database changes nothing
        derive.rebuild(a, T0 + 13 * 60 * MIN)
        assert derived(a) == full
        a.close()
        b.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_gw_review_late_answer_replaces_provisional_silent(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    p = Panel()
    p.poll(T0)
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], T0 + 10000)
    assert db.query("SELECT * FROM polls") == []  # window still running: not silent yet
    derive.update(db, [("msk", "desk-1")], T0 + 10 * MIN)
    (row,) = db.query("SELECT answer, provisional FROM polls")
    assert row == {"answer": None, "provisional": 1}
    # the answer was pressed in time but reaches the gateway late (panel was offline)
    p.press(T0 + 20000, "yes", received_ms=T0 + 11 * MIN)
    store_events(db, p.events[-1:])
    derive.update(db, [("msk", "desk-1")], T0 + 11 * MIN)
    (row,) = db.query("SELECT answer, time_source FROM polls")
    assert row == {"answer": "yes", "time_source": "device"}


def test_gw_review_time_sources_recorded(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    p = Panel()
    p.poll(T0, "yes", after_ms=1000)
    p.press(T0 + MIN, "seller_short", clock=False, received_ms=T0 + 5 * MIN)
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], T0 + 10 * MIN)
    rows = db.query("SELECT open_seq, opened_ms, time_source FROM polls ORDER BY open_seq")
    assert [(r["time_source"], r["opened_ms"]) for r in rows] == [("device", T0), ("arrival", T0 + 5 * MIN)]
    # a heartbeat of the same boot tells the clock offset: the time is repaired
    store.record_boot_clock(db, "msk", "desk-1", 1, T0 + 2 * MIN, 3600000 + 2 * MIN, "state", T0 + 6 * MIN)
    derive.update(db, [("msk", "desk-1")], T0 + 10 * MIN)
    rows = db.query("SELECT open_seq, opened_ms, time_source FROM polls ORDER BY open_seq")
    assert [(r["time_source"], r["opened_ms"]) for r in rows] == [("device", T0), ("repaired", T0 + MIN)]


def test_gw_review_force_majeure_rows(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    p = Panel()
    p.press(T0, "seller_short")
    p.press(T0 + 2000, "seller_long", hold=3000)
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], T0 + 20 * MIN)
    (fm,) = db.query("SELECT * FROM force_majeure")
    assert (fm["seq"], fm["start_ms"], fm["end_ms"], fm["employee"]) == (2, T0, T0 + 2000 + 15 * MIN, "ivanova")
    assert fm["video_url"].endswith("t=2025-01-06T11:00:00+03:00")


def test_gw_review_ingest_hook_derives_polls(tmp_path):
    """The real ingest path (decode -> store -> commit -> on_commit) keeps polls up to date."""
    from gateway import ingest
    from protocol import messages

    db = sqlite_db(tmp_path)
    apply_site(db)
    ing = ingest.Ingestor(db, on_commit=ingest.derive_hook(db))
    topic = "rating/v1/msk/desk-1/event"
    ing.handle(topic, messages.encode_event(1, 1, 5000, T0, "seller_short"), T0 + 100)
    ing.handle(topic, messages.encode_event(2, 1, 9000, T0 + 4000, "no"), T0 + 4100)
    ing.flush()
    assert db.query("SELECT * FROM polls") == []  # its window is still running at T0 + 4 s
    ing.handle(topic, messages.encode_event(3, 1, 95000, T0 + 90000, "seller_short"), T0 + 90100)
    ing.handle(topic, messages.encode_event(3, 1, 95000, T0 + 90000, "seller_short"), T0 + 90200)  # resend
    ing.flush()
    rows = db.query("SELECT open_seq, answer, employee, provisional FROM polls ORDER BY open_seq")
    assert rows == [{"open_seq": 1, "answer": "no", "employee": "ivanova", "provisional": 0}]
    assert ing.stats["hook_errors"] == 0


def test_the_light_index_and_pages_read_the_same_polls_as_polls_and_reports(tmp_path):
    from gw_site_support import T_OFFICES, two_offices

    from gateway import schema

    url = two_offices(tmp_path, [(0, "yes"), (1, "no"), (2, None)], [(0, "no"), (5, "yes")])
    db = schema.open_database(url)
    polls, fms = derive.polls_and_reports(db)
    light, light_fms = derive.index(db)
    assert [(p["site"], p["device"], p["open_seq"]) for p in light] == [
        (p["site"], p["device"], p["open_seq"]) for p in polls
    ]
    assert set(light[0]) == set(derive.INDEX_POLL_COLUMNS) and light_fms == []
    assert {p["site"] for p in derive.index(db, {"aaa"})[0]} == {"aaa"}
    assert derive.index(db, set())[0] == []
    pages, after = [], None
    while True:
        page = derive.polls_page(db, after=after, limit=2)
        pages += page
        if len(page) < 2:
            break
        last = page[-1]
        after = (last["opened_ms"], last["site"], last["device"], last["open_seq"])
    assert pages == polls
    assert [p["answer"] for p in derive.polls_page(db, {"msk"}, answer="silent")] == [None]
    assert derive.latest_poll_ms(db) == max(p["opened_ms"] for p in polls)
    assert derive.latest_poll_ms(db, {"msk"}) == T_OFFICES + 2 * 3600000
    assert derive.poll(db, "msk", "desk-1", 1)["answer"] == "yes" and derive.poll(db, "msk", "desk-1", 99) is None
    db.close()


def test_derive_a_poll_keeps_the_hold_of_its_opening_press_across_updates(any_db):
    # the hold rides with the opening press while its poll is open: the row written when the
    # window closes, in a later update from the saved state, still has it (doubt: seller_held)
    db = any_db
    apply_site(db)
    p = Panel()
    p.press(T0 + 1000, "yes")  # pressed while the seller's button (down at T0 + 800) is held
    p.press(T0 + 1500, "seller_short", hold=700)
    store_events(db, p.events[:2])
    derive.update(db, [("msk", "desk-1")], T0 + 2000)
    p.press(T0 + 1900, "yes")
    store_events(db, p.events[2:])
    derive.update(db, [("msk", "desk-1")], T0 + 10 * MIN)
    row = derive.poll(db, "msk", "desk-1", 2)
    assert row["seller_hold_ms"] == 700 and row["answer"] == "yes"
    from gateway import doubt

    scores = doubt.score([row], derive.unsolicited_presses(db))
    assert "seller_held" in scores["msk/desk-1/2"].reasons
    assert derived(db) == _rebuilt(db, T0 + 10 * MIN)


def _rebuilt(db, now_ms):
    derive.rebuild(db, now_ms)
    return derived(db)
