"""`GET /api/v1/followups`: the CRM follow-ups through the API, for integration accounts only
(a bearer token acting as an account of the role `integration`), limited to the account's
offices; an opaque cursor, stable order, idempotent re-reads; on SQLite and PostgreSQL."""

import json

import pytest
from console_support import ACCOUNTS, CHAIN_TOML, HOUR, PASSWORD, T_WEEK, Client, build_chain
from gw_site_support import apply_site

from console import server
from gateway import followups, review, users

pytestmark = pytest.mark.e2e

INTEGRATIONS = (("crm", {"all_offices": True}), ("crm-ber", {"offices": ["ber"]}))


@pytest.fixture
def served(any_db):
    build_chain(any_db)
    spb = '\n[[sites]]\nid = "spb"\nname = "St Petersburg"\ntimezone = "Europe/Moscow"\n'
    apply_site(any_db, CHAIN_TOML + spb + "\n[followups]\nhold_min = 30\n", T_WEEK + 1)
    for name, role, scope in ACCOUNTS:
        users.add(any_db, name, PASSWORD, role, T_WEEK, name=name.title(), lang="en", **scope)
    tokens = {}
    for name, scope in INTEGRATIONS + (("manager", None), ("admin", None)):
        if scope is not None:
            users.add(any_db, name, PASSWORD, "integration", T_WEEK, name=name, lang="en", **scope)
        tokens[name], _row = users.create_token(any_db, name, "CRM", "admin", T_WEEK)
    followups.update(any_db, T_WEEK + 6 * HOUR)
    running = server.start(any_db.url)
    yield any_db, running, tokens
    running.stop()


def _get(running, token, query=""):
    status, _h, body = Client(running.url).get(
        "/api/v1/followups" + query, headers={"Authorization": "Bearer " + token}
    )
    return status, (json.loads(body) if body else None)


def _all(running, token, limit, since=None):
    ids, pages = [], 0
    while True:
        status, page = _get(running, token, "?limit=%d" % limit + ("&since=" + since if since else ""))
        assert status == 200
        pages += 1
        ids += [e["id"] for e in page["followups"]]
        if not page["followups"]:
            return ids, page["next"], pages
        since = page["next"]


def test_followups_api_pages_with_an_opaque_cursor_and_rereads_the_same(served):
    db, running, tokens = served
    every, _last = followups.feed(db, 0, None, 1000)
    ids, cursor, pages = _all(running, tokens["crm"], 2)
    assert ids == [e["id"] for e in every] and len(ids) == len(set(ids)) >= 6 and pages == (len(ids) + 1) // 2 + 1
    assert not cursor.isdigit() and "fu1" not in cursor  # opaque
    status, first = _get(running, tokens["crm"], "?limit=3")
    assert _get(running, tokens["crm"], "?limit=3") == (status, first)  # the same page again
    assert _get(running, tokens["crm"], "?since=" + cursor) == (200, {"followups": [], "next": cursor})
    # a verdict later: only the retraction comes after the cursor
    review.record(db, review.POLL, ids[0].split(":")[1], "invalid", "staff test", "expert", T_WEEK + 7 * HOUR)
    followups.update(db, T_WEEK + 7 * HOUR)
    status, page = _get(running, tokens["crm"], "?since=" + cursor)
    assert [(e["kind"], e["retracts"]) for e in page["followups"]] == [("retraction", ids[0])]
    assert _get(running, tokens["crm"], "?since=garbage")[0] == 400
    assert _get(running, tokens["crm"], "?limit=100000")[0] == 422


def test_followups_api_is_limited_to_the_token_offices_and_closed_to_staff(served):
    db, running, tokens = served
    ids, _cursor, _pages = _all(running, tokens["crm-ber"], 50)
    assert ids and all(i.startswith("followup:ber/") for i in ids)
    every, _last = followups.feed(db, 0, None, 1000)
    assert len(ids) == len([e for e in every if e["office"]["id"] == "ber"]) < len(every)
    # staff never read customers' loyalty references, whatever their scope
    assert _get(running, tokens["manager"])[0] == 403
    assert _get(running, tokens["admin"])[0] == 403
    assert _get(running, "rt_not-a-token")[0] == 401
    # an integration account has no pages
    page = Client(running.url)
    assert page.login("crm")[0] == 303
    assert page.get("/reports")[0] == 403 and page.get("/review")[0] == 403
    status, _h, home = page.get("/")
    assert status == 200 and "An integration account (CRM)" in home


def test_followups_api_a_token_of_another_office_sees_nothing(served):
    db, running, _tokens = served
    users.add(db, "crm-spb", PASSWORD, "integration", T_WEEK, name="crm", lang="en", offices=["spb"])
    token, _row = users.create_token(db, "crm-spb", "CRM", "admin", T_WEEK)
    assert _get(running, token) == (200, {"followups": [], "next": _get(running, token)[1]["next"]})
    assert _all(running, token, 50)[0] == []
