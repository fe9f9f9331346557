"""The JSON API: bearer tokens made by admins, polls page by page, verdicts recorded under the
account, OpenAPI."""

import json

import pytest
from console_support import PASSWORD

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
