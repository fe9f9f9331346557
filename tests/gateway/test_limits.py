"""Bounded intake: per-panel rate and dead-letter budgets (gateway/limits.py, pure), panels and
sites that are not configured, payloads cut to 1 KB, retention. One faulty or hostile client
cannot fill the database or the gateway's memory, and never costs another panel its acks; a
panel catching up on its journal is never limited."""

import hashlib
import random
import tracemalloc

from gw_ingest_support import ROOT, T0, acks_of, bad_event, ev_topic, event_body, st_topic, state_body
from gw_site_support import apply_site

from gateway import ingest, limits, store
from protocol import messages

TIGHT = limits.LimitSettings(rate=1.0, burst=20, letters=5, letters_total=50, window_ms=600000, max_keys=100)


# ---- the pure budgets ------------------------------------------------------------------------


def test_a_bucket_lets_the_burst_through_then_the_rate():
    lim = limits.Limits(TIGHT)
    key = ("s1", "p1")
    assert all(lim.take(key, T0) for _ in range(20))
    assert not lim.take(key, T0)
    assert not lim.take(key, T0 + 500)  # half a token
    assert lim.take(key, T0 + 1000)  # one a second
    assert not lim.take(key, T0 - 60000)  # an older time (a redelivery) adds nothing
    assert lim.take(("s1", "p2"), T0)  # another panel has its own bucket


def test_dead_letters_are_budgeted_per_panel_and_in_total_per_window():
    lim = limits.Limits(TIGHT)
    assert [lim.take_letter(("s1", "p1"), T0) for _ in range(6)] == [True] * 5 + [False]
    assert lim.take_letter(("s1", "p2"), T0)
    assert lim.take_letter(("s1", "p1"), T0 + 600000)  # a new window


def test_refusals_are_counted_per_panel_and_window_and_told_once():
    lim = limits.Limits(TIGHT)
    told = [lim.refuse(("s1", "p1"), limits.RATE, 100, T0 + i) for i in range(1000)]
    assert told == [True] + [False] * 999
    assert lim.refuse(("s1", "p1"), limits.LETTERS, 5, T0)
    rows = sorted(lim.drain())
    assert rows == [
        ("s1", "p1", T0 - T0 % 600000, limits.LETTERS, 1, 5, T0, T0),
        ("s1", "p1", T0 - T0 % 600000, limits.RATE, 1000, 100000, T0, T0 + 999),
    ]
    assert lim.drain() == [] and not lim.pending()


def test_made_up_keys_share_one_counter_and_memory_stays_flat():
    lim = limits.Limits(TIGHT)
    tracemalloc.start()
    for i in range(20000):
        key = ("s%d" % i, "p%d" % i)
        lim.take(key, T0)
        lim.take_letter(key, T0)
        lim.refuse(key, limits.RATE, 10, T0)
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(lim._buckets) <= TIGHT.max_keys + 1 and len(lim._letters) <= TIGHT.max_keys + 1  # + SHARED
    assert len(lim.drain()) <= TIGHT.max_keys + 1
    assert size < 2_000_000, size


# ---- the Ingestor with limits ------------------------------------------------------------------


def _ingestor(db, settings=TIGHT):
    return ingest.Ingestor(db, ROOT, limits=limits.Limits(settings))


def test_a_panel_catching_up_on_its_journal_is_never_limited(any_db):
    """2,000 journaled events, sent 50 past the ack at a time as firmware/link.py does, all at
    one instant: far over the rate (1 a second), all of it stored and acked. The send window is
    exempt once the gateway knows the panel's ack; the first round (and the state) count
    against the burst, which is why a burst is never below a round."""
    ing = _ingestor(any_db, limits.LimitSettings(rate=1.0, burst=60, letters=5, letters_total=50))
    ing.handle(st_topic("p1"), state_body(2000), T0)
    acked = 0
    while acked < 2000:
        for seq in range(acked + 1, min(acked + 50, 2000) + 1):
            ing.handle(ev_topic("p1"), event_body(seq), T0)
        acked = acks_of(ing.flush())["p1"]
    assert ing.stats["refused"] == 0
    assert store.last_ack(any_db, "s1", "p1") == 2000


def test_a_flood_on_one_panel_is_counted_and_other_panels_are_stored_and_acked(any_db):
    """p1's topic flooded (junk with and without readable seqs, valid events with made-up seqs,
    states, huge payloads) while p2 presses: p2 loses nothing and is acked; what p1's flood
    stores is bounded by the budgets, the rest is counted."""
    ing = _ingestor(any_db)
    rng = random.Random(7)
    p2 = 0
    for i in range(10000):
        kind = i % 5
        if kind == 0:
            ing.handle(ev_topic("p1"), bad_event(rng.randrange(1, 10**9)), T0 + i)
        elif kind == 1:
            ing.handle(ev_topic("p1"), b"\xff junk %d" % i, T0 + i)
        elif kind == 2:
            ing.handle(ev_topic("p1"), event_body(rng.randrange(1000, 10**9)), T0 + i)
        elif kind == 3:
            ing.handle(ev_topic("p1"), b"x" * 70000, T0 + i)
        else:
            ing.handle(st_topic("p1"), state_body(rng.randrange(1, 10**6)), T0 + i)
        if i % 100 == 0:
            p2 += 1
            ing.handle(ev_topic("p2"), event_body(p2, 1), T0 + i)
        if i % 500 == 499:
            ing.flush()
    ing.flush()
    assert store.last_ack(any_db, "s1", "p2") == p2 == 100
    assert any_db.scalar("SELECT COUNT(*) FROM raw_events WHERE device = 'p2'") == 100
    p1_events = any_db.scalar("SELECT COUNT(*) FROM raw_events WHERE device = 'p1'")
    letters = store.dead_letter_count(any_db, distinct=True)
    assert p1_events <= TIGHT.burst + 10 and letters <= TIGHT.letters + 1, (p1_events, letters)
    refused = store.refusals(any_db)
    assert {(r["site"], r["device"]) for r in refused} == {("s1", "p1")}
    assert sum(r["messages"] for r in refused) == ing.stats["refused"] > 9000
    assert any_db.scalar("SELECT COUNT(*) FROM refusals") <= 4  # per panel, window and reason
    assert ing.stats["messages"] == (
        ing.stats["events"]
        + ing.stats["duplicates"]
        + ing.stats["states"]
        + ing.stats["dead_letters"]
        + ing.stats["refused"]
    )


def test_events_of_panels_not_configured_are_dead_letters_without_panel_state(any_db):
    """Once a site file configured panels, an event or state on a panel's topic that is not
    configured, or counts of a site that is not, is a dead letter "unknown panel"/"unknown site"
    and leaves nothing per panel: no state, no ack, no dead seq, not in status."""
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(ev_topic("early"), event_body(1), T0)  # nothing configured yet: welcome
    assert acks_of(ing.flush()) == {"early": 1}
    apply_site(any_db, now_ms=T0)
    ing.refresh_known()
    for n in range(300):
        ing.handle(ev_topic("made-up-%d" % n, site="x%d" % n), bad_event(1), T0 + n)
        ing.handle(st_topic("made-up-%d" % n, site="x%d" % n), state_body(5), T0 + n)
    ing.handle("%s/x1/counts" % ROOT, messages.encode_counts({"from": T0, "to": T0 + 60000, "visitors": 3}), T0)
    ing.handle(ev_topic("desk-1", site="msk"), event_body(1), T0 + 1000)  # configured
    ing.handle(ev_topic("early"), event_body(2), T0)  # not configured any more
    assert acks_of(ing.flush()) == {"desk-1": 1}
    letters = store.dead_letters(any_db, limit=0)
    assert len(letters) == 602
    assert sum("unknown panel" in r["reason"] for r in letters) == 601
    assert sum("unknown site" in r["reason"] for r in letters) == 1
    assert all(r["site"] is None and r["seq"] is None for r in letters)
    assert {d for _s, d in store.devices(any_db)} == {"early", "desk-1"}
    assert any_db.scalar("SELECT COUNT(*) FROM dead_seqs") == 0
    assert len(ing._panel_cache) == 2


def test_a_huge_payload_keeps_its_first_kilobyte_its_size_and_hash(any_db):
    """Two 50 MB messages used to add 105 MB to the database. What a letter keeps is bounded;
    the same message again is still the same letter."""
    huge = b"{" + b"x" * (5 * 1024 * 1024)
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(ev_topic("p1"), huge, T0)
    ing.handle(ev_topic("p1"), store.clip(huge), T0 + 1)  # as the service hands it over
    ing.flush()
    (dl,) = store.dead_letters(any_db)
    assert dl["payload"] == huge[:1024] and dl["size"] == len(huge) and dl["seen"] == 2
    assert dl["payload_sha256"] == hashlib.sha256(huge).hexdigest()
    assert "5242881 bytes, limit is 1024" in dl["reason"]


def test_retention_deletes_old_letters_and_counts_but_not_what_the_ack_needs(any_db):
    ing = _ingestor(any_db)
    ing.handle(st_topic("p1"), state_body(1), T0)
    ing.handle(ev_topic("p1"), bad_event(1), T0)
    for i in range(100):
        ing.handle(ev_topic("p1"), b"junk %d" % i, T0 + i)
    ing.flush()
    assert store.dead_letter_count(any_db, distinct=True) == TIGHT.letters
    day = 86400000
    with any_db.transaction():
        assert store.expire_dead_letters(any_db, T0 - day) == 0
    with any_db.transaction():
        n = store.expire_dead_letters(any_db, T0 + 90 * day, limit=3)
    assert n == 3 + 2  # three letters (the oldest), both refusal rows (budget, rate)
    while True:
        with any_db.transaction():
            if not store.expire_dead_letters(any_db, T0 + 90 * day, limit=3):
                break
    assert store.dead_letter_count(any_db) == 0 and store.refusals(any_db) == []
    assert store.last_ack(any_db, "s1", "p1") == 1  # the dead seq still counts
    assert store.contiguous_acked_seq(any_db, "s1", "p1", previous=0) == 1
