"""count_polls: the one way gateway and simulator count poll records."""

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.windows import Poll
from kpi_core import PollCounts, count_polls, poll_id


def test_dicts_with_invalid_and_fm():
    polls = [
        {"id": "a", "answer": "yes", "opened_at": 0},
        {"id": "b", "answer": "no", "opened_at": 100},  # under FM
        {"id": "c", "answer": None, "opened_at": 199},  # under FM (end exclusive: 200)
        {"id": "d", "answer": None, "opened_at": 200},  # just after FM
        {"id": "e", "answer": "no", "opened_at": 150},  # invalid
        {"id": "f", "answer": "unsure", "opened_at": 150},  # FM does not matter for unsure
    ]
    c = count_polls(polls, fm_periods=[(100, 200)], invalid={"e"})
    assert c == PollCounts(yes=1, no=1, unsure=1, silent=2, fm_no=1, fm_silent=1)


def test_window_builder_polls_and_identity():
    p1 = Poll(7, 1000, "no", 8, 1500, 0, 0, 31000)
    p2 = Poll(9, 5000, None, None, None, 0, 0, 35000)
    assert count_polls([p1, p2], fm_periods=[{"start": 1000, "end": 2000}]) == PollCounts(0, 1, 0, 1, 1, 0)
    assert count_polls([p1, p2], invalid={7}) == PollCounts(0, 0, 0, 1)


@dataclass
class Rec:
    site: str
    device: str
    open_seq: int
    opened_at: int
    answer: str | None


def test_site_device_identity_and_scoped_periods():
    a = Rec("s1", "p1", 5, 100, "no")
    b = Rec("s1", "p2", 5, 100, "no")
    assert poll_id(a) == "s1/p1/5"
    assert count_polls([a, b], invalid={"s1/p2/5"}) == PollCounts(0, 1, 0, 0)
    c = count_polls([a, b], fm_periods=[{"start": 0, "end": 1000, "site": "s1", "device": "p1"}])
    assert c == PollCounts(0, 2, 0, 0, fm_no=1)
    c = count_polls([a, b], invalid={5}, key=lambda r: r.open_seq)
    assert c == PollCounts(0, 0, 0, 0)


def test_bad_records_named():
    with pytest.raises(ValueError, match="answer must be"):
        count_polls([{"id": "x", "answer": "maybe", "opened_at": 0}])
    with pytest.raises(ValueError, match="opened_at"):
        count_polls([{"id": "x", "answer": None}], fm_periods=[(0, 1)])
    with pytest.raises(ValueError, match="no identity"):
        count_polls([{"answer": "yes"}], invalid={"x"})
    with pytest.raises(ValueError, match="start and end"):
        count_polls([], fm_periods=[{"start": 1}])


record = st.fixed_dictionaries(
    {
        "id": st.integers(0, 50),
        "answer": st.sampled_from([None, "yes", "no", "unsure"]),
        "opened_at": st.integers(0, 1000),
    }
)


@given(
    st.lists(record, max_size=60),
    st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 300)), max_size=4),
    st.sets(st.integers(0, 50), max_size=10),
)
def test_agrees_with_naive_count(polls, spans, invalid):
    periods = [(s, s + d) for s, d in spans]
    got = count_polls(polls, fm_periods=periods, invalid=invalid)
    valid = [p for p in polls if p["id"] not in invalid]
    under = [p for p in valid if any(s <= p["opened_at"] < e for s, e in periods)]
    assert got.yes == sum(p["answer"] == "yes" for p in valid)
    assert got.no == sum(p["answer"] == "no" for p in valid)
    assert got.unsure == sum(p["answer"] == "unsure" for p in valid)
    assert got.silent == sum(p["answer"] is None for p in valid)
    assert got.fm_no == sum(p["answer"] == "no" for p in under)
    assert got.fm_silent == sum(p["answer"] is None for p in under)
    # Splitting the records into two scopes and adding gives the same counts.
    half = len(polls) // 2
    assert count_polls(polls[:half], periods, invalid) + count_polls(polls[half:], periods, invalid) == got
