"""MQTT accounts: who may connect to the broker, with which password, and what each may publish
and read (docs/security.md).

Usernames (site and device ids are a-z 0-9 '-', so the dots cannot be ambiguous):

    panel.<site>.<device>   one per panel: publishes its own event/state, reads its own ack/config
    gateway  gateway.<id>   `rating gateway run`: reads every event/state/counts, writes ack/config
    counts.<id>             a POS or people-counter integration: writes the counts and the sales
                            (transactions) of its sites
    operator.<id>           a person or tool that watches (`rating record`, a dashboard): reads
                            event/state/ack/counts/transactions of its sites, never config (a config may carry
                            a panel's next password while it is being rotated)
    bridge.<id>             a store's (or region's) Mosquitto bridged to the central broker
                            (`rating broker bridge`): writes what its sites' panels and counters
                            publish (event/state/counts/transactions), reads their ack and config

Passwords are generated here (`secrets`, 192 bits) and stored only as Mosquitto's PBKDF2-SHA512
hash (`$7$<iterations>$<salt b64>$<key b64>`, 12-byte salt, 64-byte key), the format
mosquitto_passwd writes and Mosquitto and the embedded broker (gateway/broker.py) check.

Three layers, functional core first:
- pure: usernames, `new_secret`, `hash_password`/`verify_password`, `acl_rules` (one account's
  topic rules for a topic root), `Rules` (the compiled table both brokers enforce), `demo_logins`;
- the shell (`add`, `reset_password`, `add_panel`, `issue_for_usb`, `rotate`, `begin_delivery`,
  `confirm`, `revoke`, `accounts`, `rules_from_db`): the `mqtt_accounts` table, which only this
  module reads or writes (migrations 020_*).

A panel's password (docs/security.md, "Panel credentials"): `add_panel` creates the identity
with no password (nobody can log in as it); `issue_for_usb` makes a new password active at once
for the technician to write into the panel's /config.json; `rotate` asks for a new one over the
air: `begin_delivery` creates it (version ver+1) and returns the plaintext for the retained
config the panel reads only after it authenticated with its current password; only its hash is
stored (`pending_hash`), never the plaintext: a gateway restarted before the panel confirmed
simply delivers a fresh one (the next version). `confirm(ver)`, when the panel reports holding that version, makes
it the active password; the old one stops working at the broker's next reload.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from protocol import ProtocolError, topics

ROLES = ("panel", "gateway", "counts", "operator", "bridge")
# PBKDF2 rounds. Every password here is 192 random bits, so the rounds do not protect it against
# guessing (nothing could); they only slow down guessing of a weak password someone put into a
# generated file by hand. 10,000 costs ~7 ms per CONNECT on this machine kind (Mosquitto's own
# default is 101); the embedded broker caches a verified login, so reconnects stay cheap.
ITERATIONS = 10000
MAX_ITERATIONS = 10_000_000  # a hash asking for more is refused, not computed (denial of service)
SALT_BYTES = 12
KEY_BYTES = 64
SECRET_BYTES = 24  # token_urlsafe: 32 characters of a-z A-Z 0-9 - _


class AccountError(ValueError):
    """What the user can fix: the message says what happened and what to do."""


# ---- usernames -------------------------------------------------------------------------------


def _id(value, what):
    try:
        return topics.check_id(value, what)
    except ProtocolError as exc:
        raise AccountError(str(exc)) from None


def panel_username(site, device):
    """'panel.<site>.<device>'."""
    return "panel.%s.%s" % (_id(site, "site"), _id(device, "device"))


def parse_username(username):
    """(role, site, device) of a username; site/device are None except for panels.
    AccountError for anything that is not one of the four shapes."""
    if not isinstance(username, str) or not username:
        raise AccountError("an account name must be a non-empty string")
    parts = username.split(".")
    role = parts[0]
    shape = {
        "panel": "panel.<site>.<device>",
        "gateway": "gateway or gateway.<id>",
        "counts": "counts.<id>",
        "operator": "operator.<id>",
        "bridge": "bridge.<id>",
    }
    if role not in shape:
        raise AccountError(
            "account %r: the name must start with panel., gateway, counts., operator. or bridge. "
            "(e.g. counts.pos-1, operator.anna, panel.shop-1.desk-2, bridge.shop-1)" % username
        )
    want = {"panel": (3,), "gateway": (1, 2), "counts": (2,), "operator": (2,), "bridge": (2,)}[role]
    if len(parts) not in want:
        raise AccountError("account %r: write it as %s" % (username, shape[role]))
    for part in parts[1:]:
        try:
            topics.check_id(part, "id")
        except ProtocolError as exc:
            raise AccountError("account %r: %s" % (username, exc.problem)) from None
    if role == "panel":
        return role, parts[1], parts[2]
    return role, None, None


# ---- passwords -------------------------------------------------------------------------------


def new_secret():
    """A fresh password: 192 random bits as 32 URL-safe characters."""
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_password(secret, salt=None, iterations=ITERATIONS):
    """Mosquitto's sha512-pbkdf2 line part: `$7$<iterations>$<salt b64>$<key b64>`."""
    if not isinstance(secret, str) or not secret:
        raise AccountError("a password must be a non-empty string")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", secret.encode("utf-8"), salt, iterations, KEY_BYTES)
    return "$7$%d$%s$%s" % (iterations, base64.b64encode(salt).decode(), base64.b64encode(key).decode())


def _parse_hash(hashed):
    parts = hashed.split("$") if isinstance(hashed, str) else ()
    if len(parts) != 5 or parts[0] or parts[1] != "7" or not parts[2].isdigit():
        return None
    iterations = int(parts[2])
    if not 1 <= iterations <= MAX_ITERATIONS:
        return None
    try:
        salt = base64.b64decode(parts[3], validate=True)
        key = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not salt or not key:
        return None
    return iterations, salt, key


def is_hash(hashed):
    """True for a well-formed `$7$` hash."""
    return _parse_hash(hashed) is not None


def verify_password(secret, hashed):
    """True when `secret` is the password of the `$7$` hash; False for anything else (a missing
    password, another hash scheme, a damaged hash)."""
    parsed = _parse_hash(hashed)
    if parsed is None or not isinstance(secret, str) or not secret:
        return False
    iterations, salt, key = parsed
    got = hashlib.pbkdf2_hmac("sha512", secret.encode("utf-8"), salt, iterations, len(key))
    return hmac.compare_digest(got, key)


# ---- topic rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """One account as the brokers need it (no plaintext ever)."""

    username: str
    pw_hash: str | None = None  # the active password's hash; None: cannot log in (yet)
    sites: tuple = ()  # counts/operator: the sites it covers
    all_sites: bool = False  # counts/operator: every site
    ver: int = 0  # version of the active password (panels report it back after a rotation)
    pending_ver: int | None = None  # a rotation asked for; its hash once delivered
    pending_hash: str | None = None

    @property
    def role(self):
        return self.username.split(".")[0]


def acl_rules(account, root):
    """[(access, topic pattern)] of one account under `root`, access "read" or "write".
    Explicit topics per account (no %u patterns: they work per username, and a panel's rights
    are per site/device anyway)."""
    topics.check_root(root)
    role, site, device = parse_username(account.username)
    if role == "panel":
        own = "%s/%s/%s/" % (root, site, device)
        return [("write", own + "event"), ("write", own + "state"), ("read", own + "ack"), ("read", own + "config")]
    if role == "gateway":
        return [
            ("read", root + "/+/+/event"),
            ("read", root + "/+/+/state"),
            ("read", root + "/+/" + topics.COUNTS),
            ("read", root + "/+/" + topics.TRANSACTIONS),
            ("write", root + "/+/+/ack"),
            ("write", root + "/+/+/config"),
            # its own topics back: the retained check (gateway/retained.py) compares what the
            # broker holds with what should be there and sees its marker come back through them
            ("read", root + "/+/+/ack"),
            ("read", root + "/+/+/config"),
        ]
    sites = ["+"] if account.all_sites else sorted(set(account.sites))
    if role == "counts":  # a POS sends counts per interval, or each sale
        return [("write", "%s/%s/%s" % (root, s, kind)) for s in sites for kind in (topics.COUNTS, topics.TRANSACTIONS)]
    if role == "bridge":  # carries its sites' traffic both ways: a config to its panels too
        rules = []
        for s in sites:
            rules += [("write", "%s/%s/+/%s" % (root, s, kind)) for kind in ("event", "state")]
            rules.append(("write", "%s/%s/%s" % (root, s, topics.COUNTS)))
            rules.append(("write", "%s/%s/%s" % (root, s, topics.TRANSACTIONS)))
            rules += [("read", "%s/%s/+/%s" % (root, s, kind)) for kind in ("ack", "config")]
        return rules
    rules = []  # operator: reads what flows, never a config (it may carry a panel's next password)
    for s in sites:
        rules += [("read", "%s/%s/+/%s" % (root, s, kind)) for kind in ("event", "state", "ack")]
        rules.append(("read", "%s/%s/%s" % (root, s, topics.COUNTS)))
        rules.append(("read", "%s/%s/%s" % (root, s, topics.TRANSACTIONS)))
    return rules


def topic_matches(pattern, topic):
    """MQTT filter matching: does `topic` (no wildcards) fall under `pattern`?"""
    if topic.startswith("$") and not pattern.startswith("$"):
        return False  # MQTT 4.7.2: wildcards at the first level do not match $ topics
    p = pattern.split("/")
    t = topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part != "+" and part != t[i]:
            return False
    return len(p) == len(t)


def filters_overlap(a, b):
    """Could some topic match both filters `a` and `b`?"""
    x = a.split("/")
    y = b.split("/")
    for i in range(max(len(x), len(y))):
        p = x[i] if i < len(x) else None
        q = y[i] if i < len(y) else None
        if p == "#" or q == "#":
            return True
        if p is None or q is None:
            return False
        if p != "+" and q != "+" and p != q:
            return False
    return True


class Rules:
    """The compiled account table a broker enforces: password checks and per-topic rights.
    Built from accounts (`from_accounts`) or from Mosquitto's password and ACL files
    (gateway/brokerconf.py); equal tables compare equal, so a reload can tell a change."""

    def __init__(self, hashes, acls):
        self.hashes = dict(hashes)  # username -> $7$ hash
        self.acls = {u: tuple(r) for u, r in acls.items()}  # username -> ((access, pattern), ...)

    @classmethod
    def from_accounts(cls, accounts, root):
        hashes = {a.username: a.pw_hash for a in accounts if a.pw_hash}
        return cls(hashes, {a.username: acl_rules(a, root) for a in accounts if a.pw_hash})

    def __eq__(self, other):
        return isinstance(other, Rules) and (self.hashes, self.acls) == (other.hashes, other.acls)

    def __len__(self):
        return len(self.hashes)

    def check_password(self, username, password):
        hashed = self.hashes.get(username) if username else None
        return bool(hashed) and verify_password(password, hashed)

    def may(self, username, access, topic):
        """May `username` publish (access "write") or receive ("read") on `topic`?"""
        if not username or not topic:
            return False
        return any(a == access and topic_matches(p, topic) for a, p in self.acls.get(username, ()))

    def may_subscribe(self, username, topic_filter):
        """A subscription that can match something the account may read (what arrives is still
        checked message by message, as Mosquitto does)."""
        if not username or not topic_filter:
            return False
        return any(a == "read" and filters_overlap(p, topic_filter) for a, p in self.acls.get(username, ()))


# ---- throwaway logins (rating demo, the simulator, tests) -------------------------------------


@dataclass
class Logins:
    """Accounts made up on the spot for a broker that lives as long as one run. `passwords` holds
    the plaintexts in memory only; `accounts` the hashed side for the broker."""

    root: str
    accounts: list = field(default_factory=list)
    passwords: dict = field(default_factory=dict)

    def add(self, username, sites=(), all_sites=False):
        parse_username(username)
        secret = new_secret()
        self.passwords[username] = secret
        self.accounts.append(Account(username, hash_password(secret), tuple(sites), all_sites, ver=1))
        return secret

    def panel(self, site, device):
        """(username, password) of a panel."""
        name = panel_username(site, device)
        return name, self.passwords[name]

    def rules(self):
        return Rules.from_accounts(self.accounts, self.root)


def demo_logins(root, panels, gateway="gateway", counts_sites=()):
    """Logins for a throwaway broker: the gateway, every (site, device) panel, and (when
    counts_sites is given) `counts.demo` writing those sites' counts."""
    logins = Logins(topics.check_root(root))
    logins.add(gateway)
    for site, device in panels:
        logins.add(panel_username(site, device))
    if counts_sites:
        logins.add("counts.demo", sites=tuple(counts_sites))
    return logins


# ---- the database shell ------------------------------------------------------------------------

_COLUMNS = "username, role, site, device, all_sites, pw_hash, ver, pending_ver, pending_hash, created_ms, changed_ms, revoked_ms"


def _row(db, username):
    return db.query_one("SELECT %s FROM mqtt_accounts WHERE username = ?" % _COLUMNS, (username,))


def _sites_of(db, usernames):
    out = {}
    for r in db.query("SELECT username, site FROM mqtt_account_sites ORDER BY username, site"):
        if r["username"] in usernames:
            out.setdefault(r["username"], []).append(r["site"])
    return out


def _check_scope(role, sites, all_sites):
    sites = tuple(_id(s, "site") for s in sites)
    if role in ("counts", "operator", "bridge"):
        if all_sites and sites:
            raise AccountError("give either sites or all sites, not both")
        if role == "bridge" and not (sites or all_sites):
            raise AccountError("a bridge carries the traffic of its sites: name at least one site, or all sites")
        if role == "counts" and not (sites or all_sites):
            raise AccountError("a counts account writes the counts of its sites: name at least one site")
        if role == "operator" and not (sites or all_sites):
            raise AccountError("an operator account reads its sites: name at least one site, or all sites")
    elif sites or all_sites:
        raise AccountError("only counts, operator and bridge accounts are limited to sites")
    return sites


def add(db, username, now_ms, sites=(), all_sites=False):
    """A new gateway, counts or operator account with a fresh active password; returns the
    plaintext (the caller hands it over, see cli_accounts). A revoked account of the same name
    is brought back with a new password."""
    role, _s, _d = parse_username(username)
    if role == "panel":
        raise AccountError(
            "%s: panel accounts are made by `rating site apply` and get their password from "
            "`rating panel credentials` or `rating panel rotate-password`" % username
        )
    sites = _check_scope(role, sites, all_sites)
    secret = new_secret()
    with db.transaction():
        row = _row(db, username)
        if row and row["revoked_ms"] is None:
            raise AccountError(
                "account %s exists already; give it a new password with "
                "`rating broker account reset-password %s` or revoke it first" % (username, username)
            )
        if row:
            db.execute("DELETE FROM mqtt_account_sites WHERE username = ?", (username,))
            db.execute(
                "UPDATE mqtt_accounts SET role = ?, all_sites = ?, pw_hash = ?, ver = ver + 1, pending_ver = NULL, "
                "pending_hash = NULL, changed_ms = ?, revoked_ms = NULL WHERE username = ?",
                (role, int(all_sites), hash_password(secret), now_ms, username),
            )
        else:
            db.execute(
                "INSERT INTO mqtt_accounts (username, role, all_sites, pw_hash, ver, created_ms, changed_ms) "
                "VALUES (?, ?, ?, ?, 1, ?, ?)",
                (username, role, int(all_sites), hash_password(secret), now_ms, now_ms),
            )
        db.executemany("INSERT INTO mqtt_account_sites (username, site) VALUES (?, ?)", [(username, s) for s in sites])
    return secret


def _live(db, username):
    row = _row(db, username)
    if not row:
        raise AccountError("no account %s; `rating broker account list` shows them" % username)
    if row["revoked_ms"] is not None:
        raise AccountError("account %s is revoked; add it again to give it a new password" % username)
    return row


def reset_password(db, username, now_ms):
    """A new active password for a gateway, counts or operator account (the old one stops working
    at the broker's next reload); returns the plaintext."""
    role, _s, _d = parse_username(username)
    if role == "panel":
        raise AccountError(
            "%s: a panel gets a new password with `rating panel rotate-password` (over the air) "
            "or `rating panel credentials` (by USB)" % username
        )
    secret = new_secret()
    with db.transaction():
        _live(db, username)
        db.execute(
            "UPDATE mqtt_accounts SET pw_hash = ?, ver = ver + 1, changed_ms = ? WHERE username = ?",
            (hash_password(secret), now_ms, username),
        )
    return secret


def add_panel(db, site, device, now_ms):
    """The panel's identity, without a password yet (nobody can log in as it until one is
    delivered). Idempotent; brings back a revoked panel without a password. Returns the username."""
    username = panel_username(site, device)
    with db.transaction():
        row = _row(db, username)
        if row is None:
            db.execute(
                "INSERT INTO mqtt_accounts (username, role, site, device, all_sites, ver, created_ms, changed_ms) "
                "VALUES (?, 'panel', ?, ?, 0, 0, ?, ?)",
                (username, site, device, now_ms, now_ms),
            )
        elif row["revoked_ms"] is not None:
            db.execute(
                "UPDATE mqtt_accounts SET revoked_ms = NULL, pw_hash = NULL, pending_ver = NULL, pending_hash = NULL, "
                "changed_ms = ? WHERE username = ?",
                (now_ms, username),
            )
    return username


def issue_for_usb(db, site, device, now_ms):
    """A new password for the panel, active at once (its old one, if any, stops working at the
    broker's next reload), to be written into the panel's /config.json over USB. Creates the
    panel's account if needed; cancels a rotation over the air. Returns (plaintext, version)."""
    username = add_panel(db, site, device, now_ms)
    secret = new_secret()
    with db.transaction():
        row = _live(db, username)
        ver = max(row["ver"], row["pending_ver"] or 0) + 1
        db.execute(
            "UPDATE mqtt_accounts SET pw_hash = ?, ver = ?, pending_ver = NULL, pending_hash = NULL, changed_ms = ? "
            "WHERE username = ?",
            (hash_password(secret), ver, now_ms, username),
        )
    return secret, ver


def rotate(db, site, device, now_ms):
    """Ask for a new password over the air; returns its version. The panel keeps its current one
    until it confirmed the new one. Asking again before that replaces the pending rotation."""
    username = panel_username(site, device)
    with db.transaction():
        row = _live(db, username)
        if not row["pw_hash"]:
            raise AccountError(
                "panel %s/%s has no password yet, so it cannot authenticate to receive one over the air: "
                "give it one by USB (`rating panel credentials`)" % (site, device)
            )
        ver = max(row["ver"], row["pending_ver"] or 0) + 1
        db.execute(
            "UPDATE mqtt_accounts SET pending_ver = ?, pending_hash = NULL, changed_ms = ? WHERE username = ?",
            (ver, now_ms, username),
        )
    return ver


def pending_rotations(db):
    """[{site, device, username, pending_ver, delivered}] of the panels waiting for a new
    password (delivered: a plaintext went out and the panel has not confirmed it yet)."""
    rows = db.query(
        "SELECT username, site, device, pending_ver, pending_hash FROM mqtt_accounts "
        "WHERE role = 'panel' AND pending_ver IS NOT NULL AND revoked_ms IS NULL ORDER BY username"
    )
    return [
        {
            "username": r["username"],
            "site": r["site"],
            "device": r["device"],
            "pending_ver": r["pending_ver"],
            "delivered": r["pending_hash"] is not None,
        }
        for r in rows
    ]


def begin_delivery(db, site, device, now_ms):
    """The plaintext of the pending rotation, made now: (plaintext, version). Only its hash is
    kept; the caller publishes the plaintext in the panel's retained config (which only that
    panel may read) and forgets it. Calling again (a gateway restarted before the panel held
    it) makes a new one under the next version: a panel reporting that it holds a version then
    names exactly one password, never an older delivery's. AccountError when no rotation is
    pending."""
    username = panel_username(site, device)
    secret = new_secret()
    with db.transaction():
        row = _live(db, username)
        ver = row["pending_ver"]
        if ver is None:
            raise AccountError("panel %s/%s has no rotation pending" % (site, device))
        if row["pending_hash"] is not None:
            ver += 1
        db.execute(
            "UPDATE mqtt_accounts SET pending_ver = ?, pending_hash = ?, changed_ms = ? WHERE username = ?",
            (ver, hash_password(secret), now_ms, username),
        )
    return secret, ver


def confirm(db, site, device, ver, now_ms):
    """The panel reports holding password version `ver`: when that is the delivered pending one,
    it becomes the active password. Returns True when it changed something."""
    username = panel_username(site, device)
    with db.transaction():
        row = _row(db, username)
        if (
            not row
            or row["revoked_ms"] is not None
            or row["pending_ver"] != ver
            or row["pending_hash"] is None
            or type(ver) is not int
        ):
            return False
        db.execute(
            "UPDATE mqtt_accounts SET pw_hash = pending_hash, ver = pending_ver, pending_ver = NULL, "
            "pending_hash = NULL, changed_ms = ? WHERE username = ?",
            (now_ms, username),
        )
    return True


def revoke(db, username, now_ms):
    """The account can no longer log in (at the broker's next reload; Mosquitto then drops its
    connection). Its hashes are wiped; the row stays as a record."""
    parse_username(username)
    with db.transaction():
        _live(db, username)
        db.execute(
            "UPDATE mqtt_accounts SET pw_hash = NULL, pending_ver = NULL, pending_hash = NULL, revoked_ms = ?, "
            "changed_ms = ? WHERE username = ?",
            (now_ms, now_ms, username),
        )


def listing(db):
    """Every account as a dict for people: no hash, no secret."""
    rows = db.query("SELECT %s FROM mqtt_accounts ORDER BY username" % _COLUMNS)
    sites = _sites_of(db, {r["username"] for r in rows})
    return [
        {
            "username": r["username"],
            "role": r["role"],
            "sites": ["*"] if r["all_sites"] else sites.get(r["username"], []),
            "password": "revoked"
            if r["revoked_ms"] is not None
            else ("set" if r["pw_hash"] else "none (deliver one by USB)"),
            "ver": r["ver"],
            "rotation": None
            if r["pending_ver"] is None
            else ("v%d delivered, awaiting the panel" % r["pending_ver"])
            if r["pending_hash"]
            else ("v%d waiting for the panel to come online" % r["pending_ver"]),
            "created_ms": r["created_ms"],
            "changed_ms": r["changed_ms"],
            "revoked_ms": r["revoked_ms"],
        }
        for r in rows
    ]


def accounts(db):
    """The live accounts with an active password, as the brokers need them."""
    rows = db.query(
        "SELECT %s FROM mqtt_accounts WHERE revoked_ms IS NULL AND pw_hash IS NOT NULL ORDER BY username" % _COLUMNS
    )
    sites = _sites_of(db, {r["username"] for r in rows})
    return [
        Account(
            r["username"],
            r["pw_hash"],
            tuple(sites.get(r["username"], ())),
            bool(r["all_sites"]),
            r["ver"],
            r["pending_ver"],
            r["pending_hash"],
        )
        for r in rows
    ]


def rules_from_db(db, root, extra=()):
    """Rules of the live accounts plus `extra` Accounts (which win over a stored one of the same
    name: the in-process gateway's own login)."""
    mine = {a.username: a for a in accounts(db)}
    mine.update({a.username: a for a in extra})
    return Rules.from_accounts(list(mine.values()), root)


# ---- where Mosquitto's files live ---------------------------------------------------------------


def remember_broker_files(db, folder, root, group, pid_file, now_ms):
    """`rating broker config --out FOLDER` wrote the files there: later changes of accounts
    (site apply, USB credentials, a rotation) rewrite them there and reload via `pid_file`."""
    with db.transaction():
        db.execute("DELETE FROM broker_files")
        db.execute(
            "INSERT INTO broker_files (id, folder, root, grp, pid_file, written_ms) VALUES (1, ?, ?, ?, ?, ?)",
            (folder, root, group, pid_file, now_ms),
        )


def broker_files(db):
    """{folder, root, group, pid_file} of the Mosquitto files to keep current, or None."""
    row = db.query_one("SELECT folder, root, grp, pid_file FROM broker_files WHERE id = 1")
    if row is None:
        return None
    return {"folder": row["folder"], "root": row["root"], "group": row["grp"], "pid_file": row["pid_file"]}


def new_panels(db, panels, now_ms):
    """add_panel for each (site, device) that has no live account yet; returns the usernames
    made (or brought back)."""
    made = []
    for site, device in panels:
        row = _row(db, panel_username(site, device))
        if row is None or row["revoked_ms"] is not None:
            made.append(add_panel(db, site, device, now_ms))
    return made
