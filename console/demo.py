"""The console for `rating demo`: start it on the demo's database with demo accounts.

    from console import demo
    running, logins = demo.start(db_url)   # serves on 127.0.0.1, a free port
    print(running.url, logins)             # [(role, account, password), ...]
    ...
    running.stop()

The accounts (expert: every office; store manager: the first office of the site file;
analyst; technician; admin) get fresh random passwords on every start, so a demo database
left behind opens to nobody who did not see that run's output.
"""

import secrets
import time

from console import server
from gateway import schema, users
from gateway import site as site_mod

DEMO_ACCOUNTS = (
    ("expert", "expert", "Demo expert", {"all_offices": True}),
    ("store-manager", "manager", "Demo store manager", "first-office"),
    ("analyst", "analyst", "Demo analyst", {"all_offices": True}),
    ("technician", "technician", "Demo technician", {"all_offices": True}),
    ("admin", "admin", "Demo admin", {}),
)


def accounts(db, now_ms=None):
    """Create (or reset) the demo accounts; returns [(role, account, password)]."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    offices = [k for _, k in site_mod.load(db).keys("site")]
    out = []
    for role, name, full, scope in DEMO_ACCOUNTS:
        if scope == "first-office":
            if not offices:
                continue
            scope = {"offices": [offices[0]]}
        assert isinstance(scope, dict)
        password = secrets.token_urlsafe(9)
        if users.by_username(db, name) is None:
            users.add(
                db,
                name,
                password,
                role,
                now_ms,
                name=full,
                lang="en",
                all_offices=bool(scope.get("all_offices")),
                offices=scope.get("offices", ()),
            )
        else:
            users.set_password(db, name, password, now_ms)
            if (users.by_username(db, name) or {}).get("disabled"):
                users.set_disabled(db, name, False, now_ms)
        out.append((role, name, password))
    return out


def start(db_url, lang=None, host="127.0.0.1", port=0):
    """(server.Running, [(role, account, password)]): the console serving the demo database."""
    db = schema.open_database(db_url)
    try:
        logins = accounts(db)
    finally:
        db.close()
    return server.start(db_url, host, port, lang), logins
