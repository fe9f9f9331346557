"""firmware.buttons: debounce, seller short/long, stuck faults, event-driven sampling."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.buttons import NAMES, Buttons, Debouncer

DEB = 30
LONG = 1500
STUCK = 30000
BIT = {name: 1 << i for i, name in enumerate(NAMES)}


def levels_at(edges, t):
    """edges: sorted [(time, mask)]; the mask in force at time t (0 before the first edge)."""
    mask = 0
    for at, m in edges:
        if at > t:
            break
        mask = m
    return mask


def run_polled(edges, end, step=1, **kw):
    b = Buttons(**kw)
    out = []
    for t in range(0, end + 1, step):
        for ev in b.sample(levels_at(edges, t), t):
            out.append((t,) + ev)
    return out, b


def run_event_driven(edges, end, **kw):
    """Sample only at input edges and at next_deadline(): what a simulator does."""
    b = Buttons(**kw)
    out = []
    edge_times = sorted(set([0] + [at for at, _ in edges]))
    t = 0
    while t <= end:
        for ev in b.sample(levels_at(edges, t), t):
            out.append((t,) + ev)
        nxt = [x for x in edge_times if x > t]
        dl = b.next_deadline(t)
        if dl is not None:
            assert dl > t, "a past deadline after sampling would busy-loop"
            nxt.append(dl)
        if not nxt:
            break
        t = min(nxt)
    return out, b


def press(edges, bit, at, bounce_down, hold, bounce_up, mask=0):
    """Append a bouncing press of `bit`: bounce_down/up are toggle offsets (ms, ascending)."""
    for off in bounce_down:  # toggles; an odd count ends pressed
        mask ^= bit
        edges.append((at + off, mask))
    if not mask & bit:
        edges.append((at + (bounce_down[-1] if bounce_down else 0) + 1, mask | bit))
        mask |= bit
    down_end = edges[-1][0]
    up_at = down_end + hold
    for off in bounce_up:
        mask ^= bit
        edges.append((up_at + off, mask))
    if mask & bit:
        edges.append((up_at + (bounce_up[-1] if bounce_up else 0) + 1, mask & ~bit))
        mask &= ~bit
    return edges, down_end, edges[-1][0]


bursts = st.lists(st.integers(0, DEB - 2), max_size=8).map(lambda xs: sorted(set(xs)))


@pytest.mark.e2e
@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["yes", "no", "unsure"]), down=bursts, up=bursts, hold=st.integers(DEB + 1, 3000))
def test_fw_core_bounce_burst_gives_exactly_one_press(name, down, up, hold):
    edges, _, end = press([], BIT[name], 100, down, hold, up)
    for runner in (run_polled, run_event_driven):
        out, b = runner(edges, end + 200)
        assert [e[1:] for e in out] == [(name, None)], (runner.__name__, out)
        assert b.down() == 0 and b.faults() == []


@settings(max_examples=150, deadline=None)
@given(down=bursts, up=bursts, hold=st.integers(DEB + 1, 4000))
def test_fw_core_seller_one_event_classified_by_hold(down, up, hold):
    edges, down_end, up_end = press([], BIT["seller"], 100, down, hold, up)
    polled, _ = run_polled(edges, up_end + 200)
    driven, _ = run_event_driven(edges, up_end + 200)
    assert polled == driven  # sampling strategy changes nothing
    held_edges = up_end - down_end  # between the edges where the level settled
    if held_edges < LONG:
        assert polled == [(up_end + DEB, "seller_short", held_edges)]
    else:
        assert len(polled) == 1
        t, ev, held = polled[0]
        assert ev == "seller_long" and LONG <= held <= held_edges and t <= up_end + DEB
        if edges[-1 - len(up) - (1 if len(up) % 2 == 0 else 0)][0] > down_end + LONG:
            assert (t, held) == (down_end + LONG, LONG)  # crossed while held: reported at once


@pytest.mark.e2e
def test_fw_core_long_short_boundaries():
    # (held ms, expected events); a level must still be there debounce_ms after its edge
    cases = (
        (DEB, []),  # too short: bounce
        (DEB + 1, [(100 + DEB + 1 + DEB, "seller_short", DEB + 1)]),
        (LONG - 1, [(100 + LONG - 1 + DEB, "seller_short", LONG - 1)]),
        (LONG, [(100 + LONG + DEB, "seller_long", LONG)]),  # released at the threshold
        (LONG + 1, [(100 + LONG, "seller_long", LONG)]),  # crossed while still down
        (5000, [(100 + LONG, "seller_long", LONG)]),
    )
    for hold, expect in cases:
        edges = [(100, BIT["seller"]), (100 + hold, 0)]
        for runner in (run_polled, run_event_driven):
            out, _ = runner(edges, 100 + hold + 100)
            assert out == expect, (hold, runner.__name__, out)


def test_fw_core_press_shorter_than_debounce_is_ignored():
    edges = [(100, BIT["yes"]), (100 + DEB, 0)]
    out, _ = run_polled(edges, 500)
    assert out == []


def test_fw_core_long_reported_on_release_if_not_sampled_in_between():
    b = Buttons()
    b.sample(0, 0)
    b.sample(BIT["seller"], 10)
    assert b.sample(BIT["seller"], 40) == []  # settled: press started at 10
    b.sample(0, 1700)  # raw release, first sample after the threshold
    assert b.sample(0, 1730) == [("seller_long", 1690)]


def test_fw_core_stuck_button_is_a_fault_not_a_stream():
    edges = [(100, BIT["yes"]), (100 + STUCK + 5000, 0)]
    b = Buttons()
    events, revs = [], []
    for t in range(0, 100 + STUCK + 6000, 5):
        events += [(t,) + e for e in b.sample(levels_at(edges, t), t)]
        revs.append((t, list(b.faults()), b.faults_rev))
    assert [e[1] for e in events] == ["yes"]
    during = [f for t, f, _ in revs if 100 + STUCK <= t < 100 + STUCK + 5000]
    assert during and all(f == ["stuck:yes"] for f in during)
    before = [f for t, f, _ in revs if t < 100 + STUCK - 10]
    assert all(f == [] for f in before)
    assert revs[-1][1] == [] and revs[-1][2] == 2  # set once, cleared once


def test_fw_core_stuck_deadline_and_seller_stuck():
    b = Buttons()
    b.sample(0, 0)
    b.sample(BIT["seller"], 1000)
    assert b.next_deadline(1000) == 1030  # debounce settle
    b.sample(BIT["seller"], 1030)
    assert b.next_deadline(1030) == 2500  # long threshold
    assert b.sample(BIT["seller"], 2500) == [("seller_long", 1500)]
    assert b.next_deadline(2500) == 31000  # stuck threshold
    b.sample(BIT["seller"], 31000)
    assert b.faults() == ["stuck:seller"] and b.next_deadline(31000) is None
    b.sample(0, 40000)
    assert b.sample(0, 40030) == [] and b.faults() == []  # no short after the long


def test_fw_core_simultaneous_buttons_and_tuple_input():
    b = Buttons()
    b.sample((False, False, False, False), 0)
    b.sample((True, True, False, False), 10)
    assert b.sample((True, True, True, False), 40) == [("yes", None), ("no", None)]
    assert b.sample((True, True, True, False), 70) == [("unsure", None)]
    assert b.down() == 0b0111


def test_fw_core_button_held_at_boot_is_not_a_press():
    b = Buttons()
    b.sample(BIT["yes"] | BIT["no"] | BIT["seller"], 0)  # technician holds Yes+No at boot
    assert b.down() == BIT["yes"] | BIT["no"] | BIT["seller"]
    out = []
    for t in range(1, 3000):
        out += b.sample(BIT["yes"] | BIT["no"] | BIT["seller"] if t < 2000 else 0, t)
    assert out == []
    assert b.sample(BIT["yes"], 3000) == [] and b.sample(BIT["yes"], 3030) == [("yes", None)]


def test_fw_core_set_timings_applies():
    b = Buttons()
    b.set_timings(debounce_ms=10, long_ms=800)
    b.sample(0, 0)
    b.sample(BIT["seller"], 100)
    b.sample(BIT["seller"], 110)
    assert b.sample(BIT["seller"], 900) == [("seller_long", 800)]


def test_fw_core_debouncer_alone():
    d = Debouncer(30)
    assert d.feed(True, 0) is None and d.deadline() == 30
    assert d.feed(False, 10) is None and d.deadline() is None  # glitch gone
    assert d.feed(True, 20) is None
    assert d.feed(True, 50) is True and d.edge_ms == 20 and d.stable
