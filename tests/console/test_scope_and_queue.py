"""Pure parts of the console: role capabilities, office scope with regions, the review queue's
filter, order, counts and pages, and the formatting of times and numbers."""

import datetime as dt
import zoneinfo

from console import fmt, queue
from console.scope import Scope, can, regions
from gateway import review, site

SITE = """
[[regions]]
id = "russia"
name = "Russia"

[[regions]]
id = "north"
name = "North"
parent = "russia"

[[sites]]
id = "msk"
name = "Moscow"

[[sites]]
id = "spb"
name = "SPb"
region = "north"
%s
[[questions]]
id = "staff"
kind = "staff"
text_ru = "?"
text_en = "?"

[[panels]]
site = "msk"
device = "d"
question = "staff"
"""


def history(extra=""):
    """The settings history of SITE (a real gateway.site.History, no database)."""
    rows = site.plan([], site.parse(SITE % extra), 1000)
    return site.History([(k, key, frm, 1, explicit, data) for k, key, frm, explicit, data in rows])


def test_roles_have_only_their_capabilities():
    assert can("expert", "verdict") and not can("analyst", "verdict")
    assert can("store-manager", "reports") and can("store-manager", "fleet") and not can("store-manager", "review")
    assert can("technician", "fleet") and not can("technician", "reports")
    assert not can("expert", "admin") and can("admin", "admin")
    assert not can("nobody", "reports")


def test_a_region_expands_into_its_offices_nested_ones_and_ones_added_later():
    user = {"role": "store-manager", "all_offices": False, "offices": ["msk"], "regions": ["russia"]}
    scope = Scope.of(user)
    assert regions(history(), 0) == {"russia": ["spb"], "north": ["spb"]}
    assert scope.sites(history(), 0) == {"msk", "spb"}
    later = '[[sites]]\nid = "nvg"\nname = "NVG"\nregion = "north"\n'
    assert scope.sites(history(later), 0) == {"msk", "spb", "nvg"}  # the account was not touched
    north = Scope.of({"role": "analyst", "all_offices": False, "offices": [], "regions": ["north"]})
    assert north.allows("nvg", history(later), 0) and not north.allows("msk", history(later), 0)
    assert Scope.of({"role": "admin", "all_offices": False, "offices": [], "regions": []}).sites(history(), 0) is None


def _poll(site, seq, at, answer):
    return {"site": site, "device": "d", "open_seq": seq, "opened_ms": at, "answer": answer, "employee": None}


def test_the_queue_shows_pending_first_then_by_time_with_counts():
    polls = [_poll("a", 1, 300, "no"), _poll("a", 2, 100, "no"), _poll("a", 3, 200, "yes")]
    fms = [{"site": "a", "device": "d", "seq": 9, "start_ms": 150, "end_ms": 900, "employee": None}]
    sampled = review.sample(polls, fms, 1.0)
    verdicts = {(review.POLL, "a", "d", 2): {"verdict": "invalid"}, (review.POLL, "a", "d", 3): {"verdict": "reopen"}}
    flt = queue.Filter(status="all")
    items, counts = queue.build(sampled, verdicts, flt)
    assert [i["id"] for i in items] == ["a/d/9", "a/d/3", "a/d/1", "a/d/2"]
    assert counts["total"] == {"pending": 3, "decided": 1} and counts["no"] == {"pending": 1, "decided": 1}
    items, _ = queue.build(sampled, verdicts, queue.Filter(status="pending", kind="no"))
    assert [i["id"] for i in items] == ["a/d/1"]
    shown, pages = queue.page(list(range(120)), 3, size=50)
    assert shown == list(range(100, 120)) and pages == 3


def test_a_bad_filter_says_what_is_wrong_per_field():
    flt = queue.Filter.parse({"kind": "maybe", "status": "soon", "from": "2025-13-01", "to": "x", "page": "0"})
    assert set(flt.errors) == {"kind", "status", "from", "to", "page"}
    flt = queue.Filter.parse({"from": "2025-03-09", "to": "2025-03-03"})
    assert set(flt.errors) == {"to"}
    ok = queue.Filter.parse({"site": "msk", "from": "2025-03-03", "to": "2025-03-09", "page": "2"})
    assert not ok.errors and ok.query(page=None) == {
        "site": "msk",
        "status": "pending",
        "from": "2025-03-03",
        "to": "2025-03-09",
    }


def test_times_name_their_zone_and_numbers_follow_the_language():
    msk = zoneinfo.ZoneInfo("Europe/Moscow")
    ms = int(dt.datetime(2025, 3, 3, 12, 0, 5, tzinfo=dt.UTC).timestamp() * 1000)
    assert fmt.time(ms, msk, "en") == "2025-03-03 15:00:05 MSK"
    assert fmt.time(ms, msk, "ru") == "03.03.2025 15:00:05 MSK"
    assert fmt.number(12345.6, "ru", 1) == "12\u202f345,6" and fmt.number(12345.6, "en", 1) == "12,345.6"
    fig = {"value": 0.123, "low": 0.08, "high": 0.17, "n": 230}
    assert fmt.figure(fig, "en") == "12% (8–17%, n\u00a0=\u00a0230)"
    assert fmt.figure(fig, "ru") == "12\u00a0% (8–17\u00a0%, n\u00a0=\u00a0230)"
    assert fmt.figure({"value": None, "reason": "no polls"}, "en") == "n/a (no polls)"
    assert fmt.parse_local("2025-03-03T15:00:05", msk) == ms
