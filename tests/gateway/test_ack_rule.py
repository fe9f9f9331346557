"""The cumulative ack with dead letters (dead_seqs, infer_unreadable_gap) against real databases:
a bad event never stalls its panel (up to the seq the panel reports journaled: junk above it
never moves the ack, and a genuine event for that seq is stored and wins), a plain gap always holds the ack, an unreadable message never
stands in for more than the panel's send window, a panel resending what was handled gets its ack
again (a wiped panel renumbers), and the incremental ack equals the rule computed from scratch."""

from gw_ingest_support import (
    GARBAGE,
    GRACE,
    ROOT,
    T0,
    acks_of,
    bad_event,
    ev_topic,
    event_body,
    st_topic,
    state_body,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import journal as J
from firmware.memfs import unacked
from gateway import ingest, schema, store
from protocol import panel


def test_malformed_event_with_readable_seq_is_acked_past(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(st_topic("p1"), state_body(5), T0)  # the panel journaled 1..5
    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    ing.handle(ev_topic("p1"), bad_event(3), T0 + 3)
    for seq in (4, 5):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 5}
    # the panel missed the ack and resends 3..5: still one dead letter, the ack stays
    for seq in (3, 4, 5):
        ing.handle(ev_topic("p1"), bad_event(3) if seq == 3 else event_body(seq), T0 + 100 + seq)
    assert acks_of(ing.flush()) == {"p1": 5}
    (dl,) = store.dead_letters(any_db)
    assert (dl["seen"], dl["site"], dl["device"], dl["seq"]) == (2, "s1", "p1", 3)
    assert store.last_ack(any_db, "s1", "p1") == 5
    assert store.contiguous_acked_seq(any_db, "s1", "p1", previous=0) == 5
    # status: seq 3 is lost (it will never be stored as an event), at once, and says why
    gaps = store.gaps(any_db, "s1", "p1", T0 + 200)
    assert gaps == [{"first": 3, "last": 3, "count": 1, "status": "lost", "why": "dead_letter"}]
    # a new gateway process (empty cache) computes the same
    ing2 = ingest.Ingestor(any_db, ROOT)
    ing2.handle(ev_topic("p1"), event_body(6), T0 + 300)
    assert acks_of(ing2.flush()) == {"p1": 6}


def test_unreadable_event_gap_is_passed_once_overdue_and_resent(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(st_topic("p1"), state_body(5), T0)

    def cycle(at, with_garbage=True):
        if with_garbage:
            ing.handle(ev_topic("p1"), GARBAGE, at)  # what the panel sends as seq 3
        for seq in (4, 5):
            ing.handle(ev_topic("p1"), event_body(seq), at + seq)
        return acks_of(ing.flush())

    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 2}
    assert cycle(T0 + 10) == {}
    assert cycle(T0 + 60000) == {"p1": 2}  # a resend: the ack again, not past the gap
    # overdue, but nothing unreadable came again: a gap is never passed on time alone
    assert cycle(T0 + GRACE + 1000, with_garbage=False) == {"p1": 2}
    # overdue and the panel still sends something unreadable where seq 3 should be
    assert cycle(T0 + GRACE + 2000) == {"p1": 5}
    (dl,) = store.dead_letters(any_db)
    assert dl["seen"] == 3 and dl["seq"] is None
    assert any_db.query("SELECT seq, inferred FROM dead_seqs") == [{"seq": 3, "inferred": 1}]
    assert store.gaps(any_db, "s1", "p1", T0 + GRACE + 3000) == [
        {"first": 3, "last": 3, "count": 1, "status": "lost", "why": "dead_letter"}
    ]
    assert store.contiguous_acked_seq(any_db, "s1", "p1", previous=0) == 5


def test_a_plain_gap_still_holds_the_ack(any_db):
    """Unchanged: without an unreadable message of that panel the ack waits for the gap."""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2, 4, 5):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    ing.handle(ev_topic("p2"), GARBAGE, T0 + 6)  # another panel's garbage changes nothing here
    assert acks_of(ing.flush()) == {"p1": 2}
    for at in (T0 + GRACE + 10, T0 + 2 * GRACE):
        ing.handle(ev_topic("p2"), GARBAGE, at)
        for seq in (4, 5):
            ing.handle(ev_topic("p1"), event_body(seq), at + seq)
        assert acks_of(ing.flush()) == {"p1": 2}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 30))
def test_incremental_ack_with_dead_letters_equals_the_rule(data, n):
    """With some events malformed (seq readable), the cached incremental ack still equals
    store.contiguous_acked_seq from scratch after every batch, and ends at n: a bad event
    never holds its panel back."""
    bad = data.draw(st.sets(st.integers(1, n), max_size=n), label="malformed seqs")
    sent = list(range(1, n + 1))
    sent += data.draw(st.lists(st.sampled_from(sent), max_size=6), label="resends")
    order = data.draw(st.permutations(sent), label="order")
    cuts = set(data.draw(st.sets(st.integers(1, len(order)), max_size=6), label="cuts"))
    d = schema.open_database("sqlite:///:memory:")
    ing = ingest.Ingestor(d, ROOT)
    ing.handle(st_topic("p1"), state_body(n), T0)  # the panel journaled all n
    last = 0
    for i, seq in enumerate(order, 1):
        ing.handle(ev_topic("p1"), bad_event(seq) if seq in bad else event_body(seq), T0 + i)
        if i in cuts or i == len(order):
            for a in acks_of(ing.flush()).values():
                assert a >= last
                last = a
            assert (store.last_ack(d, "s1", "p1") or 0) == store.contiguous_acked_seq(d, "s1", "p1", previous=0)
    assert store.last_ack(d, "s1", "p1") == n
    assert store.dead_letter_count(d, distinct=True) == len(bad)
    lost = store.lost_summary(store.gaps(d, "s1", "p1", T0))[0]
    assert lost == len(bad)
    d.close()


def test_unreadable_message_does_not_pass_a_gap_wider_than_the_send_window(any_db):
    """The panel sends at most 50 events past its ack, so one event 200 above the ack was not
    sent in the round the unreadable message belongs to: 3..201 are not that message's seqs.
    (With a seq near 2**53 the old rule built a list of every seq in between.)"""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 2}
    ing.handle(ev_topic("p1"), event_body(202), T0 + 10)
    ing.handle(ev_topic("p1"), GARBAGE, T0 + 20)
    ing.flush()
    ing.handle(ev_topic("p1"), GARBAGE, T0 + GRACE + 1000)
    ing.flush()
    assert store.last_ack(any_db, "s1", "p1") == 2
    assert any_db.scalar("SELECT COUNT(*) AS n FROM dead_seqs") == 0


def test_unreadable_gap_within_the_send_window_is_still_passed(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(st_topic("p1"), state_body(51), T0)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    for at in (T0 + 10, T0 + GRACE + 1000):
        ing.handle(ev_topic("p1"), GARBAGE, at)
        ing.handle(ev_topic("p1"), event_body(51), at + 1)  # the panel's 50th event past ack 1
        ing.flush()
    assert store.last_ack(any_db, "s1", "p1") == 51


def test_resent_dead_lettered_event_gets_the_ack_again(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(st_topic("p1"), state_body(2), T0)
    ing.handle(ev_topic("p1"), event_body(1), T0)
    ing.handle(ev_topic("p1"), bad_event(2), T0 + 1)
    assert acks_of(ing.flush()) == {"p1": 2}
    # the ack did not reach the panel: it resends its only unacked event, the bad one
    ing.handle(ev_topic("p1"), bad_event(2), T0 + 30000)
    assert acks_of(ing.flush()) == {"p1": 2}  # as for a resent stored event
    ing.handle(ev_topic("p1"), event_body(1), T0 + 30001)
    assert acks_of(ing.flush()) == {"p1": 2}


def test_wiped_panel_gets_the_ack_on_a_conflict_and_renumbers(any_db):
    """A wiped panel that did not get the retained ack at connect sends its new presses under
    seqs the gateway already holds. The conflicts are dead letters; the ack sent back makes the
    panel's journal renumber them above it, and each press is stored once."""
    ing = ingest.Ingestor(any_db, ROOT)
    for seq in range(1, 6):  # the panel's previous life
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    assert acks_of(ing.flush()) == {"p1": 5}
    j = J.Journal(J.MemFs(), capacity=100)
    j.next_boot()
    for i in range(3):
        j.append(J.pack_event(j.boot, 7000 + i, T0 + 100000 + i, "yes", None))

    def send(at):
        for seq, payload in unacked(j):
            boot, up, t, ev, hold = J.unpack_event(payload)
            ing.handle(ev_topic("p1"), panel.encode_event(seq, boot, up, t, ev, hold), at)
        for seq in acks_of(ing.flush()).values():
            j.ack(seq)

    send(T0 + 50000)
    assert [s for s, _ in unacked(j)] == [6, 7, 8]  # renumbered above the gateway's ack
    send(T0 + 60000)
    assert list(unacked(j)) == []
    rows = any_db.query("SELECT seq, t_ms FROM raw_events ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r["t_ms"] for r in rows].count(T0 + 100000) == 1  # each press once
    assert store.last_ack(any_db, "s1", "p1") == 8


def test_wiped_panel_does_not_fill_a_dead_lettered_seq(any_db):
    """The previous life's seq 3 was dead-lettered and acked past. The wiped panel's third
    press, sent as seq 3 before it renumbers, is not that event (the panel deleted it once
    acked): stored there and again under its new seq it would count twice in the KPIs."""
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(st_topic("p1"), state_body(5), T0)
    for seq in (1, 2, 4, 5):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    ing.handle(ev_topic("p1"), bad_event(3), T0 + 3)
    assert acks_of(ing.flush()) == {"p1": 5}
    j = J.Journal(J.MemFs(), capacity=100)
    j.next_boot()
    for i in range(3):
        j.append(J.pack_event(j.boot, 7000 + i, T0 + 100000 + i, "yes", None))
    for at in (T0 + 50000, T0 + 60000):
        for seq, payload in unacked(j):
            ing.handle(ev_topic("p1"), panel.encode_event(seq, *J.unpack_event(payload)), at)
        for seq in acks_of(ing.flush()).values():
            j.ack(seq)
    assert list(unacked(j)) == []
    rows = any_db.query("SELECT seq, t_ms FROM raw_events ORDER BY seq")
    assert [r["t_ms"] for r in rows].count(T0 + 100002) == 1
    assert [r["seq"] for r in rows] == [1, 2, 4, 5, 6, 7, 8]
    # the previous life's seq 3 stays lost
    assert store.lost_summary(store.gaps(any_db, "s1", "p1", T0 + 70000)) == (1, "3")


def test_junk_above_the_journaled_seq_never_moves_the_ack(any_db):
    """Malformed messages with readable seqs 3..27 on a panel's event topic (a faulty client,
    or someone on the shop's Wi-Fi) while the panel has journaled only 1..2: the ack must not
    pass them, or the panel drops the 25 presses it journals under those seqs next. When it
    sends them, the genuine events are stored and win; the dead letters stay as evidence."""
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(st_topic("p1"), state_body(2), T0)
    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    for seq in range(3, 28):
        ing.handle(ev_topic("p1"), bad_event(seq), T0 + 10 + seq)
    assert acks_of(ing.flush()) == {"p1": 2}
    assert store.contiguous_acked_seq(any_db, "s1", "p1", previous=0) == 2
    for seq in range(3, 28):  # the panel's presses under those seqs
        ing.handle(ev_topic("p1"), event_body(seq), T0 + 100 + seq)
    assert acks_of(ing.flush()) == {"p1": 27}
    assert [r["seq"] for r in any_db.query("SELECT seq FROM raw_events ORDER BY seq")] == list(range(1, 28))
    assert store.dead_letter_count(any_db, distinct=True) == 25
    assert store.lost_summary(store.gaps(any_db, "s1", "p1", T0 + 200)) == (0, "")
    # a state that reports them journaled changes nothing: the events are stored
    ing.handle(st_topic("p1"), state_body(27), T0 + 300)
    ing.flush()
    assert store.last_ack(any_db, "s1", "p1") == 27


def test_a_dead_letter_passes_the_ack_once_the_panel_reports_its_seq_journaled(any_db):
    """A firmware bug publishes a bad event under seq 3: the ack waits until the panel's next
    state says it journaled 3 (so the seq is the panel's own), then passes it."""
    ing = ingest.Ingestor(any_db, ROOT)
    ing.handle(st_topic("p1"), state_body(2), T0)
    for seq in (1, 2):
        ing.handle(ev_topic("p1"), event_body(seq), T0 + seq)
    ing.handle(ev_topic("p1"), bad_event(3), T0 + 3)
    ing.handle(ev_topic("p1"), event_body(4), T0 + 4)
    assert acks_of(ing.flush()) == {"p1": 2}
    ing.handle(st_topic("p1"), state_body(4), T0 + 60000)  # the heartbeat
    assert acks_of(ing.flush()) == {"p1": 4}
    assert store.contiguous_acked_seq(any_db, "s1", "p1", previous=0) == 4
