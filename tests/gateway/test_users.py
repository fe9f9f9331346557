"""Accounts of the web console (gateway/users.py): Argon2 hashes, scope rules, the login limit,
sessions ended by a new password, API tokens stored as hashes, `rating user ...`."""

import io
import json

import pytest
from gw_site_support import apply_site, sqlite_db

from gateway import users
from rating import cli

PW = "a good long password"


def test_a_password_is_stored_only_as_an_argon2_hash(any_db):
    users.add(any_db, "Elena.Ivanova", PW, "expert", 1, all_offices=True)
    user = users.by_username(any_db, "elena.ivanova")
    assert user["username"] == "elena.ivanova" and "password_hash" not in user
    dump = json.dumps(any_db.query("SELECT * FROM users"))
    assert PW not in dump and "$argon2id$" in dump
    assert users.password_matches(any_db, user["id"], PW)
    assert not users.password_matches(any_db, user["id"], PW + "!")


@pytest.mark.parametrize(
    "password, problem",
    [
        ("short", "at least 10"),
        ("elena.ivanova", "account name"),
        ("aaaaaaaaaaaa", "too simple"),
        ("x" * 300, "at most"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password, problem):
    assert problem in users.check_password(password, "elena.ivanova")


def test_a_store_manager_needs_an_explicit_scope_and_known_offices():
    with pytest.raises(users.UserError, match="needs a scope"):
        users.check_scope("store-manager", False, [], [])
    with pytest.raises(users.UserError, match="not both"):
        users.check_scope("expert", True, ["msk"], [])
    with pytest.raises(users.UserError, match="not in the site file"):
        users.check_scope("store-manager", False, ["mks"], [], known_sites={"msk"})
    assert users.check_scope("store-manager", False, ["msk", "msk"], ["north"], {"msk"}) == (False, ["msk"], ["north"])
    assert users.check_scope("admin", False, ["msk"], []) == (True, [], [])


def test_the_login_limit_counts_failures_in_a_window():
    window = users.LOGIN_WINDOW_MS
    assert users.login_wait_s([0] * (users.LOGIN_USER_MAX - 1), [], 1000) == 0
    fails = [i * 1000 for i in range(users.LOGIN_USER_MAX)]
    wait = users.login_wait_s(fails, [], fails[-1] + 1000)
    assert wait == (fails[0] + window - fails[-1] - 1000) // 1000
    assert users.login_wait_s(fails, [], fails[0] + window) == 0  # the oldest left the window
    many = list(range(users.LOGIN_CLIENT_MAX))
    assert users.login_wait_s([], many, 100) > 0


def test_authenticate_records_attempts_and_a_success_resets_the_account_count(any_db):
    users.add(any_db, "ivan", PW, "analyst", 1, all_offices=True)
    for i in range(users.LOGIN_USER_MAX - 1):
        assert users.authenticate(any_db, "ivan", "wrong", "10.0.0.1", 1000 + i) == (None, 0)
    user, wait = users.authenticate(any_db, "ivan", PW, "10.0.0.1", 2000)
    assert user["username"] == "ivan" and wait == 0
    for i in range(users.LOGIN_USER_MAX):
        users.authenticate(any_db, "ivan", "wrong", "10.0.0.2", 3000 + i)
    user, wait = users.authenticate(any_db, "ivan", PW, "10.0.0.3", 4000)
    assert user is None and wait > 0
    # unknown names and disabled accounts fail the same way
    assert users.authenticate(any_db, "nobody", PW, "10.0.0.4", 5000) == (None, 0)


def test_a_new_password_or_disabling_moves_the_epoch(any_db):
    users.add(any_db, "ivan", PW, "analyst", 1, all_offices=True)
    epoch = users.by_username(any_db, "ivan")["epoch"]
    assert users.set_password(any_db, "ivan", "another password!", 2)["epoch"] == epoch + 1
    assert users.set_disabled(any_db, "ivan", True, 3)["epoch"] == epoch + 2
    assert users.authenticate(any_db, "ivan", "another password!", "c", 4) == (None, 0)


def test_the_last_admin_can_be_neither_disabled_nor_demoted(any_db):
    users.add(any_db, "root", PW, "admin", 1)
    with pytest.raises(users.UserError, match="last active admin"):
        users.set_disabled(any_db, "root", True, 2)
    with pytest.raises(users.UserError, match="last active admin"):
        users.update(any_db, "root", 2, role="expert", all_offices=True)
    users.add(any_db, "root2", PW, "admin", 1)
    users.set_disabled(any_db, "root", True, 3)


def test_tokens_are_stored_as_hashes_and_act_as_their_account(any_db):
    users.add(any_db, "bi", PW, "analyst", 1, offices=["msk"])
    token, row = users.create_token(any_db, "bi", "Power BI", "root", 1)
    assert token.startswith("rt_") and token not in json.dumps(users.list_tokens(any_db))
    assert users.token_user(any_db, token, 2)["username"] == "bi"
    assert users.token_user(any_db, token + "x", 2) is None
    users.set_disabled(any_db, "bi", True, 3)
    assert users.token_user(any_db, token, 4) is None
    users.set_disabled(any_db, "bi", False, 5)
    users.revoke_token(any_db, row["id"], 6)
    assert users.token_user(any_db, token, 7) is None


def test_the_session_key_is_made_once_per_database(any_db):
    first = users.secret(any_db, "session-key", 1)
    assert len(first) >= 48 and users.secret(any_db, "session-key", 2) == first


def _run(argv, stdin=""):
    import contextlib
    import sys

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        sys.stdin = old
    return code, out.getvalue(), err.getvalue()


def test_rating_user_add_list_disable_passwd(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    db.close()
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    code, out, err = _run(
        ["user", "add", "anna", "--role", "store-manager", "--office", "msk", "--db", url, "--password-stdin"],
        PW + "\n",
    )
    assert code == 0 and "anna (store-manager, offices msk) added" in out
    code, out, err = _run(
        ["user", "add", "bob", "--role", "store-manager", "--office", "spb", "--db", url, "--password-stdin"], PW + "\n"
    )
    assert code == 2 and "office spb is not in the site file" in err and "Traceback" not in err
    code, out, err = _run(
        ["user", "add", "bob", "--role", "expert", "--all-offices", "--db", url, "--password-stdin"], "short\n"
    )
    assert code == 2 and "at least 10 characters" in err
    code, out, _ = _run(["user", "list", "--db", url])
    assert "anna" in out and "bob" not in out and PW not in out
    code, out, _ = _run(["user", "passwd", "anna", "--db", url, "--password-stdin"], "a new good password\n")
    assert code == 0 and "sessions ended" in out
    code, out, _ = _run(["user", "disable", "anna", "--db", url])
    assert code == 0
    code, out, _ = _run(["user", "list", "--format", "json", "--db", url])
    assert json.loads(out)[0]["disabled"] is True
    code, _out, err = _run(["user", "passwd", "nobody", "--db", url, "--password-stdin"], PW + "\n")
    assert code == 2 and "no account 'nobody'" in err


def test_rating_user_bootstrap_makes_one_first_admin_with_a_one_time_password(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    code, out, _ = _run(["user", "bootstrap", "--db", url])
    assert code == 0
    password = out.split("one-time password:")[1].split()[0]
    db = sqlite_db(tmp_path)
    admin = users.by_username(db, "admin")
    assert admin["role"] == "admin" and admin["must_change"]
    assert users.authenticate(db, "admin", password, "c", 10)[0]["username"] == "admin"
    db.close()
    code, _out, err = _run(["user", "bootstrap", "--db", url])
    assert code == 2 and "an admin account exists already" in err


def test_a_password_is_never_taken_from_the_command_line(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    code, _out, err = _run(["user", "add", "anna", "--role", "admin", "--db", url])
    assert code == 2 and "--password-stdin" in err  # no terminal here: it says how instead
    with pytest.raises(SystemExit):
        _run(["user", "add", "anna", "--role", "admin", "--password", PW, "--db", url])


REGION_SITE = """
[[regions]]
id = "central"
name = "Central"

[[sites]]
id = "spb"
name = "SPb"
timezone = "Europe/Moscow"
region = "central"
"""


def test_rating_user_set_changes_role_and_scope_and_ends_sessions(tmp_path):
    from gw_site_support import SITE_TOML

    db = sqlite_db(tmp_path)
    apply_site(db, SITE_TOML.replace("[[questions]]", REGION_SITE + "\n[[questions]]", 1))
    users.add(db, "anna", PW, "store-manager", 1, offices=["msk"])
    users.add(db, "root", PW, "admin", 1)
    epoch = users.by_username(db, "anna")["epoch"]
    db.close()
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    code, out, err = _run(["user", "set", "anna", "--role", "analyst", "--region", "central", "--db", url])
    assert code == 0, err
    assert out.strip() == "account anna: analyst, regions central; its open sessions ended"
    code, _out, err = _run(["user", "set", "anna", "--region", "south", "--db", url])
    assert code == 2 and err.strip().splitlines() == [
        "error: region south is not in the site file's [[regions]] (known: central); check the id or add it to the "
        "site file"
    ]
    code, _out, err = _run(["user", "set", "anna", "--db", url])
    assert code == 2 and "nothing to change" in err
    code, _out, err = _run(["user", "set", "nobody", "--role", "expert", "--db", url])
    assert code == 2 and "no account 'nobody'" in err
    # an admin made a store manager gets no "every office" by accident
    _run(["user", "add", "root2", "--role", "admin", "--db", url, "--password-stdin"], PW + "\n")
    code, _out, err = _run(["user", "set", "root2", "--role", "store-manager", "--db", url])
    assert code == 2 and "needs a scope" in err
    code, out, _ = _run(["user", "set", "root2", "--role", "store-manager", "--office", "spb", "--db", url])
    assert code == 0 and "store-manager, offices spb" in out
    code, out, _ = _run(
        ["user", "add", "bob", "--role", "analyst", "--region", "central", "--db", url, "--password-stdin"], PW + "\n"
    )
    assert code == 0 and "bob (analyst, regions central) added" in out
    code, _out, err = _run(
        ["user", "add", "eve", "--role", "analyst", "--region", "nope", "--db", url, "--password-stdin"], PW + "\n"
    )
    assert code == 2 and "region nope is not in the site file's [[regions]]" in err
    db = sqlite_db(tmp_path)
    assert users.by_username(db, "eve") is None
    anna = users.by_username(db, "anna")
    assert (anna["role"], anna["regions"], anna["offices"], anna["epoch"] > epoch) == ("analyst", ["central"], [], True)
    db.close()
