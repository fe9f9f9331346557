"""The JSON API: bearer tokens made by admins, polls page by page, verdicts recorded under the
account, OpenAPI."""

import json

import pytest
from console_support import PASSWORD, T_WEEK

from gateway import review, schema, users

pytestmark = pytest.mark.e2e


def _token(console, account, name="BI export"):
    db = schema.open_database(console.db_url)
    token, _row = users.create_token(db, account, name, "admin", 1)
    db.close()
    return token


def test_a_bearer_token_acts_as_its_account_and_stops_when_revoked(client, console):
    token = _token(console, "manager")
    c = client()
    auth = {"Authorization": "Bearer " + token}
    status, _h, body = c.get("/api/v1/me", headers=auth)
    assert status == 200 and json.loads(body)["offices"] == ["msk"]
    assert c.get("/api/v1/polls?site=ber", headers=auth)[0] == 404
    assert c.get("/api/v1/me", headers={"Authorization": "Bearer rt_wrong"})[0] == 401
    db = schema.open_database(console.db_url)
    (row,) = [t for t in users.list_tokens(db) if t["name"] == "BI export"]
    assert token not in json.dumps(users.list_tokens(db)) and row["last_used_ms"] is not None
    users.revoke_token(db, row["id"], 2)
    db.close()
    assert c.get("/api/v1/me", headers=auth)[0] == 401


def test_polls_come_page_by_page_without_repeats(client):
    c = client("analyst")
    seen, after = [], None
    for _ in range(20):
        status, _h, body = c.get("/api/v1/polls?limit=4" + ("&after=" + after if after else ""))
        assert status == 200
        page = json.loads(body)
        seen += [p["id"] for p in page["polls"]]
        after = page["next"]
        if not after:
            break
    assert len(seen) == len(set(seen)) == 18  # 11 + 3 in Moscow, 4 in Berlin
    status, _h, body = c.get("/api/v1/polls?answer=no&site=msk&limit=500")
    assert {p["answer"] for p in json.loads(body)["polls"]} == {"no"}
    assert c.get("/api/v1/polls?after=garbage")[0] == 400
    assert c.get("/api/v1/polls?limit=100000")[0] == 422


def test_a_verdict_through_the_api_is_in_the_audit_trail_under_the_account(client, console):
    token = _token(console, "expert", "video tool")
    c = client()
    auth = {"Authorization": "Bearer " + token}
    body = {"target": "poll", "id": "msk/desk-1/3", "verdict": "invalid", "reason": "staff test"}
    status, _h, text = c.request("POST", "/api/v1/verdicts", json_body=body, headers=auth)
    assert status == 201, text
    status, _h, text = c.request("POST", "/api/v1/verdicts", json_body=dict(body, verdict="undo"), headers=auth)
    assert status == 201
    status, _h, text = c.request("POST", "/api/v1/verdicts", json_body=dict(body, reason=""), headers=auth)
    assert status == 400 and "reason" in text
    status, _h, text = c.request("POST", "/api/v1/verdicts", json_body=dict(body, id="msk/desk-1/999"), headers=auth)
    assert status == 404
    db = schema.open_database(console.db_url)
    trail = review.history(db, "msk/desk-1/3")
    db.close()
    assert [(v["verdict"], v["by_name"]) for v in trail] == [("invalid", "expert"), ("reopen", "expert")]


def test_the_report_api_gives_the_same_dict_as_rating_report(client, console):
    import datetime as dt

    from gateway import report

    c = client("analyst")
    status, _h, body = c.get("/api/v1/reports?by=employee&site=msk&from=2025-03-03&to=2025-03-09")
    assert status == 200
    got = json.loads(body)
    db = schema.open_database(console.db_url)
    want = report.build_report(
        db,
        by="employee",
        site="msk",
        start=dt.datetime(2025, 3, 3),
        end=dt.datetime(2025, 3, 10),
        lang="en",
        now_ms=got["generated_ms"],
    )
    db.close()
    assert got == json.loads(json.dumps(want))
    assert c.get("/api/v1/reports?from=2025-99-01&site=msk")[0] == 400


def test_the_openapi_schema_describes_the_api_and_is_served_locally(client):
    c = client()
    status, _h, body = c.get("/api/v1/openapi.json")
    assert status == 200
    paths = json.loads(body)["paths"]
    for path in ("/api/v1/reports", "/api/v1/polls", "/api/v1/panels", "/api/v1/verdicts"):
        assert path in paths
    assert c.get("/docs")[0] == 404  # no Swagger UI from a CDN


def test_an_admin_makes_accounts_and_tokens_in_the_console(client, console):
    admin = client("admin")
    token = admin.csrf("/admin/users")
    status, _h, body = admin.post(
        "/admin/users", {"csrf": token, "username": "Bad Name!", "role": "store-manager", "password": "x"}
    )
    assert status == 400
    assert body.count('class="error"') == 3  # one message per field: name, scope, password
    status, _h, _b = admin.post(
        "/admin/users",
        {
            "csrf": token,
            "username": "olga",
            "name": "Olga",
            "role": "store-manager",
            "offices": ["ber"],
            "password": PASSWORD,
        },
    )
    assert status == 303
    status, _h, body = admin.post("/admin/tokens", {"csrf": token, "account": "olga", "token_name": "Power BI"})
    assert status == 200 and "rt_" in body
    new = body.split('id="new-token" readonly value="')[1].split('"')[0]
    status, _h, me = client().get("/api/v1/me", headers={"Authorization": "Bearer " + new})
    assert status == 403 and "new password" in me  # the account has not replaced its first password yet
    db = schema.open_database(console.db_url)
    users.set_password(db, "olga", "olgas own password", 3)
    db.close()
    status, _h, me = client().get("/api/v1/me", headers={"Authorization": "Bearer " + new})
    assert json.loads(me)["offices"] == ["ber"]
    assert "rt_" not in admin.get("/admin/users")[2].replace(new[:11], "")  # listed by prefix only


def test_a_bulk_verdict_is_all_or_nothing(client, console):
    expert = client("expert")
    token = expert.csrf("/review")
    mixed = {"csrf": token, "verdict": "valid", "item": ["poll:msk/desk-1/3", "fm:msk/desk-1/20"]}
    status, _h, body = expert.post("/review/bulk", mixed)
    assert status == 400 and "does not fit every selected item" in body
    status, _h, body = expert.post("/review/bulk", {"csrf": token, "verdict": "invalid", "item": ["poll:msk/desk-1/3"]})
    assert status == 400 and "Give a reason" in body
    db = schema.open_database(console.db_url)
    assert review.history(db, "msk/desk-1/3") == []
    db.close()
    ok = {
        "csrf": token,
        "verdict": "invalid",
        "reason_choice": "reason_test",
        "item": ["poll:msk/desk-1/3", "poll:ber/desk-1/1"],
    }
    status, headers, _b = expert.post("/review/bulk", ok)
    assert status == 303 and "done=bulk" in headers["location"]
    db = schema.open_database(console.db_url)
    for ident in ("msk/desk-1/3", "ber/desk-1/1"):
        (row,) = review.history(db, ident)
        assert (row["verdict"], row["reason"], row["by_name"]) == ("invalid", "panel test", "expert")
    db.close()


def test_a_confirmed_force_majeure_keeps_the_period_the_expert_corrected(client, console):
    expert = client("expert")
    path = "/review/fm/msk/desk-1/20"
    token = expert.csrf(path)
    bad = {"csrf": token, "verdict": "confirm", "from": "2025-03-03T19:05:00", "to": "yesterday"}
    status, _h, body = expert.post(path, bad)
    assert status == 400 and body.count('class="error"') == 1 and "A time like" in body
    backwards = dict(bad, to="2025-03-03T19:01:00")
    status, _h, body = expert.post(path, backwards)
    assert status == 400 and "The end must be after the start" in body
    good = dict(bad, to="2025-03-03T19:25:00")  # Moscow wall-clock time, as the fields show it
    status, _h, _b = expert.post(path + "?stay=1", dict(good, stay="1"))
    assert status == 303
    db = schema.open_database(console.db_url)
    (row,) = review.history(db, "msk/desk-1/20")
    db.close()
    assert row["verdict"] == "confirm" and row["by_name"] == "expert"
    assert row["from_ms"] == T_WEEK + 4 * 3600000 + 5 * 60000  # 19:05 in Moscow = 16:05 UTC
    assert row["to_ms"] - row["from_ms"] == 20 * 60000
    status, _h, body = expert.get(path)
    assert 'id="tl-confirmed"' in body and "19:05" in body
