"""Accounts in the console: an admin changes role and scope (CSRF-protected, one message per
field, the account's sessions end), regions in scopes and the KPI page rolled up by region."""

import pytest
from console_support import PASSWORD

from gateway import schema, users

pytestmark = pytest.mark.e2e


def _account(console, name):
    db = schema.open_database(console.db_url)
    try:
        return users.by_username(db, name)
    finally:
        db.close()


def test_an_admin_changes_role_and_scope_and_the_sessions_of_that_account_end(client, console):
    manager = client("manager")
    assert manager.get("/reports?site=ber")[0] == 404  # msk only, for now
    admin = client("admin")
    status, _h, page = admin.get("/admin/users/manager")
    assert status == 200 and 'value="germany"' in page and "Germany" in page
    token = admin.csrf("/admin/users/manager")
    change = {"csrf": token, "role": "analyst", "name": "Manfred", "regions": ["germany"]}
    status, headers, _b = admin.post("/admin/users/manager", change)
    assert status == 303 and headers["location"] == "/admin/users?done=changed"
    account = _account(console, "manager")
    assert (account["role"], account["regions"], account["offices"], account["name"]) == (
        "analyst",
        ["germany"],
        [],
        "Manfred",
    )
    assert manager.get("/reports")[0] == 303  # the open session ended with the change
    again = client("manager")
    assert again.get("/reports?site=ber")[0] == 200 and again.get("/reports?site=msk")[0] == 404
    assert "Manfred" in admin.get("/admin/users")[2]


def test_changing_an_account_needs_the_csrf_token_an_admin_and_a_known_account(client, console):
    admin = client("admin")
    before = _account(console, "manager")
    status, _h, _b = admin.post("/admin/users/manager", {"csrf": "forged", "role": "expert", "all_offices": "1"})
    assert status == 403 and _account(console, "manager") == before
    expert = client("expert")
    token = expert.csrf("/")
    assert expert.post("/admin/users/manager", {"csrf": token, "role": "admin"})[0] == 403
    assert expert.get("/admin/users/manager")[0] == 403
    token = admin.csrf("/admin/users")
    assert admin.post("/admin/users/nobody", {"csrf": token, "role": "expert", "all_offices": "1"})[0] == 404
    assert admin.get("/admin/users/nobody")[0] == 404
    assert _account(console, "manager") == before


def test_a_bad_change_reshows_the_form_with_one_message_per_field_and_changes_nothing(client, console):
    admin = client("admin")
    token = admin.csrf("/admin/users/manager")
    before = _account(console, "manager")
    status, _h, body = admin.post("/admin/users/manager", {"csrf": token, "role": "store-manager", "regions": ["mars"]})
    assert status == 400 and body.count('class="error"') == 1 and "Choose offices or regions" in body
    status, _h, body = admin.post("/admin/users/manager", {"csrf": token, "role": "boss", "offices": ["msk"]})
    assert status == 400 and "Choose a role from the list" in body
    # the last admin cannot be demoted (nobody could manage accounts)
    status, _h, body = admin.post("/admin/users/admin", {"csrf": token, "role": "expert", "all_offices": "1"})
    assert status == 400 and "last admin" in body and _account(console, "admin")["role"] == "admin"
    assert _account(console, "manager") == before


def test_a_new_account_may_be_scoped_to_a_region(client, console):
    admin = client("admin")
    token = admin.csrf("/admin/users")
    new = {"csrf": token, "username": "nord", "role": "store-manager", "regions": ["russia"], "password": PASSWORD}
    assert admin.post("/admin/users", new)[0] == 303
    assert _account(console, "nord")["regions"] == ["russia"]


def test_an_admin_sets_a_temporary_password_that_must_be_changed(client, console):
    manager = client("manager")
    admin = client("admin")
    token = admin.csrf("/admin/users/manager")
    status, _h, body = admin.post("/admin/users/manager/password", {"csrf": token, "password": "short"})
    assert status == 400 and body.count('class="error"') == 1 and "at least 10 characters" in body
    assert admin.post("/admin/users/manager/password", {"csrf": "forged", "password": "temporary pass 42"})[0] == 403
    assert admin.post("/admin/users/nobody/password", {"csrf": token, "password": "temporary pass 42"})[0] == 404
    assert manager.get("/reports")[0] == 200  # nothing changed so far
    status, headers, _b = admin.post("/admin/users/manager/password", {"csrf": token, "password": "temporary pass 42"})
    assert status == 303 and headers["location"] == "/admin/users/manager?done=temporary"
    assert "must be changed at sign-in" in admin.get(headers["location"])[2]
    assert manager.get("/reports")[0] == 303  # its open session ended
    again = client()
    assert again.login("manager", "temporary pass 42")[0] == 303
    status, headers, _b = again.get("/reports")
    assert status == 303 and headers["location"] == "/account"  # a new password first
    assert _account(console, "manager")["must_change"]
