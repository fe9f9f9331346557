"""Unit tests of the poll-window rules in gateway/windows.py, one rule (or boundary) each."""

import dataclasses
import json

import pytest

from gateway.windows import Anomaly, ForceMajeure, PanelWindows, Poll, Unsolicited, WindowSettings

S = WindowSettings(window_ms=10000, rearm_ms=3000, fm_ms=60000)
FAR = 10**12


def run(events, settings=S, until=FAR):
    """Feed (seq, at, ev) triples, then advance far: all outputs in order."""
    w = PanelWindows(settings)
    out = []
    for seq, at, ev in events:
        out += w.feed(seq, at, ev)
    return out + w.advance(until)


def polls(out):
    return [o for o in out if isinstance(o, Poll)]


def only_poll(out):
    ps = polls(out)
    assert len(ps) == 1, out
    return ps[0]


# -- settings ----------------------------------------------------------------------------


def test_defaults():
    s = WindowSettings()
    assert (s.window_ms, s.rearm_ms, s.fm_ms) == (30000, 3000, 900000)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"window_ms": 0}, "window_ms"),
        ({"window_ms": -5}, "window_ms"),
        ({"window_ms": 1.5}, "window_ms"),
        ({"rearm_ms": -1}, "rearm_ms"),
        ({"fm_ms": 0}, "fm_ms"),
        ({"window_ms": True}, "window_ms"),
        ({"window_ms": 1000, "rearm_ms": 2000}, "rearm_ms"),
    ],
)
def test_settings_validated_with_field_name(kw, field):
    with pytest.raises(ValueError) as e:
        WindowSettings(**kw)
    assert str(e.value).startswith(field + ":")


def test_settings_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        S.window_ms = 5


# -- answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("ev", ["yes", "no", "unsure"])
def test_first_answer_in_window_is_the_answer(ev):
    p = only_poll(run([(1, 1000, "seller_short"), (2, 5000, ev)]))
    assert (p.answer, p.answer_seq, p.answered_at) == (ev, 2, 5000)
    assert not p.silent and p.open_seq == 1 and p.opened_at == 1000 and p.closes_at == 11000
    assert p.extra_presses == 0 and p.duplicate_presses == 0 and p.superseded_by is None


def test_no_answer_is_silent():
    p = only_poll(run([(1, 1000, "seller_short")]))
    assert p.silent and p.answer is None and p.answer_seq is None and p.answered_at is None


def test_answer_at_opening_instant_is_not_in_window():
    out = run([(1, 1000, "seller_short"), (2, 1000, "yes")])
    assert only_poll(out).silent
    assert Unsolicited(2, 1000, "yes") in out


def test_answer_one_ms_after_opening_counts():
    assert only_poll(run([(1, 1000, "seller_short"), (2, 1001, "no")])).answer == "no"


def test_answer_at_window_end_counts():
    assert only_poll(run([(1, 1000, "seller_short"), (2, 11000, "yes")])).answer == "yes"


def test_answer_after_window_end_is_unsolicited():
    out = run([(1, 1000, "seller_short"), (2, 11001, "yes")])
    assert only_poll(out).silent
    assert out[-1] == Unsolicited(2, 11001, "yes") or Unsolicited(2, 11001, "yes") in out


def test_further_answers_are_extra_presses_answer_unchanged():
    p = only_poll(run([(1, 0, "seller_short"), (2, 100, "no"), (3, 200, "yes"), (4, 300, "yes"), (5, 10000, "unsure")]))
    assert (p.answer, p.answer_seq, p.extra_presses) == ("no", 2, 3)


def test_answer_without_poll_is_unsolicited():
    assert run([(1, 500, "unsure")]) == [Unsolicited(1, 500, "unsure")]


# -- short presses -----------------------------------------------------------------------


def test_short_within_rearm_is_same_poll():
    p = only_poll(run([(1, 0, "seller_short"), (2, 2999, "seller_short"), (3, 5000, "yes")]))
    assert (p.open_seq, p.duplicate_presses, p.answer) == (1, 1, "yes")


def test_rearm_boundary_inclusive():
    p = only_poll(run([(1, 0, "seller_short"), (2, 3000, "seller_short")]))
    assert p.duplicate_presses == 1


def test_rearm_chains_from_previous_press():
    p = only_poll(run([(1, 0, "seller_short"), (2, 2500, "seller_short"), (3, 5000, "seller_short")]))
    assert p.duplicate_presses == 2 and p.closes_at == 10000  # the window is not extended


def test_short_after_rearm_while_unanswered_closes_silent_and_opens_new():
    w = PanelWindows(S)
    assert w.feed(1, 0, "seller_short") == []
    out = w.feed(2, 3001, "seller_short")
    assert out == [Poll(1, 0, None, None, None, 0, 0, 10000, superseded_by=2)]
    out = w.feed(3, 4000, "yes") + w.advance(FAR)
    assert only_poll(out).open_seq == 2 and only_poll(out).answer == "yes"


def test_short_while_answered_closes_answered_and_opens_new():
    w = PanelWindows(S)
    w.feed(1, 0, "seller_short")
    w.feed(2, 1000, "yes")
    out = w.feed(3, 5000, "seller_short")
    assert out == [Poll(1, 0, "yes", 2, 1000, 0, 0, 10000, superseded_by=3)]


def test_duplicate_after_answer_is_still_same_poll():
    p = only_poll(run([(1, 0, "seller_short"), (2, 1000, "yes"), (3, 2000, "seller_short"), (4, 2500, "no")]))
    assert (p.answer, p.duplicate_presses, p.extra_presses) == ("yes", 1, 1)


def test_short_after_window_end_within_rearm_of_last_press_is_new_poll():
    chain = [(i + 1, at, "seller_short") for i, at in enumerate([0, 2500, 5000, 7500, 9999])]
    out = run(chain + [(6, 10001, "seller_short")])
    assert [(p.open_seq, p.duplicate_presses, p.superseded_by) for p in polls(out)] == [(1, 4, None), (6, 0, None)]


# -- closing by time ---------------------------------------------------------------------


def test_poll_closes_only_after_window_end():
    w = PanelWindows(S)
    w.feed(1, 1000, "seller_short")
    w.feed(2, 2000, "yes")
    assert w.advance(11000) == []  # an answer at exactly 11000 would still count
    assert w.pending() and isinstance(w.pending()[0], Poll)
    out = w.advance(11001)
    assert len(out) == 1 and out[0].answer == "yes"
    assert w.advance(FAR) == [] and w.pending() == []


def test_advance_backwards_is_noop():
    w = PanelWindows(S)
    w.feed(1, 1000, "seller_short")
    assert w.advance(500) == []
    assert w.clock == 1000


def test_event_closes_due_items_before_it_is_handled():
    w = PanelWindows(S)
    w.feed(1, 0, "seller_short")
    out = w.feed(2, 20000, "yes")
    assert out == [Poll(1, 0, None, None, None, 0, 0, 10000), Unsolicited(2, 20000, "yes")]


# -- force majeure -----------------------------------------------------------------------


def test_fm_without_open_poll_starts_at_press():
    assert run([(1, 5000, "seller_long")]) == [ForceMajeure(1, 5000, 65000, 1, (1,))]


def test_fm_with_open_poll_starts_at_poll_opening():
    out = run([(1, 1000, "seller_short"), (2, 4000, "seller_long")])
    assert ForceMajeure(2, 1000, 64000, 1, (2,)) in out


def test_fm_after_poll_closed_starts_at_press():
    out = run([(1, 1000, "seller_short"), (2, 11001, "seller_long")])
    assert ForceMajeure(2, 11001, 71001, 1, (2,)) in out


def test_fm_extended_by_another_long_press():
    out = run([(1, 0, "seller_long"), (2, 30000, "seller_long"), (3, 59999, "seller_long")])
    assert out == [ForceMajeure(1, 0, 119999, 3, (1, 2, 3))]


def test_fm_period_is_half_open():
    w = PanelWindows(S)
    w.feed(1, 0, "seller_long")
    assert w.advance(59999) == []
    assert w.advance(60000) == [ForceMajeure(1, 0, 60000, 1, (1,))]
    # A long press exactly at the end opens a new period rather than extending.
    out = run([(1, 0, "seller_long"), (2, 60000, "seller_long")])
    assert out == [ForceMajeure(1, 0, 60000, 1, (1,)), ForceMajeure(2, 60000, 120000, 1, (2,))]


def test_fm_does_not_close_the_poll():
    out = run([(1, 0, "seller_short"), (2, 100, "seller_long"), (3, 200, "no")])
    assert only_poll(out).answer == "no"


def test_due_order_period_before_poll_at_same_instant():
    # period ends at 60000 (due at 60000); poll closes_at 60000 (due after 60000)
    out = run([(1, 0, "seller_long"), (2, 50000, "seller_short")])
    assert [type(o) for o in out] == [ForceMajeure, Poll]
    out = run([(1, 0, "seller_long"), (2, 49999, "seller_short")])
    assert [type(o) for o in out] == [Poll, ForceMajeure]


# -- settings changes --------------------------------------------------------------------


def test_new_settings_apply_to_polls_opened_afterwards():
    w = PanelWindows(S)
    w.feed(1, 0, "seller_short")
    w.feed(2, 1, "seller_long")
    w.set_settings(WindowSettings(window_ms=2000, rearm_ms=0, fm_ms=1000))
    out = w.feed(3, 9000, "yes")  # old poll keeps its 10 s window
    assert out == []
    out = w.feed(4, 9500, "seller_long")  # the running period keeps fm 60 s for extension
    assert out == []
    out = w.feed(5, 9999, "seller_short") + w.feed(6, 12000, "no") + w.advance(FAR)
    assert out[0] == Poll(1, 0, "yes", 3, 9000, 0, 0, 10000, superseded_by=5)
    assert Poll(5, 9999, None, None, None, 0, 0, 11999) in out  # new 2 s window: 12000 too late
    assert ForceMajeure(2, 0, 69500, 2, (2, 4)) in out
    with pytest.raises(TypeError):
        w.set_settings({"window_ms": 5})


# -- anomalies ---------------------------------------------------------------------------


def test_out_of_order_and_repeated_seq_ignored_and_reported():
    w = PanelWindows(S)
    w.feed(5, 0, "seller_short")
    out = w.feed(5, 100, "yes") + w.feed(3, 100, "no")
    assert [(a.kind, a.seq) for a in out] == [("out_of_order", 5), ("out_of_order", 3)]
    assert all(isinstance(a, Anomaly) for a in out)
    assert only_poll(w.advance(FAR)).silent


def test_time_backwards_clamped_to_clock():
    w = PanelWindows(S)
    w.feed(1, 5000, "seller_short")
    out = w.feed(2, 4000, "yes")
    assert out[0].kind == "time_backwards" and "5000" in out[0].detail
    # Taken as 5000, the opening instant, which is not inside (T, T + window].
    assert out[1:] == [Unsolicited(2, 5000, "yes")]
    assert only_poll(w.advance(FAR)).silent


def test_time_backwards_against_advanced_clock():
    w = PanelWindows(S)
    w.feed(1, 0, "seller_short")
    w.advance(5000)
    out = w.feed(2, 4000, "yes")
    assert out[0].kind == "time_backwards"
    p = only_poll(w.advance(FAR))
    assert (p.answer, p.answered_at) == ("yes", 5000)


@pytest.mark.parametrize("ev", ["hello", "", None, 42, "YES", "seller"])
def test_unknown_event_reported_not_raised(ev):
    w = PanelWindows(S)
    out = w.feed(1, 0, ev)
    assert len(out) == 1 and out[0].kind == "unknown_event" and out[0].seq == 1
    assert w.last_seq == 1


def test_bad_argument_types_raise():
    w = PanelWindows(S)
    with pytest.raises(TypeError):
        w.feed("1", 0, "yes")
    with pytest.raises(TypeError):
        w.feed(1, "0", "yes")
    with pytest.raises(ValueError):
        w.feed(1, float("nan"), "yes")
    with pytest.raises(ValueError):
        w.advance(float("inf"))


# -- end of stream, snapshot -------------------------------------------------------------


def test_close_all_emits_open_items_without_moving_clock():
    w = PanelWindows(S)
    w.feed(1, 0, "seller_short")
    w.feed(2, 100, "seller_long")
    out = w.close_all()
    assert out == [Poll(1, 0, None, None, None, 0, 0, 10000), ForceMajeure(2, 0, 60100, 1, (2,))]
    assert w.clock == 100 and w.pending() == [] and w.advance(150) == []
    # the stream may go on: an answer now has no open poll
    assert w.feed(3, 200, "yes") == [Unsolicited(3, 200, "yes")]


def test_snapshot_is_json_and_restores_exactly():
    w = PanelWindows(S)
    w.feed(1, 0, "seller_short")
    w.feed(2, 50, "seller_long")
    w.feed(3, 60, "seller_long")
    w.feed(4, 100, "yes")
    snap = w.snapshot()
    w2 = PanelWindows.restore(json.loads(json.dumps(snap)))
    assert w2.snapshot() == snap
    assert w2.advance(FAR) == w.advance(FAR)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"version": 99},
        {"version": 1, "settings": {"window_ms": 0}},
        {"version": 1, "settings": {}, "poll": {"open_seq": 1}},
    ],
)
def test_restore_rejects_bad_snapshots(bad):
    with pytest.raises((ValueError, KeyError, TypeError)):
        PanelWindows.restore(bad)
