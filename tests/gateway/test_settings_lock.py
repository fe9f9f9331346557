"""Settings changes one at a time, and every advisory lock namespace its own.

Two settings changes made at the same moment (a `rating site apply` and a console edit of the
alert rules, or two admins) both read the latest revision N: without a lock both wrote N+1 and
the second failed on the revision's key (a 500 in the console). `site.apply`/`apply_alerts`
now take an advisory lock first on PostgreSQL (SQLite's BEGIN IMMEDIATE serialises already), so
the second waits and is planned against the first's revision."""

import importlib
import pkgutil
import threading
import time

from gw_site_support import MIN, SITE_TOML, T0, apply_site

import gateway
from gateway import schema, site


def test_two_settings_changes_at_once_both_land_in_order(pg_url):
    first = schema.open_database(pg_url)
    second = schema.open_database(pg_url)
    try:
        apply_site(first, SITE_TOML + '\n[alerts]\nhours = "09:00-21:00"\n')
        rev = site.revision(first)
        outcome = {}

        def olga_saves():  # the second admin, while the first one's change is not committed yet
            try:
                outcome["rows"] = site.apply_alerts(second, {"hours": "10:00-20:00", "rules": {}}, T0 + 2 * MIN, "olga")
            except Exception as exc:  # what the console turned into a 500
                outcome["error"] = exc

        with first.transaction():
            site.apply_alerts(first, {"hours": "09:00-21:00", "rules": {"di_high": {"max": 0.4}}}, T0 + MIN, "ivan")
            olga = threading.Thread(target=olga_saves)
            olga.start()
            time.sleep(0.5)  # she has read the history and waits: on the lock, or (before) on ivan's key
            assert olga.is_alive()
        olga.join(30)
        assert "error" not in outcome, outcome.get("error")
        assert [r[:2] for r in outcome["rows"]] == [("alerts", "alerts")]
        changes = site.changes_of(first, "alerts", "alerts")
        assert [(c["rev"], c["by"]) for c in changes[:2]] == [(rev + 2, "olga"), (rev + 1, "ivan")]
        history = site.load(first)
        assert history.alerts(T0 + MIN)["rules"] == {"di_high": {"max": 0.4}}
        assert history.alerts(T0 + 2 * MIN)["hours"] == "10:00-20:00"
    finally:
        first.close()
        second.close()


def test_every_advisory_lock_namespace_is_its_own():
    """lock_names / try_session_lock namespaces: two features sharing one would wait on each
    other's locks (a till whose name hashes to the duty lock's key would never be matched)."""
    seen = {}
    for info in pkgutil.iter_modules(gateway.__path__):
        module = importlib.import_module("gateway." + info.name)
        for name, value in vars(module).items():
            if (name.endswith("LOCK") or name.endswith("LOCKS")) and isinstance(value, int) and value >> 16 == 0x5241:
                seen.setdefault(value, set()).add("%s.%s" % (info.name, name))
    assert len(seen) >= 6
    shared = {hex(k): sorted(v) for k, v in seen.items() if len(v) > 1}
    assert not shared
