"""Doubt scores (gateway/doubt.py, pure): each sign of a gamed poll adds its reason; honest
polls score 0; the ranking puts the gaming seller's polls first."""

import random

from doubt_support import S, T
from doubt_support import poll as _poll

from gateway import doubt


def _reasons(polls, unsolicited=()):
    return {k: v.reasons for k, v in doubt.score(polls, unsolicited).items()}


def test_doubt_an_honest_poll_has_no_reason():
    polls = [_poll(1, T, "yes"), _poll(3, T + 600 * S, "no"), _poll(5, T + 1200 * S, None)]
    assert set(_reasons(polls).values()) == {()}


def test_doubt_answers_faster_than_a_customer_reacts():
    r = _reasons(
        [_poll(1, T, reaction=300), _poll(3, T + 600 * S, reaction=1000), _poll(5, T + 1200 * S, reaction=1600)]
    )
    assert r == {"msk/desk-1/1": ("very_fast_answer",), "msk/desk-1/3": ("fast_answer",), "msk/desk-1/5": ()}


def test_doubt_reopened_polls_and_extra_presses():
    polls = [
        _poll(1, T, "no"),
        _poll(3, T + 40 * S, "yes"),  # a No overwritten 40 s later
        _poll(5, T + 900 * S, "yes", seller_presses=2),
        _poll(8, T + 1800 * S, "yes", extra_presses=3),
        _poll(10, T + 3600 * S, "no"),
        _poll(12, T + 3700 * S, "yes"),  # 100 s later: a new customer
    ]
    r = _reasons(polls)
    assert r["msk/desk-1/3"] == ("reopened",) and r["msk/desk-1/5"] == ("reopened",)
    assert r["msk/desk-1/8"] == ("extra_presses",) and r["msk/desk-1/12"] == ()


def test_doubt_unsolicited_presses_near_a_poll():
    polls = [_poll(1, T), _poll(3, T + 600 * S)]
    r = _reasons(polls, [{"site": "msk", "device": "desk-1", "at_ms": T + 620 * S}])
    assert r == {"msk/desk-1/1": (), "msk/desk-1/3": ("unsolicited_near",)}


def test_doubt_yes_streak_far_above_the_employees_own_share():
    rng = random.Random(1)
    polls = [_poll(i, T + i * 600 * S, "yes" if rng.random() < 0.5 else "no") for i in range(1, 200)]
    assert not any("yes_streak" in x for x in _reasons(polls).values())
    polls += [_poll(i, T + i * 600 * S, "yes") for i in range(200, 225)]
    r = _reasons(polls)
    assert all(r["msk/desk-1/%d" % i] == ("yes_streak",) for i in range(200, 225))


def test_doubt_rank_puts_the_riskiest_first_and_says_why():
    polls = [_poll(1, T), _poll(3, T + 600 * S, reaction=200, extra_presses=1), _poll(5, T + 1200 * S, reaction=900)]
    doubts = doubt.score(polls)
    ranked = doubt.rank(polls, doubts)
    assert [doubt.poll_id(p) for p in ranked] == ["msk/desk-1/3", "msk/desk-1/5", "msk/desk-1/1"]
    assert doubts["msk/desk-1/3"] == doubt.Doubt(5, ("very_fast_answer", "extra_presses"))


def test_doubt_review_list_risk_puts_the_gamed_polls_first_with_reasons(tmp_path, capsys):
    from gw_site_support import SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events

    from gateway import derive
    from rating import cli

    db = sqlite_db(tmp_path)
    apply_site(db, SITE_TOML)
    panel = Panel("msk", "desk-1")
    for i in range(10):
        panel.poll(T0 + i * 600 * S, "yes", after_ms=4000)  # customers
    panel.poll(T0 + 6100 * S, "yes", after_ms=250)  # the seller's other hand
    panel.poll(T0 + 6700 * S, "yes", after_ms=4000)
    store_events(db, panel.events)
    derive.rebuild(db, T0 + 10 * 3600 * S)
    db.close()
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert cli.main(["review", "list", "--db", url, "--share", "0", "--risk", "--lang", "en"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("msk/desk-1/21 ") and "doubtful" in out[0]
    assert "doubtful 4: answered before a person could read the question" in out[1]
    assert len([line for line in out if line.startswith("msk/")]) == 1  # honest polls: not sampled
    assert cli.main(["review", "list", "--db", url, "--share", "0", "--lang", "en"]) == 0
    assert "msk/desk-1/21" not in capsys.readouterr().out  # without --risk: the plain sample


def test_doubt_an_answer_pressed_while_the_seller_holds_the_opening_press():
    # the press opening poll 5 went down 800 ms before its release (opened_ms): a Yes at
    # -500 ms came before the poll (unsolicited) while the seller's button was still down
    polls = [_poll(5, T, seller_hold_ms=800), _poll(9, T + 600 * S, seller_hold_ms=800)]
    held = [{"site": "msk", "device": "desk-1", "at_ms": T - 500}]
    before = [{"site": "msk", "device": "desk-1", "at_ms": T + 600 * S - 900}]  # before the press went down
    assert _reasons(polls, held)["msk/desk-1/5"] == ("seller_held", "unsolicited_near")
    assert "seller_held" not in _reasons(polls, before)["msk/desk-1/9"]
    assert doubt.score(polls, held)["msk/desk-1/5"].score == doubt.WEIGHTS["seller_held"] + 1


def test_doubt_the_previous_polls_answer_pressed_during_the_next_opening_press():
    # poll 1 still open; its answer came while the seller held the button opening poll 3
    polls = [_poll(1, T, reaction=19_700), _poll(3, T + 20 * S, seller_hold_ms=600)]
    r = _reasons(polls)
    assert "seller_held" in r["msk/desk-1/1"] and "seller_held" in r["msk/desk-1/3"]


def test_doubt_an_unknown_hold_never_marks_a_poll():
    polls = [_poll(5, T, seller_hold_ms=None), _poll(7, T + 600 * S, seller_hold_ms=0)]
    held = [
        {"site": "msk", "device": "desk-1", "at_ms": T - 100},
        {"site": "msk", "device": "desk-1", "at_ms": T + 600 * S},
    ]
    assert all("seller_held" not in r for r in _reasons(polls, held).values())


def test_a_poll_with_no_sale_at_its_till_is_marked_and_ranked_above_an_honest_one():
    """The `no_sale` sign (gateway/transactions.py gives the ids; docs/transactions.md)."""
    polls = [
        {"site": "s", "device": "d", "open_seq": 1, "opened_ms": 0, "answered_ms": 5000, "answer": "yes"},
        {"site": "s", "device": "d", "open_seq": 3, "opened_ms": 600000, "answered_ms": 605000, "answer": "yes"},
    ]
    doubts = doubt.score(polls, no_sale={"s/d/3", "s/other/9"})
    assert doubts["s/d/3"].reasons == ("no_sale",) and doubts["s/d/3"].score == doubt.WEIGHTS["no_sale"]
    assert doubts["s/d/1"].reasons == ()
    assert [doubt.poll_id(p) for p in doubt.rank(polls, doubts)] == ["s/d/3", "s/d/1"]
