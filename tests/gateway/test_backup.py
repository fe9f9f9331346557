"""Backups keep every event and verdict: `rating db backup`/`restore` for SQLite (taken while a
writer holds uncheckpointed commits in the WAL, like a running gateway), and the pg_dump /
pg_restore commands docs/install.md gives for PostgreSQL, run as written there."""

import os
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from gw_site_support import SITE_TOML, T0, Panel, apply_site, derived, open_db, store_events

from gateway import derive, review
from rating import cli

INSTALL = Path(__file__).resolve().parents[2] / "docs" / "install.md"


def fill(db):
    """A site file, two panels' polls, derived, and two verdicts."""
    apply_site(db, SITE_TOML, T0 - 3600000)
    for device in ("desk-1", "door"):
        panel = Panel("msk", device)
        for i in range(20):
            panel.poll(T0 + i * 120000, ("yes", "no", "so_so")[i % 3])
        store_events(db, panel.events)
    derive.rebuild(db, T0 + 3 * 3600000)
    review.record(db, review.POLL, "msk/desk-1/1", "invalid", "test press", "anna", T0 + 4 * 3600000)
    review.record(db, review.POLL, "msk/desk-1/3", "valid", "", "anna", T0 + 4 * 3600000)


def contents(db):
    """Every event and verdict row, and the derived tables, comparable across databases."""
    events = [tuple(r.values()) for r in db.query("SELECT * FROM raw_events ORDER BY site, device, seq")]
    verdicts = [tuple(r.values()) for r in db.query("SELECT * FROM verdicts ORDER BY id")]
    return events, verdicts, derived(db)


def test_a_sqlite_backup_taken_while_the_gateway_writes_restores_every_event_and_verdict(tmp_path, capsys):
    url = "sqlite:///%s" % (tmp_path / "live.db")
    db = open_db(url)
    fill(db)
    want = contents(db)
    assert len(want[0]) == 80 and len(want[1]) == 2
    # the writer stays open: its commits are in the WAL, not yet in the main file
    assert os.path.getsize(str(tmp_path / "live.db-wal")) > 0
    backup = tmp_path / "backups" / "rating-1.db"
    backup.parent.mkdir()
    assert cli.main(["db", "backup", "--db", url, str(backup)]) == 0
    assert "backup written" in capsys.readouterr().out
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert [p.name for p in backup.parent.iterdir()] == ["rating-1.db"]  # no temporary file left
    # never overwrites a backup
    assert cli.main(["db", "backup", "--db", url, str(backup)]) == 2
    assert "exists" in capsys.readouterr().err

    restored_url = "sqlite:///%s" % (tmp_path / "restored" / "rating.db")
    (tmp_path / "restored").mkdir()
    assert cli.main(["db", "restore", "--db", restored_url, str(backup)]) == 0
    assert contents(open_db(restored_url)) == want
    # restoring over the live database needs --replace; then it is the backup again
    db.execute("DELETE FROM verdicts")
    assert cli.main(["db", "restore", "--db", url, str(backup)]) == 2
    assert "--replace" in capsys.readouterr().err
    db.close()
    assert cli.main(["db", "restore", "--db", url, str(backup), "--replace"]) == 0
    assert contents(open_db(url)) == want


def test_restore_refuses_a_file_that_is_not_a_whole_rating_database(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    target = "sqlite:///%s" % (tmp_path / "new.db")
    assert cli.main(["db", "restore", "--db", target, str(junk)]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "new.db").exists()
    assert cli.main(["db", "backup", "--db", "sqlite:///%s" % (tmp_path / "none.db"), str(tmp_path / "b.db")]) == 2
    assert "no database at" in capsys.readouterr().err and not (tmp_path / "none.db").exists()


def test_a_postgresql_database_is_pointed_to_pg_dump(capsys):
    assert cli.main(["db", "backup", "--db", "postgresql://rating@db.example/rating", "x.dump"]) == 2
    assert "pg_dump" in capsys.readouterr().err


def documented(command):
    """The line of docs/install.md that starts with `command` (so the test runs what the guide says)."""
    for line in INSTALL.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith(command):
            return line.strip()
    raise AssertionError("docs/install.md has no `%s` line" % command)


@pytest.mark.e2e
def test_the_documented_pg_dump_and_pg_restore_keep_every_event_and_verdict(pg_store_url, tmp_path):
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump/pg_restore not installed")
    import psycopg

    db = open_db(pg_store_url)
    fill(db)
    want = contents(db)
    db.close()
    base = pg_store_url.rsplit("/", 1)[0]
    copy = "rating_restore_%s" % uuid.uuid4().hex[:12]
    dump = tmp_path / "rating.dump"
    admin = psycopg.connect(base + "/postgres", autocommit=True)
    admin.execute("CREATE DATABASE %s" % copy)
    try:

        def run(line, **names):
            # the guide's placeholders: $DB (the database URL), FILE
            for name, value in names.items():
                line = line.replace(name, value)
            args = re.sub(r"\s+#.*$", "", line).split()
            subprocess.run(args, check=True, capture_output=True, timeout=120)

        run(documented("pg_dump "), **{"$DB": pg_store_url, "FILE": str(dump)})
        run(documented("pg_restore "), **{"$DB": "%s/%s" % (base, copy), "FILE": str(dump)})
        restored = open_db("%s/%s" % (base, copy))
        assert contents(restored) == want
        restored.close()
    finally:
        admin.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % copy)
        admin.close()
