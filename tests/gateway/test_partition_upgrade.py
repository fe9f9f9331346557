"""Upgrading a store migrated to the version before the partitioning (migrations up to 054,
with data in it) to this one: every raw event and every poll is still there, each event's key
is in the ledger (raw_event_keys), and the store works on (ingest dedupe, rebuild)."""

import os
import shutil

import pytest
from gw_site_support import MIN, T0, Panel, apply_site, store_events

from gateway import db as dbmod
from gateway import derive, partitions, schema, store

# polls' columns that migrations after 054 add (their rows derived before them read NULL until a
# rebuild, which the end of the test does)
LATER_POLL_COLUMNS = {"seller_hold_ms"}


def _old_migrations(folder):
    for name in os.listdir(dbmod.MIGRATIONS_DIR):
        if name.endswith(".sql") and int(name[:3]) < 55:
            shutil.copy(os.path.join(dbmod.MIGRATIONS_DIR, name), folder)
    return str(folder)


def _events():
    out = []
    for device, months in (("desk-1", 0), ("exit", 40)):
        p = Panel(device=device)
        for i in range(60):
            at = T0 + (months + i) * 24 * 60 * MIN  # two months of days
            p.poll(at, ("yes", "no", None)[i % 3])
        out += p.events
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "old.db")
    return request.getfixturevalue("pg_url")


def test_upgrade_keeps_every_event_and_poll_and_fills_the_key_ledger(url, tmp_path):
    events = _events()
    # what this version derives from those events, in a store of its own
    ref = schema.open_database("sqlite:///%s" % (tmp_path / "ref.db"))
    apply_site(ref)
    store_events(ref, events)
    derive.rebuild(ref, T0 + 200 * 24 * 60 * MIN)
    polls = ref.query("SELECT * FROM polls ORDER BY site, device, open_seq")
    ref.close()
    # the old store: migrations up to 054, events and polls written as the old version did
    old = dbmod.connect(url)
    (tmp_path / "old").mkdir()
    old.migrate(directory=_old_migrations(tmp_path / "old"), sqlite_functions=schema.SQLITE_FUNCTIONS)
    assert "055_raw_event_keys" not in old.applied_migrations()
    apply_site(old)
    with old.transaction():
        old.executemany(
            "INSERT INTO raw_events (%s) VALUES (%s)" % (", ".join(store.EVENT_COLUMNS), ", ".join("?" * 10)),
            [tuple(e[c] for c in store.EVENT_COLUMNS) for e in events],
        )
        cols = [c for c in polls[0] if c not in LATER_POLL_COLUMNS]
        old.executemany(
            "INSERT INTO polls (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))),
            [tuple(p[c] for c in cols) for p in polls],
        )
    raw = old.query("SELECT * FROM raw_events ORDER BY site, device, seq")
    old.close()

    db = schema.open_database(url)  # the upgrade
    try:
        assert db.query("SELECT * FROM raw_events ORDER BY site, device, seq") == raw
        kept = db.query("SELECT * FROM polls ORDER BY site, device, open_seq")
        assert [{c: p[c] for c in cols} for p in kept] == [{c: p[c] for c in cols} for p in polls]
        keys = db.query("SELECT site, device, seq, received_ms FROM raw_event_keys ORDER BY site, device, seq")
        assert keys == [{k: e[k] for k in ("site", "device", "seq", "received_ms")} for e in raw]
        if db.dialect == "postgresql":
            # the index migration 046 made on the old polls is on the partitioned one too (058)
            assert db.scalar("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'polls_panel_opened'") == 1
            months = {partitions.month_label(e["received_ms"]) for e in raw}
            names = {p["name"] for p in partitions.listing(db, "raw_events")}
            assert {"raw_events_" + m.replace("-", "") for m in months} <= names
            assert db.scalar("SELECT COUNT(*) FROM raw_events_default") == 0
            assert db.scalar("SELECT COUNT(*) FROM polls_default") == 0
        # it works on: a resend is a duplicate, a rebuild gives the same polls
        stored, dups, _c = store_events(db, events[:5])
        assert stored == [] and len(dups) == 5
        derive.rebuild(db, T0 + 200 * 24 * 60 * MIN)
        assert db.query("SELECT * FROM polls ORDER BY site, device, open_seq") == polls
    finally:
        db.close()
