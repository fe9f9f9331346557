"""Sign-in, sessions, CSRF, the login limit, secure headers and scope, over real HTTP against
the console served by uvicorn (no browser needed for these)."""

import re

import pytest
from console_support import PASSWORD, Client

from gateway import schema, users

pytestmark = pytest.mark.e2e


def test_every_page_asks_for_a_sign_in_first(client):
    anonymous = client()
    for path in ("/", "/review", "/reports", "/fleet", "/admin/users", "/review/poll/msk/desk-1/3"):
        status, headers, _ = anonymous.get(path)
        assert status == 303 and headers["location"].startswith("/login?next="), path
    status, headers, body = anonymous.get("/api/v1/polls")
    assert status == 401 and headers["www-authenticate"] == "Bearer"


def test_pages_carry_secure_headers_and_no_external_resource(client):
    expert = client("expert")
    status, headers, body = expert.get("/review")
    assert status == 200
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert "app;dur=" in headers["server-timing"]
    # every script, style and font comes from the console itself
    for url in re.findall(r'(?:src|href)="([^"]+)"', body):
        assert not url.startswith(("http:", "https:", "//")), url
    cookie = expert.get("/")[1]
    assert cookie is not None


def test_the_session_cookie_is_http_only_and_signed(client, console):
    c = client()
    token = c.csrf("/login")
    status, headers, _ = c.post("/login", {"csrf": token, "username": "expert", "password": PASSWORD, "next": "/"})
    assert status == 303
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie
    # a tampered cookie is no session
    forged = Client(console.url)
    value = cookie.split(";")[0].split("=", 1)[1]
    forged.opener.addheaders = [("Cookie", "rating_session=" + value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))]
    assert forged.get("/review")[0] == 303


def test_a_form_without_the_csrf_token_changes_nothing(client, console):
    expert = client("expert")
    for token in ("", "not-the-token"):
        status, _h, body = expert.post("/review/poll/msk/desk-1/3", {"csrf": token, "verdict": "valid"})
        assert status == 403 and "The form has expired" in body
    # another site's page posting with the expert's cookie: the Origin gives it away
    good = expert.csrf("/review")
    status, _h, _b = expert.post(
        "/review/poll/msk/desk-1/3", {"csrf": good, "verdict": "valid"}, headers={"Origin": "https://evil.example"}
    )
    assert status == 403
    db = schema.open_database(console.db_url)
    from gateway import review

    assert review.history(db, "msk/desk-1/3") == []
    db.close()
    # the sign-in form is protected too
    anonymous = client()
    status, _h, _b = anonymous.post("/login", {"username": "expert", "password": PASSWORD})
    assert status == 403


def test_the_api_needs_the_csrf_header_with_a_session_cookie(client):
    expert = client("expert")
    body = {"target": "poll", "id": "msk/desk-1/3", "verdict": "valid"}
    status, _h, _b = expert.request("POST", "/api/v1/verdicts", json_body=body)
    assert status == 403
    token = expert.csrf("/review")
    status, _h, text = expert.request("POST", "/api/v1/verdicts", json_body=body, headers={"X-CSRF-Token": token})
    assert status == 201 and '"by_name":"expert"' in text.replace(" ", "")


def test_five_wrong_passwords_lock_the_account_name_for_a_while(client, console):
    c = client()
    for _ in range(users.LOGIN_USER_MAX):
        status, _h, body = c.login("analyst", "wrong password 1")
        assert status == 401 and "Wrong account name or password" in body
    # now even the right password is not checked
    status, _h, body = c.login("analyst", PASSWORD)
    assert status == 429 and "Too many failed attempts" in body
    # another account from the same client is not locked by that
    assert client().login("expert")[0] == 303


def test_a_new_password_or_disabling_ends_the_open_sessions(client, console):
    manager = client("manager")
    assert manager.get("/reports")[0] == 200
    db = schema.open_database(console.db_url)
    users.set_password(db, "manager", "another good password", 1)
    assert manager.get("/reports")[0] == 303  # signed out
    again = client()
    assert again.login("manager", "another good password")[0] == 303
    users.set_disabled(db, "manager", True, 2)
    db.close()
    assert again.get("/reports")[0] == 303
    assert client().login("manager", "another good password")[0] == 401


def test_a_temporary_password_must_be_changed_before_anything_else(client, console):
    db = schema.open_database(console.db_url)
    users.add(db, "newbie", "temporary pass 1", "analyst", 1, all_offices=True, must_change=True)
    db.close()
    c = client()
    status, headers, _ = c.login("newbie", "temporary pass 1")
    assert headers["location"] == "/account"
    assert c.get("/reports")[1]["location"] == "/account"
    token = c.csrf("/account")
    status, _h, body = c.post(
        "/account/password", {"csrf": token, "current": "temporary pass 1", "new": "short", "again": "short"}
    )
    assert status == 400 and "at least 10 characters" in body
    status, _h, _b = c.post(
        "/account/password",
        {"csrf": token, "current": "temporary pass 1", "new": "a much better one", "again": "a much better one"},
    )
    assert status == 303
    assert c.get("/reports")[0] == 200


def test_a_store_manager_gets_404_for_another_office_by_url_and_api(client):
    manager = client("manager")
    for path in (
        "/review/poll/ber/desk-1/1",
        "/reports?site=ber",
        "/fleet?site=ber",
        "/api/v1/polls?site=ber",
        "/api/v1/polls/ber/desk-1/1",
        "/api/v1/reports?site=ber",
        "/api/v1/verdicts/ber/desk-1/1",
    ):
        status, _h, body = manager.get(path)
        assert status in (403, 404), path
        assert "Berlin" not in body and "petrov" not in body.lower(), path
    # what the manager may see is only their office
    status, _h, body = manager.get("/api/v1/polls?limit=500")
    assert status == 200 and '"site":"ber"' not in body.replace(" ", "") and '"site":"msk"' in body.replace(" ", "")
    status, _h, body = manager.get("/api/v1/reports")
    assert status == 200 and '"site":"msk"' in body.replace(" ", "")
    status, _h, body = manager.get("/api/v1/panels")
    assert status == 200 and "ber" not in re.findall(r'"site":\s*"([a-z]+)"', body)


def test_an_expert_limited_to_one_office_cannot_judge_another(client, console):
    db = schema.open_database(console.db_url)
    users.add(db, "berlin-expert", PASSWORD, "expert", 1, offices=["ber"])
    db.close()
    c = client("berlin-expert")
    token = c.csrf("/review")
    status, _h, _b = c.post("/review/poll/msk/desk-1/3", {"csrf": token, "verdict": "valid"})
    assert status == 404
    status, _h, _b = c.post("/review/bulk", {"csrf": token, "verdict": "valid", "item": ["poll:msk/desk-1/3"]})
    assert status == 404
    status, _h, body = c.get("/review?status=all")
    assert "msk/" not in body and "ber/desk-1/1" in body


def test_roles_see_only_their_pages(client):
    expectations = {
        "analyst": {"/reports": 200, "/review": 403, "/fleet": 403, "/admin/users": 403},
        "tech": {"/reports": 403, "/review": 403, "/fleet": 200, "/admin/users": 403},
        "expert": {"/reports": 200, "/review": 200, "/fleet": 403, "/admin/users": 403},
        "admin": {"/reports": 200, "/review": 200, "/fleet": 200, "/admin/users": 200},
    }
    for name, pages in expectations.items():
        c = client(name)
        for path, want in pages.items():
            assert c.get(path)[0] == want, (name, path)
    analyst = client("analyst")
    token = analyst.csrf("/reports")
    assert analyst.post("/review/poll/msk/desk-1/3", {"csrf": token, "verdict": "valid"})[0] == 403


def test_after_sign_in_only_a_local_path_is_followed(client):
    c = client()
    token = c.csrf("/login")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil"):
        status, headers, _ = c.post(
            "/login", {"csrf": token, "username": "expert", "password": PASSWORD, "next": target}
        )
        assert headers["location"] == "/", target
        c = client()
        token = c.csrf("/login")
