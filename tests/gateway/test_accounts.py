"""MQTT accounts (gateway/accounts.py) and the files Mosquitto reads (gateway/brokerconf.py):
the password hash is Mosquitto's own, the topic rules say what issue 13 asks, a panel's password
changes only through issue / rotate / confirm / revoke, no plaintext is ever stored, and the
`rating broker` / `rating panel` commands hand passwords over only where the user said.
The brokers enforcing all this: test_broker_security.py."""

import json
import os
import shutil
import stat
import subprocess

import pytest
from gw_ingest_support import RATING, REPO
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from gateway import accounts as acc
from gateway import brokerconf

ROOT = "rating/v1"
NOW = 1717000000000


def account(name, sites=(), all_sites=False):
    return acc.Account(name, acc.hash_password(acc.new_secret(), iterations=1), tuple(sites), all_sites)


# ---- the hash ----------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")
def test_the_hash_is_what_mosquitto_passwd_writes_for_the_same_salt(tmp_path):
    secret = acc.new_secret()
    plain = tmp_path / "pw"
    # -U hashes a file of user:password lines in place: the password never is an argument
    fd = os.open(plain, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, ("alice:%s\n" % secret).encode())
    os.close(fd)
    subprocess.run(["mosquitto_passwd", "-U", str(plain)], check=True, capture_output=True, timeout=30)
    user, theirs = plain.read_text().strip().split(":", 1)
    _, seven, iterations, salt, _key = theirs.split("$")
    assert (user, seven) == ("alice", "7")
    import base64

    mine = acc.hash_password(secret, salt=base64.b64decode(salt), iterations=int(iterations))
    assert mine == theirs
    assert acc.verify_password(secret, theirs) and not acc.verify_password(secret + "x", theirs)
    # our own: 12-byte salt, 64-byte key, the rounds we chose
    _, seven, iterations, salt, key = acc.hash_password(secret).split("$")
    assert (seven, int(iterations), len(base64.b64decode(salt)), len(base64.b64decode(key))) == (
        "7",
        acc.ITERATIONS,
        12,
        64,
    )


def test_verify_refuses_wrong_passwords_and_anything_but_a_sound_pbkdf2_hash():
    secret = "correct horse"
    good = acc.hash_password(secret, iterations=50)
    assert acc.verify_password(secret, good)
    assert not acc.verify_password("correct hors", good)
    assert not acc.verify_password("", good) and not acc.verify_password(None, good)
    _, seven, it, salt, key = good.split("$")
    for bad in (
        None,
        "",
        "$6$rounds=5000$salt$hash",  # sha512-crypt: not accepted
        "$7$50$%s" % salt,  # no key
        "$7$x$%s$%s" % (salt, key),
        "$7$%d$%s$%s" % (acc.MAX_ITERATIONS + 1, salt, key),  # would burn the CPU: refused unread
        "$7$50$!!!$%s" % key,
        "$7$50$%s$%s" % (salt, key[:-4] + "AAAA"),
    ):
        assert not acc.verify_password(secret, bad), bad
        assert bad == good or not acc.is_hash(bad) or bad.endswith("AAAA")


def test_new_secrets_are_long_random_and_url_safe():
    seen = {acc.new_secret() for _ in range(200)}
    assert len(seen) == 200
    assert all(len(s) == 32 and s.replace("-", "").replace("_", "").isalnum() for s in seen)


# ---- usernames and topic rules --------------------------------------------------------------------


def test_usernames_name_the_role_and_nothing_else_passes():
    assert acc.parse_username(acc.panel_username("shop-1", "desk-2")) == ("panel", "shop-1", "desk-2")
    assert acc.parse_username("gateway") == ("gateway", None, None)
    assert acc.parse_username("gateway.backup") == ("gateway", None, None)
    assert acc.parse_username("counts.pos-1")[0] == "counts"
    assert acc.parse_username("operator.anna")[0] == "operator"
    for bad in (
        "",
        "panel.shop-1",
        "panel.shop.desk.x",
        "counts",
        "admin",
        "operator.Anna",
        "counts.a/b",
        "gateway.x.y",
    ):
        with pytest.raises(acc.AccountError):
            acc.parse_username(bad)
    with pytest.raises(acc.AccountError, match="device"):
        acc.panel_username("shop-1", "Desk 2")


def test_each_role_gets_exactly_the_topics_issue_13_names():
    rules = acc.Rules.from_accounts(
        [
            account("panel.s1.a"),
            account("panel.s1.b"),
            account("gateway"),
            account("counts.pos", sites=["s1"]),
            account("operator.ops", sites=["s1"]),
            account("operator.boss", all_sites=True),
        ],
        ROOT,
    )
    a = "rating/v1/s1/a/"
    b = "rating/v1/s1/b/"
    # a panel publishes only its own event/state and reads only its own ack/config
    assert rules.may("panel.s1.a", "write", a + "event") and rules.may("panel.s1.a", "write", a + "state")
    assert rules.may("panel.s1.a", "read", a + "ack") and rules.may("panel.s1.a", "read", a + "config")
    for kind in ("event", "state", "ack", "config"):
        assert not rules.may("panel.s1.a", "write", b + kind) and not rules.may("panel.s1.a", "read", b + kind)
    assert not rules.may("panel.s1.a", "write", a + "ack") and not rules.may("panel.s1.a", "write", a + "config")
    # only the gateway writes ack and config; it reads what panels and counters send
    writers = {u for u in rules.acls for t in (a + "ack", a + "config") if rules.may(u, "write", t)}
    assert writers == {"gateway"}
    assert all(rules.may("gateway", "read", t) for t in (a + "event", b + "state", "rating/v1/s9/counts"))
    # ... and its own ack/config topics back: the retained check reads them (and its marker)
    assert rules.may("gateway", "read", a + "ack") and rules.may("gateway", "read", b + "config")
    # counts: only its sites' counts
    assert rules.may("counts.pos", "write", "rating/v1/s1/counts")
    assert not rules.may("counts.pos", "write", "rating/v1/s2/counts")
    assert not rules.may("counts.pos", "write", a + "event")
    # operators read, never write, never a config (it may carry a panel's next password)
    assert rules.may("operator.ops", "read", a + "event") and rules.may("operator.ops", "read", a + "ack")
    assert not rules.may("operator.ops", "read", "rating/v1/s2/x/event")
    assert rules.may("operator.boss", "read", "rating/v1/s2/x/event")
    for op in ("operator.ops", "operator.boss"):
        assert not rules.may(op, "read", a + "config")
        assert not any(access == "write" for access, _ in rules.acls[op])
    # no account, no rights
    assert not rules.may(None, "read", a + "ack") and not rules.may("panel.s1.zz", "write", "rating/v1/s1/zz/event")
    assert rules.may_subscribe("gateway", "rating/v1/+/+/event") and rules.may_subscribe("panel.s1.a", "rating/v1/#")
    assert not rules.may_subscribe("panel.s1.a", "rating/v1/s1/b/ack")


TOPIC_LEVEL = st.sampled_from(["a", "b", "", "$SYS", "rating", "v1"])
FILTER_LEVEL = st.sampled_from(["a", "b", "", "$SYS", "+", "rating"])


@given(st.lists(TOPIC_LEVEL, min_size=1, max_size=4), st.lists(FILTER_LEVEL, min_size=1, max_size=4), st.booleans())
def test_topic_matching_agrees_with_paho(topic, filt, hash_end):
    pattern = "/".join(filt + (["#"] if hash_end else []))
    name = "/".join(topic)
    assert acc.topic_matches(pattern, name) == topic_matches_sub(pattern, name)
    if acc.topic_matches(pattern, name):
        assert acc.filters_overlap(pattern, name)


# ---- accounts in the database -------------------------------------------------------------------------


def _text_in_db(db, needle):
    """Does `needle` appear in any text column of any table?"""
    if db.dialect == "sqlite":
        tables = [r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        tables = [r["tablename"] for r in db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    for t in tables:
        for row in db.query("SELECT * FROM %s" % t):
            if any(isinstance(v, str) and needle in v for v in row.values()):
                return True
    return False


def test_a_service_account_lives_from_add_to_revoke_and_no_plaintext_is_stored(any_db):
    secret = acc.add(any_db, "counts.pos", NOW, sites=["s1", "s2"])
    (row,) = acc.listing(any_db)
    assert (row["username"], row["role"], row["sites"], row["password"]) == (
        "counts.pos",
        "counts",
        ["s1", "s2"],
        "set",
    )
    assert "hash" not in json.dumps(row) and secret not in json.dumps(row)
    assert acc.rules_from_db(any_db, ROOT).check_password("counts.pos", secret)
    with pytest.raises(acc.AccountError, match="exists already"):
        acc.add(any_db, "counts.pos", NOW, sites=["s1"])
    with pytest.raises(acc.AccountError, match="at least one site"):
        acc.add(any_db, "counts.other", NOW)
    with pytest.raises(acc.AccountError, match="only counts, operator and bridge"):
        acc.add(any_db, "gateway", NOW, sites=["s1"])
    with pytest.raises(acc.AccountError, match="rating site apply"):
        acc.add(any_db, "panel.s1.a", NOW)
    newer = acc.reset_password(any_db, "counts.pos", NOW + 1)
    rules = acc.rules_from_db(any_db, ROOT)
    assert rules.check_password("counts.pos", newer) and not rules.check_password("counts.pos", secret)
    acc.revoke(any_db, "counts.pos", NOW + 2)
    assert acc.accounts(any_db) == [] and acc.listing(any_db)[0]["password"] == "revoked"
    assert not acc.rules_from_db(any_db, ROOT).check_password("counts.pos", newer)
    with pytest.raises(acc.AccountError, match="revoked"):
        acc.reset_password(any_db, "counts.pos", NOW + 3)
    again = acc.add(any_db, "counts.pos", NOW + 4, sites=["s3"])
    assert acc.listing(any_db)[0]["sites"] == ["s3"] and acc.rules_from_db(any_db, ROOT).check_password(
        "counts.pos", again
    )
    assert not any(_text_in_db(any_db, s) for s in (secret, newer, again))


def test_a_panel_password_rotates_only_through_delivery_and_confirmation(any_db):
    name = acc.add_panel(any_db, "s1", "a", NOW)
    assert name == "panel.s1.a" and acc.accounts(any_db) == []  # identity only: nobody logs in as it
    with pytest.raises(acc.AccountError, match="by USB"):
        acc.rotate(any_db, "s1", "a", NOW)
    first, ver = acc.issue_for_usb(any_db, "s1", "a", NOW)
    assert ver == 1 and acc.rules_from_db(any_db, ROOT).check_password(name, first)
    with pytest.raises(acc.AccountError, match="no rotation pending"):
        acc.begin_delivery(any_db, "s1", "a", NOW)
    assert acc.rotate(any_db, "s1", "a", NOW + 1) == 2
    assert acc.pending_rotations(any_db) == [
        {"username": name, "site": "s1", "device": "a", "pending_ver": 2, "delivered": False}
    ]
    second, ver = acc.begin_delivery(any_db, "s1", "a", NOW + 2)
    assert ver == 2 and acc.pending_rotations(any_db)[0]["delivered"]
    rules = acc.rules_from_db(any_db, ROOT)
    # until the panel confirms, the broker knows only the old password
    assert rules.check_password(name, first) and not rules.check_password(name, second)
    assert not acc.confirm(any_db, "s1", "a", 1, NOW + 3)  # a stale report changes nothing
    assert not acc.confirm(any_db, "s1", "a", 3, NOW + 3)
    assert acc.confirm(any_db, "s1", "a", 2, NOW + 3)
    assert not acc.confirm(any_db, "s1", "a", 2, NOW + 4)  # once
    rules = acc.rules_from_db(any_db, ROOT)
    assert rules.check_password(name, second) and not rules.check_password(name, first)
    assert acc.pending_rotations(any_db) == [] and acc.accounts(any_db)[0].ver == 2
    # a confirmation for a delivery that never went out is not taken
    assert acc.rotate(any_db, "s1", "a", NOW + 5) == 3
    assert not acc.confirm(any_db, "s1", "a", 3, NOW + 6)
    # USB wins over a pending rotation, with a version above it
    third, ver = acc.issue_for_usb(any_db, "s1", "a", NOW + 7)
    assert ver == 4 and acc.pending_rotations(any_db) == []
    acc.revoke(any_db, name, NOW + 8)
    assert acc.accounts(any_db) == [] and not acc.confirm(any_db, "s1", "a", 4, NOW + 9)
    assert not any(_text_in_db(any_db, s) for s in (first, second, third))


# ---- Mosquitto's files ------------------------------------------------------------------------------


def test_the_files_read_back_to_the_same_rules():
    accounts = [
        account("panel.s1.a"),
        account("gateway"),
        account("counts.pos", ["s1"]),
        account("operator.x", (), True),
    ]
    files = brokerconf.account_files(accounts, ROOT)
    rules = acc.Rules(
        brokerconf.parse_password_file(files[brokerconf.PASSWORD_FILE]),
        {u: r for u, r in brokerconf.parse_acl_file(files[brokerconf.ACL_FILE]).items()},
    )
    assert rules == acc.Rules.from_accounts(accounts, ROOT)
    # an account without a password is in neither file
    files = brokerconf.account_files([acc.Account("panel.s1.b")], ROOT)
    assert "panel.s1.b" not in files[brokerconf.PASSWORD_FILE] + files[brokerconf.ACL_FILE]


def test_damaged_files_are_refused_without_echoing_their_lines():
    with pytest.raises(brokerconf.BrokerConfError, match="line 2") as e:
        brokerconf.parse_password_file("# c\nalice:plaintext-by-mistake\n")
    assert "plaintext" not in str(e.value)
    for text in ("topic read a/b\n", "user x\npattern read %u/#\n", "user x\ntopic sometimes a\n"):
        with pytest.raises(brokerconf.BrokerConfError, match="line"):
            brokerconf.parse_acl_file(text)
    assert brokerconf.parse_acl_file("user x\ntopic a/#\n") == {"x": [("read", "a/#"), ("write", "a/#")]}


def test_the_config_refuses_anonymous_clients_and_speaks_tls_1_2_or_newer():
    text = brokerconf.render_config(
        "/etc/rating-broker",
        listen=("127.0.0.1:1883",),
        tls_listen=("0.0.0.0:8883",),
        cafile="/c/ca.crt",
        certfile="/c/b.crt",
        keyfile="/c/b.key",
        pid_file="/run/m.pid",
    )
    lines = text.splitlines()
    for want in (
        "per_listener_settings false",
        "allow_anonymous false",
        "password_file /etc/rating-broker/passwd",
        "acl_file /etc/rating-broker/acl",
        "listener 1883 127.0.0.1",
        "listener 8883 0.0.0.0",
        "cafile /c/ca.crt",
        "tls_version tlsv1.2",
        "require_certificate false",
        "max_queued_messages 1000000",
        "check_retain_source true",
        "pid_file /run/m.pid",
    ):
        assert want in lines, want
    assert lines.count("use_username_as_clientid true") == 2
    assert "allow_anonymous true" not in text
    with pytest.raises(brokerconf.BrokerConfError, match="--cafile"):
        brokerconf.render_config("/x", tls_listen=("8883",))
    with pytest.raises(brokerconf.BrokerConfError, match="ADDRESS:PORT"):
        brokerconf.parse_listen("127.0.0.1:http")
    assert brokerconf.parse_listen("8883") == (None, 8883)


def test_the_shipped_example_config_has_the_generated_settings():
    """gateway/mosquitto.conf explains the settings `rating broker config` writes: they agree."""
    with open(os.path.join(REPO, "gateway", "mosquitto.conf")) as f:
        shipped = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    generated = brokerconf.render_config("/etc/mosquitto/rating", pid_file=None).splitlines()
    keys = ("listener", "password_file", "acl_file", "persistence_location", "log_")
    for line in generated:
        if line and not line.startswith("#") and not line.startswith(keys):
            assert line in shipped, line


def test_files_are_written_whole_private_and_without_leftovers(tmp_path):
    out = tmp_path / "conf"
    brokerconf.write_files(str(out), {"passwd": "a:1\n", "acl": "user a\n"})
    assert sorted(os.listdir(out)) == ["acl", "passwd"]
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(out / n).st_mode) == 0o600 for n in ("acl", "passwd"))
    brokerconf.write_files(str(out), {"passwd": "b:2\n"})
    assert (out / "passwd").read_text() == "b:2\n"
    os.mkdir(out / "blocker")  # a file cannot replace a folder: the write fails...
    with pytest.raises(brokerconf.BrokerConfError, match="cannot write"):
        brokerconf.write_files(str(out), {"blocker": "x"})
    assert sorted(os.listdir(out)) == ["acl", "blocker", "passwd"]  # ...and leaves no temporary file
    with pytest.raises(brokerconf.BrokerConfError, match="no such group"):
        brokerconf.write_files(str(out), {"passwd": "x"}, group="no-such-group-here")


# ---- the commands ------------------------------------------------------------------------------------


def rating(*args, **kw):
    return subprocess.run([RATING, *args], cwd=REPO, capture_output=True, text=True, timeout=60, **kw)


@pytest.mark.e2e
def test_a_new_password_goes_only_where_the_user_said(tmp_path):
    db = "sqlite:///%s" % (tmp_path / "r.db")
    r = rating("broker", "account", "add", "counts.pos", "--site", "s1", "--db", db)
    assert r.returncode == 2 and "--password-file FILE" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r.db").exists()  # refused before anything was made
    secret_file = tmp_path / "pos.secret"
    r = rating(
        "broker", "account", "add", "counts.pos", "--site", "s1", "--password-file", str(secret_file), "--db", db
    )
    assert r.returncode == 0, r.stderr
    secret = secret_file.read_text().strip()
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600 and len(secret) == 32
    assert secret not in r.stdout + r.stderr
    # never over an existing file, and nothing changes then
    r = rating("broker", "account", "reset-password", "counts.pos", "--password-file", str(secret_file), "--db", db)
    assert r.returncode == 2 and "exists already" in r.stderr and secret_file.read_text().strip() == secret
    r = rating("broker", "account", "reset-password", "counts.pos", "--print-password", "--db", db)
    assert r.returncode == 0 and len(r.stdout.strip()) == 32 and r.stdout.strip() != secret
    printed = r.stdout.strip()
    listing = rating("broker", "account", "list", "--db", db, "--format", "json")
    assert json.loads(listing.stdout)[0]["ver"] == 2
    assert secret not in listing.stdout and printed not in listing.stdout and "$7$" not in listing.stdout
    # a panel's login for USB deploy: a JSON fragment of config.json, 0600
    out = tmp_path / "desk.json"
    r = rating("panel", "credentials", "s1/desk-1", "--out", str(out), "--db", db)
    assert r.returncode == 0, r.stderr
    login = json.loads(out.read_text())["mqtt"]
    assert login["user"] == "panel.s1.desk-1" and login["password"] not in r.stdout
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    r = rating("panel", "rotate-password", "s1/desk-1", "--db", db)
    assert r.returncode == 0 and "v2" in r.stdout and login["password"] not in r.stdout
    r = rating("panel", "rotate-password", "s1/Desk", "--db", db)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = rating("broker", "account", "list", "--db", "sqlite:///%s" % (tmp_path / "typo.db"))
    assert r.returncode == 2 and not (tmp_path / "typo.db").exists()
