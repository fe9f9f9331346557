"""The matching rule of docs/transactions.md (gateway/txmatch.py, pure): examples from the docs
and properties over random tills (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import txmatch
from gateway.txmatch import MatchRules

MIN = 60000
R = MatchRules(before_ms=10 * MIN, skew_ms=2 * MIN)


def poll(ms, seq, device="desk-1"):
    return {"device": device, "open_seq": seq, "poll_ms": ms}


def sale(ms, tx_id):
    return {"tx_id": tx_id, "at_ms": ms}


def pairs(polls, sales, taken=()):
    return [(p["open_seq"], s["tx_id"]) for p, s in txmatch.match(polls, sales, R, taken)]


def test_a_poll_takes_the_sale_just_before_the_press():
    assert pairs([poll(10 * MIN, 1)], [sale(9 * MIN, "a")]) == [(1, "a")]


def test_of_two_sales_before_the_press_the_later_is_taken_and_the_earlier_is_a_sale_without_poll():
    assert pairs([poll(10 * MIN, 1)], [sale(2 * MIN, "a"), sale(9 * MIN, "b")]) == [(1, "b")]


def test_a_second_press_after_one_sale_has_no_sale():
    # the docs' example: sale 12:00:10, presses 12:00:40 and 12:01:30 -> the second has no sale
    assert pairs([poll(40_000, 1), poll(90_000, 3)], [sale(10_000, "a")]) == [(1, "a")]


def test_clock_skew_a_sale_stamped_after_the_press_within_skew_is_matched():
    assert pairs([poll(10 * MIN, 1)], [sale(10 * MIN + 90_000, "a")]) == [(1, "a")]
    assert pairs([poll(10 * MIN, 1)], [sale(10 * MIN + 2 * MIN + 1, "a")]) == []


def test_a_sale_older_than_the_window_is_not_matched():
    assert pairs([poll(20 * MIN, 1)], [sale(20 * MIN - 10 * MIN - 1, "a")]) == []
    assert pairs([poll(20 * MIN, 1)], [sale(20 * MIN - 10 * MIN, "a")]) == [(1, "a")]


def test_taken_sales_are_left_for_no_one():
    assert pairs([poll(10 * MIN, 1)], [sale(9 * MIN, "a")], taken={"a"}) == []


# ---- properties ---------------------------------------------------------------------------------

times = st.integers(min_value=0, max_value=120 * MIN)


@st.composite
def till(draw):
    poll_times = draw(st.lists(times, max_size=25))
    sale_times = draw(st.lists(times, max_size=25))
    polls = [poll(t, i + 1, device=draw(st.sampled_from(["a", "b"]))) for i, t in enumerate(poll_times)]
    sales = [sale(t, "tx-%d" % i) for i, t in enumerate(sale_times)]
    return polls, sales


@settings(max_examples=300, deadline=None)
@given(till())
def test_every_match_is_within_the_window_and_one_to_one(data):
    polls, sales = data
    out = txmatch.match(polls, sales, R)
    assert len({id(p) for p, _ in out}) == len(out)
    assert len({s["tx_id"] for _, s in out}) == len(out)
    for p, s in out:
        assert p["poll_ms"] - R.before_ms <= s["at_ms"] <= p["poll_ms"] + R.skew_ms


@settings(max_examples=300, deadline=None)
@given(till())
def test_no_unmatched_poll_could_have_taken_a_free_sale(data):
    """Maximal: a poll left without a sale has no free sale in its window."""
    polls, sales = data
    out = txmatch.match(polls, sales, R)
    used = {s["tx_id"] for _, s in out}
    matched = {(p["device"], p["open_seq"]) for p, _ in out}
    for p in polls:
        if (p["device"], p["open_seq"]) in matched:
            continue
        free = [s for s in sales if s["tx_id"] not in used]
        assert not [s for s in free if p["poll_ms"] - R.before_ms <= s["at_ms"] <= p["poll_ms"] + R.skew_ms]


@settings(max_examples=300, deadline=None)
@given(till())
def test_each_poll_takes_the_closest_sale_free_when_its_turn_comes(data):
    polls, sales = data
    out = txmatch.match(polls, sales, R)
    taken_before = set()
    by_poll = {(p["device"], p["open_seq"]): s for p, s in out}
    for p in sorted(polls, key=lambda p: (p["poll_ms"], p["device"], p["open_seq"])):
        s = by_poll.get((p["device"], p["open_seq"]))
        if s is None:
            continue
        for other in sales:
            if other["tx_id"] in taken_before or not (
                p["poll_ms"] - R.before_ms <= other["at_ms"] <= p["poll_ms"] + R.skew_ms
            ):
                continue
            assert abs(p["poll_ms"] - s["at_ms"]) <= abs(p["poll_ms"] - other["at_ms"])
        taken_before.add(s["tx_id"])


@settings(max_examples=300, deadline=None)
@given(till(), times)
def test_matching_from_a_time_on_with_the_earlier_matches_kept_equals_matching_everything(data, cut):
    """What gateway/transactions.py relies on to keep the table incrementally."""
    polls, sales = data
    full = pairs(polls, sales)
    early = [p for p in polls if p["poll_ms"] < cut]
    late = [p for p in polls if p["poll_ms"] >= cut]
    first = txmatch.match(early, sales, R)
    taken = {s["tx_id"] for _, s in first}
    rest = txmatch.match(late, sales, R, taken)
    assert sorted(full) == sorted([(p["open_seq"], s["tx_id"]) for p, s in first + rest])


def test_till_of_a_panel_is_its_setting_or_its_own_id():
    assert txmatch.till_of({"till": "till-2"}, "desk-1") == "till-2"
    assert txmatch.till_of({}, "desk-1") == "desk-1"
    assert txmatch.till_of(None, "desk-1") == "desk-1"
