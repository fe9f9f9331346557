"""CRM follow-ups (gateway/followups.py): every valid No and silent poll not under a confirmed
force majeure becomes one follow-up once its hold is over; a later invalid verdict or confirmed
force majeure retracts it, a verdict back to valid sends it again; a rebuild issues nothing new;
polls seen too late get none. On SQLite and PostgreSQL."""

import json

import pytest
from gw_site_support import MIN, SITE_TOML, T0, apply_site, review_scenario

from gateway import derive, followups, review, site, transactions

HOUR = 60 * MIN
FOLLOWUPS = "\n[followups]\nhold_min = 30\nfm_wait_h = 24\nmax_age_h = 48\n"


def _scenario(db):
    """review_scenario's polls, with the [followups] table: desk-1 no (3), silent (5), long press
    (6: force majeure T0+10..25 min), no (7) and silent (9) under it; exit no (1), silent (3)."""
    review_scenario(db)
    apply_site(db, SITE_TOML + FOLLOWUPS, T0 + 1)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], T0 + 60 * MIN)


def _ids(events):
    return [e["id"] for e in events]


def _feed(db):
    events, _last = followups.feed(db, 0, None, 1000)
    return events


def test_followups_come_once_after_the_hold_and_wait_for_the_force_majeure_verdict(any_db):
    _scenario(any_db)
    assert followups.update(any_db, T0 + 20 * MIN) == []  # windows closed, but the hold is not over
    sent = followups.update(any_db, T0 + 60 * MIN)
    assert _ids(sent) == [
        "followup:msk/desk-1/3:1",
        "followup:msk/desk-1/5:1",
        "followup:msk/exit/1:1",
        "followup:msk/exit/3:1",
    ]
    assert {r["open_seq"]: r["state"] for r in followups.listing(any_db) if r["device"] == "desk-1"} == {
        3: "sent",
        5: "sent",
        7: "held",  # under the seller's force-majeure report, not yet judged
        9: "held",
    }
    assert followups.update(any_db, T0 + 61 * MIN) == []  # a second pass issues nothing
    derive.rebuild(any_db, T0 + 62 * MIN)
    assert followups.update(any_db, T0 + 63 * MIN, panels={("msk", "desk-1"), ("msk", "exit")}) == []
    review.record(any_db, review.FM, "msk/desk-1/6", "confirm", "", "expert", T0 + 2 * HOUR)
    assert followups.update(any_db, T0 + 2 * HOUR) == []  # confirmed: never sent
    assert {r["state"] for r in followups.listing(any_db) if r["open_seq"] in (7, 9) and r["device"] == "desk-1"} == {
        "excluded"
    }
    first = sent[0]
    assert first["kind"] == "followup" and first["poll"]["answer"] == "no"
    assert first["poll"]["opened_local"] == "2025-01-06T11:02:00+03:00"
    assert first["poll"]["opened_utc"] == "2025-01-06T08:02:00Z" and first["poll"]["timezone"] == "Europe/Moscow"
    assert first["employee"] == {"id": "ivanova", "name": "Елена Иванова"}
    assert first["question"]["text_en"] == "Are you satisfied with the work of Елена Иванова?"
    assert first["office"]["name"] == "Офис на Тверской"
    assert first["transaction"] is None and first["loyalty_ref"] is None
    assert sent[1]["poll"]["answer"] == "silent"


def test_followups_a_rejected_report_releases_the_held_polls(any_db):
    _scenario(any_db)
    followups.update(any_db, T0 + 60 * MIN)
    review.record(any_db, review.FM, "msk/desk-1/6", "reject", "no queue on the video", "expert", T0 + 2 * HOUR)
    assert _ids(followups.update(any_db, T0 + 2 * HOUR)) == ["followup:msk/desk-1/7:1", "followup:msk/desk-1/9:1"]


def test_followups_held_polls_go_out_when_nobody_judged_the_report_in_time(any_db):
    _scenario(any_db)
    followups.update(any_db, T0 + 60 * MIN)
    assert followups.update(any_db, T0 + 23 * HOUR) == []
    assert _ids(followups.update(any_db, T0 + 25 * HOUR)) == ["followup:msk/desk-1/7:1", "followup:msk/desk-1/9:1"]
    # the expert confirms it later: both are taken back
    review.record(any_db, review.FM, "msk/desk-1/6", "confirm", "", "expert", T0 + 26 * HOUR)
    back = followups.update(any_db, T0 + 26 * HOUR)
    assert [(e["id"], e["kind"], e["reason"], e["retracts"]) for e in back] == [
        ("followup:msk/desk-1/7:2", "retraction", "force_majeure", "followup:msk/desk-1/7:1"),
        ("followup:msk/desk-1/9:2", "retraction", "force_majeure", "followup:msk/desk-1/9:1"),
    ]


def test_followups_an_invalid_verdict_retracts_and_valid_sends_again(any_db):
    _scenario(any_db)
    followups.update(any_db, T0 + 60 * MIN)
    review.record(any_db, review.POLL, "msk/exit/1", "invalid", "the seller pressed No", "expert", T0 + 2 * HOUR)
    back = followups.update(any_db, T0 + 2 * HOUR)
    assert [(e["id"], e["kind"], e["reason"]) for e in back] == [("followup:msk/exit/1:2", "retraction", "invalid")]
    assert "loyalty_ref" not in back[0]  # a retraction repeats nothing about the customer
    review.record(any_db, review.POLL, "msk/exit/1", "valid", "", "expert", T0 + 3 * HOUR)
    again = followups.update(any_db, T0 + 3 * HOUR)
    assert [(e["id"], e["kind"]) for e in again] == [("followup:msk/exit/1:3", "followup")]
    assert followups.update(any_db, T0 + 4 * HOUR) == []
    kinds = [e["kind"] for e in _feed(any_db) if e["followup"] == "msk/exit/1"]
    assert kinds == ["followup", "retraction", "followup"]


def test_followups_no_followup_for_polls_invalid_or_under_confirmed_force_majeure_before_the_hold(any_db):
    _scenario(any_db)
    review.record(any_db, review.POLL, "msk/desk-1/3", "invalid", "test press", "expert", T0 + 30 * MIN)
    review.record(any_db, review.FM, "msk/desk-1/6", "confirm", "", "expert", T0 + 30 * MIN)
    sent = followups.update(any_db, T0 + 60 * MIN)
    assert _ids(sent) == ["followup:msk/desk-1/5:1", "followup:msk/exit/1:1", "followup:msk/exit/3:1"]
    reasons = {(r["device"], r["open_seq"]): (r["state"], r["reason"]) for r in followups.listing(any_db)}
    assert reasons[("desk-1", 3)] == ("excluded", "invalid")
    assert reasons[("desk-1", 7)] == ("excluded", "force_majeure")


def test_followups_polls_first_seen_too_late_get_none(any_db):
    _scenario(any_db)
    assert followups.update(any_db, T0 + 72 * HOUR, panels={("msk", "desk-1"), ("msk", "exit")}) == []
    assert _feed(any_db) == []


def test_followups_off_when_the_site_file_says_so(any_db):
    review_scenario(any_db)
    apply_site(any_db, SITE_TOML + "\n[followups]\nenabled = false\n", T0 + 1)
    assert followups.update(any_db, T0 + 60 * MIN) == []


@pytest.mark.parametrize(
    "table, where",
    [
        ("[followups]\nhold_min = 0\n", "followups.hold_min"),
        ("[followups]\nfm_wait_h = 100\nmax_age_h = 48\n", "followups.fm_wait_h"),
        ('[followups.webhooks.crm]\nurl = "http://crm.example/hook"\n', "followups.webhooks.crm.url"),
        ('[followups.webhooks.crm]\nurl = "https://crm.example/hook"\nwebhook_key = "x"\n', "webhook_key"),
        ('[followups.webhooks.crm]\nurl = "https://crm.example/hook"\nsecrets = "rel.toml"\n', "secrets"),
        ('[followups.webhooks.crm]\nurl = "https://crm.example/hook"\noffices = ["nowhere"]\n', "offices"),
    ],
)
def test_followups_site_file_table_is_checked(table, where):
    with pytest.raises(site.SiteFileError) as info:
        site.parse(SITE_TOML + "\n" + table)
    assert where in str(info.value)


def test_followups_payload_is_json_with_sorted_keys_stored_as_sent(any_db):
    _scenario(any_db)
    followups.update(any_db, T0 + 60 * MIN)
    events = _feed(any_db)
    assert json.loads(json.dumps(events[0])) == events[0]


def test_followups_a_poll_answered_after_all_is_retracted_and_a_late_poll_still_comes(any_db):
    from gw_site_support import Panel, store_events

    apply_site(any_db, SITE_TOML + FOLLOWUPS)
    d = Panel()
    d.poll(T0)  # seq 1: silent so far (the answer is still in the panel's journal)
    store_events(any_db, d.events)
    derive.update(any_db, [("msk", "desk-1")], T0 + 40 * MIN)
    assert _ids(followups.update(any_db, T0 + 40 * MIN, panels={("msk", "desk-1")})) == ["followup:msk/desk-1/1:1"]
    # the panel comes back: its answer pressed inside the window, and a No poll of an hour ago
    d.press(T0 + 10000, "yes", received_ms=T0 + 2 * HOUR)
    d.poll(T0 + HOUR, "no")
    store_events(any_db, d.events[1:])
    derive.rebuild(any_db, T0 + 2 * HOUR)
    events = followups.update(any_db, T0 + 2 * HOUR, panels={("msk", "desk-1")})
    assert [(e["id"], e["kind"], e.get("reason")) for e in events] == [
        ("followup:msk/desk-1/1:2", "retraction", "answered"),
        ("followup:msk/desk-1/3:1", "followup", None),
    ]


def test_followups_a_verdict_before_the_hold_is_over_does_not_skip_the_hold(any_db):
    _scenario(any_db)
    followups.update(any_db, T0 + 20 * MIN)
    review.record(any_db, review.POLL, "msk/desk-1/3", "valid", "", "expert", T0 + 21 * MIN)
    review.record(any_db, review.POLL, "msk/desk-1/1", "valid", "", "expert", T0 + 21 * MIN)  # a Yes
    assert followups.update(any_db, T0 + 22 * MIN) == []
    assert followups.listing(any_db) == []
    assert "followup:msk/desk-1/3:1" in _ids(followups.update(any_db, T0 + 60 * MIN))
    assert ("desk-1", 1) not in {(r["device"], r["open_seq"]) for r in followups.listing(any_db)}


def test_followups_carry_the_matched_sale_and_its_loyalty_reference(any_db):
    """A No poll that followed a POS sale at its till (docs/transactions.md) names the sale and
    the sale's pseudonymous loyalty reference; an unmatched poll has null for both."""
    _scenario(any_db)
    till_site = SITE_TOML.replace('device = "desk-1"\n', 'device = "desk-1"\ntill = "till-1"\n', 1)
    apply_site(any_db, till_site + FOLLOWUPS, T0 + 2)
    sale = {"id": "R-1", "till": "till-1", "t": T0 + 2 * MIN + 10_000, "loyalty": "crm-77"}  # the No at T0+2min
    with any_db.transaction():
        transactions.store_many(any_db, [("msk", transactions.check("msk", sale))], "test", T0 + 3 * MIN)
    derive.update(any_db, [("msk", "desk-1")], T0 + 60 * MIN)
    assert transactions.match_of(any_db, "msk", "desk-1", 3) is not None
    sent = {e["poll"]["id"]: e for e in followups.update(any_db, T0 + 60 * MIN)}
    matched = sent["msk/desk-1/3"]
    assert matched["transaction"] == {
        "id": "R-1",
        "till": "till-1",
        "at_ms": T0 + 2 * MIN + 10_000,
        "at_utc": "2025-01-06T08:02:10Z",
    }
    assert matched["loyalty_ref"] == "crm-77"
    assert sent["msk/desk-1/5"]["transaction"] is None and sent["msk/desk-1/5"]["loyalty_ref"] is None
