"""Accounts of the web console: people and integrations, their role and office scope, API
tokens, the login rate limit and the console's own secrets (migrations/010_console_accounts.sql).

Pure parts first (`check_username`, `check_password`, `check_scope`, `login_wait_s`), then the
database shell. Every function takes the time as an argument; nothing here reads a clock except
where a random secret is made (`secrets`).

- Passwords are Argon2id hashes (pwdlib); a password is never stored, logged or listed.
- A new password or disabling an account bumps its `epoch`: the console's signed session
  cookies carry the epoch they were issued under, so every open session of that account ends.
- API tokens are random (32 bytes, URL-safe); only their sha256 is stored, the token itself is
  shown once when it is made. A token acts as its account (role and scope).
- Sign-in attempts are kept in the database so the limit holds across console processes and
  restarts: `LOGIN_USER_MAX` failures of one account name, or `LOGIN_CLIENT_MAX` from one client
  address, within `LOGIN_WINDOW_MS` (counted since the account's last success) block further
  attempts until the oldest of them leaves the window.
"""

import hashlib
import json
import secrets

ROLES = ("admin", "expert", "analyst", "store-manager", "technician", "integration")
LANGS = ("ru", "en")
PASSWORD_MIN = 10
PASSWORD_MAX = 256
LOGIN_WINDOW_MS = 15 * 60 * 1000
LOGIN_USER_MAX = 5
LOGIN_CLIENT_MAX = 20
# attempts older than this are deleted when new ones are recorded
LOGIN_KEEP_MS = 24 * 3600 * 1000
TOKEN_PREFIX_LEN = 8
# a token's last use is written at most this often (every API call would otherwise be a write)
TOKEN_TOUCH_MS = 60 * 1000


class UserError(ValueError):
    """An account change the store cannot take; the message says what to do."""


# --- pure ---------------------------------------------------------------------------------------


def check_username(username):
    """The account name as stored (lower case), or UserError."""
    name = (username or "").strip().lower()
    if not 2 <= len(name) <= 64 or not all(c.isalnum() or c in "._-@" for c in name) or not name.isascii():
        raise UserError(
            "account name %r: use 2-64 characters a-z, 0-9, '.', '_', '-', '@' (e.g. elena.ivanova)" % (username,)
        )
    return name


def check_password(password, username=""):
    """None when the password is acceptable, else what is wrong with it (one line)."""
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        return "the password needs at least %d characters" % PASSWORD_MIN
    if len(password) > PASSWORD_MAX:
        return "the password may have at most %d characters" % PASSWORD_MAX
    if username and password.strip().lower() == username.lower():
        return "the password must not be the account name"
    if len(set(password)) < 4:
        return "the password is too simple: use more different characters"
    return None


def check_role(role):
    if role not in ROLES:
        raise UserError("role %r: must be one of %s" % (role, ", ".join(ROLES)))
    return role


def check_scope(role, all_offices, offices, regions, known_sites=None, known_regions=None):
    """(all_offices, offices, regions) normalised, or UserError. Admins always see every office;
    every other account needs an explicit scope (a store manager never sees everything by
    accident). `known_sites` / `known_regions`: the site and region ids of the site file, to
    catch typos (None: not checked). A region covers its offices when the console reads it,
    so offices added to it later are in scope without touching the account."""
    offices = sorted({o.strip() for o in offices or () if o and o.strip()})
    regions = sorted({r.strip() for r in regions or () if r and r.strip()})
    if role == "admin":
        return True, [], []
    if all_offices and (offices or regions):
        raise UserError("give either --all-offices or --office/--region, not both")
    if not all_offices and not offices and not regions:
        raise UserError("a %s needs a scope: --office SITE_ID (repeatable), --region NAME, or --all-offices" % role)
    if known_sites is not None:
        unknown = [o for o in offices if o not in known_sites]
        if unknown:
            raise UserError(
                "office %s is not in the site file (known: %s); check the id or `rating site apply` first"
                % (", ".join(unknown), ", ".join(sorted(known_sites)) or "none yet")
            )
    if known_regions is not None:
        unknown = [r for r in regions if r not in known_regions]
        if unknown:
            raise UserError(
                "region %s is not in the site file's [[regions]] (known: %s); check the id or add it to the site file"
                % (", ".join(unknown), ", ".join(sorted(known_regions)) or "none")
            )
    return bool(all_offices), offices, regions


def login_wait_s(user_failures, client_failures, now_ms):
    """Seconds until the next sign-in attempt is allowed (0: now). The arguments are the times
    (ms) of recent failed attempts of the account name (since its last success) and of the
    client address."""
    wait = 0
    for times, limit in ((user_failures, LOGIN_USER_MAX), (client_failures, LOGIN_CLIENT_MAX)):
        recent = sorted(t for t in times if now_ms - t < LOGIN_WINDOW_MS)
        if len(recent) >= limit:
            until = recent[-limit] + LOGIN_WINDOW_MS
            wait = max(wait, (until - now_ms + 999) // 1000)
    return int(wait)


# --- passwords --------------------------------------------------------------------------------

_HASHER = []


def _hasher():
    if not _HASHER:
        from pwdlib import PasswordHash
        from pwdlib.hashers.argon2 import Argon2Hasher

        _HASHER.append(PasswordHash((Argon2Hasher(),)))
    return _HASHER[0]


def hash_password(password):
    return _hasher().hash(password)


def verify_password(password, password_hash):
    """(matches, a rehash when the stored hash uses outdated parameters, else None)."""
    try:
        return _hasher().verify_and_update(password, password_hash)
    except Exception:  # a malformed stored hash matches nothing
        return False, None


_DUMMY = []


def _dummy_hash():
    # an unknown account name costs as much time as a wrong password (no account probing)
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


# --- accounts ---------------------------------------------------------------------------------

_PUBLIC = "id, username, name, role, all_offices, offices, regions, lang, must_change, disabled, epoch, created_ms, updated_ms"


def _user(row) -> dict:
    out = dict(row)
    out["offices"] = json.loads(out["offices"])
    out["regions"] = json.loads(out["regions"])
    out["all_offices"] = bool(out["all_offices"])
    out["must_change"] = bool(out["must_change"])
    out["disabled"] = bool(out["disabled"])
    out.pop("password_hash", None)
    return out


def add(
    db,
    username,
    password,
    role,
    now_ms,
    name=None,
    all_offices=False,
    offices=(),
    regions=(),
    lang=None,
    must_change=False,
    known_sites=None,
    known_regions=None,
):
    """Create an account; returns it (without the hash). UserError on bad input or a taken name."""
    username = check_username(username)
    check_role(role)
    problem = check_password(password, username)
    if problem:
        raise UserError(problem)
    if lang is not None and lang not in LANGS:
        raise UserError("language %r: must be ru or en" % (lang,))
    all_offices, offices, regions = check_scope(role, all_offices, offices, regions, known_sites, known_regions)
    name = (name or "").strip() or username
    pw_hash = hash_password(password)
    with db.transaction():
        if by_username(db, username) is not None:
            raise UserError(
                "account %r exists already; `rating user passwd %s` sets a new password" % (username, username)
            )
        db.execute(
            "INSERT INTO users (username, name, role, all_offices, offices, regions, lang, password_hash,"
            " must_change, disabled, epoch, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?, ?)",
            (
                username,
                name,
                role,
                int(all_offices),
                json.dumps(offices),
                json.dumps(regions),
                lang,
                pw_hash,
                int(bool(must_change)),
                now_ms,
                now_ms,
            ),
        )
    return _require(db, username)


def by_username(db, username) -> dict | None:
    row = db.query_one("SELECT %s FROM users WHERE username = ?" % _PUBLIC, ((username or "").lower(),))
    return None if row is None else _user(row)


def get(db, user_id) -> dict | None:
    row = db.query_one("SELECT %s FROM users WHERE id = ?" % _PUBLIC, (user_id,))
    return None if row is None else _user(row)


def _fetch(db, user_id) -> dict:
    """The account that was just written (it exists: the caller made or found it)."""
    user = get(db, user_id)
    if user is None:
        raise UserError("account %s vanished; try again" % user_id)
    return user


def list_users(db):
    return [_user(r) for r in db.query("SELECT %s FROM users ORDER BY username" % _PUBLIC)]


def count_admins(db):
    """Active admin accounts."""
    return db.scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0") or 0


def _require(db, username) -> dict:
    user = by_username(db, username)
    if user is None:
        raise UserError("no account %r; `rating user list` shows them" % (username,))
    return user


def set_password(db, username, password, now_ms, must_change=False):
    """A new password; every session of the account ends (its epoch moves on)."""
    user = _require(db, username)
    problem = check_password(password, user["username"])
    if problem:
        raise UserError(problem)
    db.execute(
        "UPDATE users SET password_hash = ?, must_change = ?, epoch = epoch + 1, updated_ms = ? WHERE id = ?",
        (hash_password(password), int(bool(must_change)), now_ms, user["id"]),
    )
    return _fetch(db, user["id"])


def set_disabled(db, username, disabled, now_ms):
    """Disable (sessions end, tokens stop working) or enable an account. The last active admin
    cannot be disabled: nobody could manage accounts any more."""
    user = _require(db, username)
    with db.transaction():
        if disabled and user["role"] == "admin" and not user["disabled"] and count_admins(db) <= 1:
            raise UserError("%r is the last active admin; add another admin first" % user["username"])
        db.execute(
            "UPDATE users SET disabled = ?, epoch = epoch + 1, updated_ms = ? WHERE id = ?",
            (int(bool(disabled)), now_ms, user["id"]),
        )
    return _fetch(db, user["id"])


def update(
    db,
    username,
    now_ms,
    role=None,
    name=None,
    all_offices=None,
    offices=None,
    regions=None,
    known_sites=None,
    known_regions=None,
):
    """Change role, name or scope (the fields given; a scope given replaces the whole scope).
    A changed role or scope ends the account's sessions, so nobody keeps rights they lost. An
    admin that becomes anything else needs a scope given: an admin's "every office" is not
    carried over to a store manager by accident."""
    user = _require(db, username)
    role = check_role(role) if role is not None else user["role"]
    scope_given = all_offices is not None or offices is not None or regions is not None
    if user["role"] == "admin" and role != "admin" and not scope_given:
        all_offices, offices, regions = False, [], []
    scope = check_scope(
        role,
        (user["all_offices"] if all_offices is None else all_offices) if not scope_given else bool(all_offices),
        (user["offices"] if offices is None else offices) if not scope_given else (offices or []),
        (user["regions"] if regions is None else regions) if not scope_given else (regions or []),
        known_sites,
        known_regions,
    )
    with db.transaction():
        if user["role"] == "admin" and role != "admin" and not user["disabled"] and count_admins(db) <= 1:
            raise UserError("%r is the last active admin; add another admin first" % user["username"])
        db.execute(
            "UPDATE users SET role = ?, name = ?, all_offices = ?, offices = ?, regions = ?, epoch = epoch + 1,"
            " updated_ms = ? WHERE id = ?",
            (
                role,
                (name or "").strip() or user["name"],
                int(scope[0]),
                json.dumps(scope[1]),
                json.dumps(scope[2]),
                now_ms,
                user["id"],
            ),
        )
    return _fetch(db, user["id"])


def set_lang(db, user_id, lang, now_ms):
    if lang is not None and lang not in LANGS:
        raise UserError("language %r: must be ru or en" % (lang,))
    db.execute("UPDATE users SET lang = ?, updated_ms = ? WHERE id = ?", (lang, now_ms, user_id))


def bootstrap(db, username, now_ms):
    """The first admin: made only while no active admin exists, with a random password that
    must be changed at the first sign-in. Returns (account, password); the caller shows the
    password once."""
    username = check_username(username or "admin")
    if count_admins(db):
        raise UserError("an admin account exists already; sign in as that admin, or `rating user passwd NAME`")
    password = secrets.token_urlsafe(12)
    if by_username(db, username) is not None:
        user = set_password(db, username, password, now_ms, must_change=True)
        db.execute(
            "UPDATE users SET role = 'admin', all_offices = 1, offices = '[]', regions = '[]', disabled = 0,"
            " updated_ms = ? WHERE id = ?",
            (now_ms, user["id"]),
        )
        return _fetch(db, user["id"]), password
    return add(db, username, password, "admin", now_ms, name="Administrator", must_change=True), password


def password_matches(db, user_id, password):
    """Whether `password` is the account's current one (to confirm a password change)."""
    row = db.query_one("SELECT password_hash FROM users WHERE id = ?", (user_id,))
    ok, _rehash = verify_password(password or "", row["password_hash"] if row else _dummy_hash())
    return bool(ok and row)


# --- sign-in ----------------------------------------------------------------------------------


def _failures(db, column, value, since_ms):
    return [
        r["at_ms"]
        for r in db.query(
            "SELECT at_ms FROM login_attempts WHERE %s = ? AND at_ms >= ? AND ok = 0" % column, (value, since_ms)
        )
    ]


def login_wait(db, username, client, now_ms):
    """Seconds the client must wait before it may try `username` again (0: may try now)."""
    username = (username or "").strip().lower()
    since = now_ms - LOGIN_WINDOW_MS
    last_ok = db.scalar(
        "SELECT MAX(at_ms) FROM login_attempts WHERE username = ? AND ok = 1 AND at_ms >= ?", (username, since)
    )
    user_failures = _failures(db, "username", username, max(since, (last_ok or 0) + 1))
    return login_wait_s(user_failures, _failures(db, "client", client, since), now_ms)


def authenticate(db, username, password, client, now_ms):
    """(account or None, seconds to wait). The attempt is recorded; while the limit holds the
    password is not even checked (and the attempt is not counted again)."""
    name = (username or "").strip().lower()[:64]
    wait = login_wait(db, name, client, now_ms)
    if wait:
        return None, wait
    row = db.query_one("SELECT id, password_hash, disabled FROM users WHERE username = ?", (name,))
    ok, rehash = verify_password(password or "", row["password_hash"] if row else _dummy_hash())
    ok = bool(ok and row and not row["disabled"])
    with db.transaction():
        db.execute(
            "INSERT INTO login_attempts (username, client, at_ms, ok) VALUES (?, ?, ?, ?)",
            (name, client, now_ms, int(ok)),
        )
        db.execute("DELETE FROM login_attempts WHERE at_ms < ?", (now_ms - LOGIN_KEEP_MS,))
        if ok and rehash and row:
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (rehash, row["id"]))
    if not ok or row is None:
        return None, 0
    return _fetch(db, row["id"]), 0


# --- API tokens -------------------------------------------------------------------------------


def _token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db, username, name, created_by, now_ms):
    """(token, row): a new bearer token acting as `username`. The token is returned only here."""
    user = _require(db, username)
    name = (name or "").strip()
    if not 1 <= len(name) <= 80:
        raise UserError("token name: say what uses it (1-80 characters), e.g. 'BI export'")
    token = "rt_" + secrets.token_urlsafe(32)
    db.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_ms, created_by) VALUES (?, ?, ?, ?, ?, ?)",
        (user["id"], name, _token_hash(token), token[: TOKEN_PREFIX_LEN + 3], now_ms, created_by),
    )
    row = db.query_one("SELECT * FROM api_tokens WHERE token_hash = ?", (_token_hash(token),))
    return token, row


def list_tokens(db):
    """Every token (never the token itself), newest first, with its account name."""
    return db.query(
        "SELECT t.id, t.name, t.prefix, t.created_ms, t.created_by, t.last_used_ms, t.revoked_ms, u.username"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id DESC"
    )


def revoke_token(db, token_id, now_ms):
    n = db.execute("UPDATE api_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (now_ms, int(token_id)))
    if not n:
        raise UserError("no active token %s" % token_id)


def token_user(db, token, now_ms):
    """The account a bearer token acts as, or None (unknown, revoked, or the account disabled)."""
    if not token or not token.startswith("rt_") or len(token) > 100:
        return None
    row = db.query_one(
        "SELECT id, user_id, last_used_ms FROM api_tokens WHERE token_hash = ? AND revoked_ms IS NULL",
        (_token_hash(token),),
    )
    if row is None:
        return None
    user = get(db, row["user_id"])
    if user is None or user["disabled"]:
        return None
    if row["last_used_ms"] is None or now_ms - row["last_used_ms"] >= TOKEN_TOUCH_MS:
        db.execute("UPDATE api_tokens SET last_used_ms = ? WHERE id = ?", (now_ms, row["id"]))
    return user


# --- the console's own secrets ----------------------------------------------------------------


def secret(db, name, now_ms):
    """A random secret stored under `name`, made on first use (the first console process to
    ask wins; every later one reads the same value)."""
    db.execute(
        "INSERT INTO console_secrets (name, value, created_ms) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        (name, secrets.token_urlsafe(48), now_ms),
    )
    return db.scalar("SELECT value FROM console_secrets WHERE name = ?", (name,))
