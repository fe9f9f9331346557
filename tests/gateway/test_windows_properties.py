"""Property tests of gateway/windows.py.

KEY property: feeding a stream in any batches, with advance() at any times the stream
allows (never past the next event's time) and snapshot/restore through JSON anywhere,
gives exactly the outputs of one replay followed by advance(far future).
Second: that replay agrees with a reference model written another way (look-up per poll
instead of a state machine).
"""

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.windows import Anomaly, ForceMajeure, PanelWindows, Poll, Unsolicited, WindowSettings

FAR = 10**9
EVENTS = ["yes", "no", "unsure", "seller_short", "seller_long"]
# Small numbers so that rearm, windows and periods overlap a lot in short streams.
settings_st = st.builds(
    lambda w, r, f: WindowSettings(window_ms=w, rearm_ms=min(r, w), fm_ms=f),
    st.integers(1, 12),
    st.integers(0, 6),
    st.integers(1, 30),
)

step_st = st.tuples(
    st.one_of(st.just(1), st.just(1), st.just(1), st.integers(-2, 3)),  # seq step
    st.one_of(st.integers(0, 6), st.integers(-3, 15)),  # time step
    st.one_of(st.sampled_from(EVENTS), st.sampled_from(EVENTS), st.just("bogus")),
)
item_st = st.one_of(step_st, step_st, step_st, step_st, step_st, step_st, settings_st)


def build_stream(first, items):
    """Items -> ("ev", seq, at, ev) | ("set", WindowSettings), absolute seq/at."""
    seq, at, out = 1, 0, [("set", first)]
    for it in items:
        if isinstance(it, WindowSettings):
            out.append(("set", it))
            continue
        dseq, dt, ev = it
        seq, at = seq + dseq, at + dt
        out.append(("ev", seq, at, ev))
    return out


def resolved_times(stream, strict=True):
    """Per position: the time the builder gives that event (None for settings changes).

    A rejected (out_of_order) event changes nothing; strict=True takes it as happening at
    the clock, so no advance() may pass it - then even the position of its anomaly among
    time-closed outputs is the same. strict=False gives it no time (None) at all."""
    last, clock, res = None, None, []
    for item in stream:
        if item[0] != "ev":
            res.append(None)
            continue
        _, seq, at, _ = item
        if last is not None and seq <= last:
            res.append(clock if strict else None)
            continue
        last = seq
        clock = at if clock is None else max(clock, at)
        res.append(clock)
    return res


def replay(stream):
    w, out = None, []
    for item in stream:
        if item[0] == "set":
            if w is None:
                w = PanelWindows(item[1])
            else:
                w.set_settings(item[1])
        else:
            out += w.feed(item[1], item[2], item[3])
    return out + w.advance(FAR)


@settings(max_examples=400, deadline=None)
@given(first=settings_st, items=st.lists(item_st, max_size=40), data=st.data())
def test_incremental_equals_replay(first, items, data):
    stream = build_stream(first, items)
    assert incremental(stream, resolved_times(stream, strict=True), data) == replay(stream)


@settings(max_examples=200, deadline=None)
@given(first=settings_st, items=st.lists(item_st, max_size=40), data=st.data())
def test_advancing_past_rejected_events_changes_only_order(first, items, data):
    stream = build_stream(first, items)
    got = incremental(stream, resolved_times(stream, strict=False), data)
    assert Counter(map(repr, got)) == Counter(map(repr, replay(stream)))


def incremental(stream, res, data):
    w, out = None, []
    for i, item in enumerate(stream):
        if item[0] == "set":
            if w is None:
                w = PanelWindows(item[1])
            else:
                w.set_settings(item[1])
            continue
        # Before this event: maybe a few advances (allowed up to this event's resolved
        # time; out-of-order events resolve to nothing, so look for the next accepted one),
        # maybe a JSON snapshot round trip.
        nxt = next((r for r in res[i:] if r is not None), FAR)
        for _ in range(data.draw(st.integers(0, 2), label="advances")):
            now = data.draw(st.integers(min_value=-5, max_value=nxt), label="now")
            out += w.advance(now)
        if data.draw(st.booleans(), label="snapshot"):
            w = PanelWindows.restore(json.loads(json.dumps(w.snapshot())))
        out += w.feed(item[1], item[2], item[3])
    if data.draw(st.booleans(), label="final snapshot"):
        w = PanelWindows.restore(json.loads(json.dumps(w.snapshot())))
    out += w.advance(data.draw(st.integers(0, FAR), label="last now"))
    out += w.advance(FAR)
    return out


# -- reference model -----------------------------------------------------------------------


def reference(stream):  # noqa: C901 - a second, independent statement of the rules
    """Same rules, other shape: accept events, group short presses into polls, then look up
    for each answer / long press the poll live at that moment."""
    anomalies, accepted = [], []
    last = clock = None
    cur = None
    for item in stream:
        if item[0] == "set":
            cur = item[1]
            continue
        _, seq, at, ev = item
        if last is not None and seq <= last:
            anomalies.append(Anomaly(seq, "out_of_order", ""))
            continue
        last = seq
        if clock is not None and at < clock:
            anomalies.append(Anomaly(seq, "time_backwards", ""))
        clock = at if clock is None else max(clock, at)
        if ev not in EVENTS:
            anomalies.append(Anomaly(seq, "unknown_event", ""))
        accepted.append((seq, clock, ev, cur))

    # polls: [open_seq, opened_at, closes_at, rearm, last_press, dups, end_seq]
    polls = []
    for seq, t, ev, s in accepted:  # noqa: B007 - live_poll reads s
        if ev != "seller_short":
            continue
        p = polls[-1] if polls else None
        if p and t <= p["closes_at"] and t - p["last"] <= p["rearm"]:
            p["dups"] += 1
            p["last"] = t
            continue
        if p and t <= p["closes_at"]:
            p["superseded_by"] = seq
        polls.append(
            {
                "open_seq": seq,
                "opened_at": t,
                "closes_at": t + s.window_ms,
                "rearm": s.rearm_ms,
                "last": t,
                "dups": 0,
                "superseded_by": None,
                "answers": [],
            }
        )

    def live_poll(seq, t):
        """The poll open at this event: the last one opened before it in seq order, if its
        window still runs at t and no later short press superseded it before this seq."""
        before = [p for p in polls if p["open_seq"] < seq]
        if not before:
            return None
        p = before[-1]
        if t > p["closes_at"]:
            return None
        return p

    unsolicited = []
    for seq, t, ev, s in accepted:  # noqa: B007 - live_poll reads s
        if ev in ("yes", "no", "unsure"):
            p = live_poll(seq, t)
            if p is not None and t > p["opened_at"]:
                p["answers"].append((seq, t, ev))
            else:
                unsolicited.append(Unsolicited(seq, t, ev))

    periods = []
    for seq, t, ev, s in accepted:  # noqa: B007 - live_poll reads s
        if ev != "seller_long":
            continue
        f = periods[-1] if periods else None
        if f is not None and t < f["end"]:
            f["end"] = max(f["end"], t + f["fm"])
            f["seqs"].append(seq)
            continue
        p = live_poll(seq, t)
        periods.append(
            {"seq": seq, "start": p["opened_at"] if p else t, "end": t + s.fm_ms, "fm": s.fm_ms, "seqs": [seq]}
        )

    out = [
        Poll(
            p["open_seq"],
            p["opened_at"],
            p["answers"][0][2] if p["answers"] else None,
            p["answers"][0][0] if p["answers"] else None,
            p["answers"][0][1] if p["answers"] else None,
            max(len(p["answers"]) - 1, 0),
            p["dups"],
            p["closes_at"],
            p["superseded_by"],
        )
        for p in polls
    ]
    out += [ForceMajeure(f["seq"], f["start"], f["end"], len(f["seqs"]), tuple(f["seqs"])) for f in periods]
    return out + unsolicited + anomalies


def _key(o):
    return repr(o if not isinstance(o, Anomaly) else Anomaly(o.seq, o.kind, ""))


@settings(max_examples=400, deadline=None)
@given(first=settings_st, items=st.lists(item_st, max_size=40))
def test_replay_agrees_with_reference_model(first, items):
    stream = build_stream(first, items)
    got = Counter(_key(o) for o in replay(stream))
    want = Counter(_key(o) for o in reference(stream))
    assert got == want


@settings(max_examples=200, deadline=None)
@given(first=settings_st, items=st.lists(item_st, max_size=40))
def test_invariants_of_outputs(first, items):
    stream = build_stream(first, items)
    out = replay(stream)
    accepted_seqs = set()
    for o in out:
        if isinstance(o, Poll):
            assert o.opened_at < o.closes_at
            assert o.silent == (o.answer is None)
            if o.silent:
                assert o.answer_seq is None and o.answered_at is None and o.extra_presses == 0
            else:
                assert o.open_seq < o.answer_seq and o.opened_at < o.answered_at <= o.closes_at
            accepted_seqs.add(o.open_seq)
        elif isinstance(o, ForceMajeure):
            assert o.start <= o.end and o.presses == len(o.seqs) >= 1 and o.seqs[0] == o.seq
            assert list(o.seqs) == sorted(set(o.seqs))
    # Every poll is emitted once.
    assert len(accepted_seqs) == sum(isinstance(o, Poll) for o in out)
