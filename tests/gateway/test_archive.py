"""Raw events archived by month and purged once derived and archived (gateway/archive.py,
`rating db archive | purge | restore-events`): nothing lost, nothing counted twice - the
derived rows stay through purges, rebuilds and settings changes, a resend of a purged event
is still a duplicate, the acks do not move back, and the archive puts everything back."""

import gzip
import json
import os
import subprocess
import sys

import pytest
from gw_site_support import SITE_TOML, Panel, apply_site, store_events

from gateway import archive, derive, partitions, schema, store
from gateway import rebuild as rebuild_mod

JAN = partitions.parse_month("2025-01")
FEB = partitions.parse_month("2025-02")
MAR = partitions.parse_month("2025-03")
NOW = partitions.parse_month("2025-05") + 9 * 86400000  # 10 May 2025
DAY = 86400000
DERIVED = {
    "polls": "site, device, open_seq",
    "force_majeure": "site, device, seq",
    "unsolicited": "site, device, seq",
    "anomalies": "site, device, seq, n",
    "poll_rollup": "site, device, employee, question, kind, tz, day",
    "fm_rollup": "site, device, employee, question, tz, day",
}


def _contents(db):
    return {table: db.query("SELECT * FROM %s ORDER BY %s" % (table, order)) for table, order in DERIVED.items()}


def _three_months(db, late_ms=MAR + 9 * DAY):
    """desk-1 and exit: polls every 6 hours from 6 January to 20 March 2025 (received as
    pressed), a long press a week; exit's seq 5 arrives only at late_ms (a gap filled late)."""
    apply_site(db, SITE_TOML, now_ms=JAN)
    late = []
    for device in ("desk-1", "exit"):
        p = Panel(device=device, booted_at=JAN)
        t = JAN + 5 * DAY + 8 * 3600000
        while t < MAR + 19 * DAY:
            if (t // DAY) % 7 == 3 and t % DAY < 6 * 3600000:
                p.press(t, "seller_long", hold=3000)
            p.poll(t, ("yes", "no", None, "unsure")[(t // (6 * 3600000)) % 4], after_ms=4000)
            t += 6 * 3600000
        events = p.events
        if device == "exit":
            gap = [e for e in events if e["seq"] == 5]
            gap[0]["received_ms"] = late_ms
            late += gap
            events = [e for e in events if e["seq"] != 5]
        store_events(db, events)
    store_events(db, late)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], NOW)
    return late


def _archive(db, folder, *months):
    for month in months:
        archive.archive_month(db, month, str(folder), NOW)


def test_purge_deletes_only_archived_and_derived_events_and_keeps_every_derived_row(any_db, tmp_path):
    db = any_db
    late = _three_months(db)
    before = _contents(db)
    acks = {d: store.contiguous_acked_seq(db, "msk", d, previous=0) for d in ("desk-1", "exit")}
    total = store.count_received(db, JAN, NOW)
    _archive(db, tmp_path, "2025-01", "2025-02")
    p = archive.purge(db, keep_months=2, now_ms=NOW)  # keeps March and April: cutoff 1 March
    assert p.cutoff_ms == MAR and p.months == ["2025-01", "2025-02"]
    assert store.count_received(db, JAN, MAR) == p.kept > 0  # exit's events above its late seq 5
    assert store.first_seq_from(db, "msk", "exit", 0) == 5 and store.first_seq_from(db, "msk", "desk-1", 0) > 200
    assert p.purge + p.kept + store.count_received(db, MAR, NOW) == total
    assert _contents(db) == before
    # a rebuild keeps what was derived from purged events and derives the rest: the same rows
    rebuild_mod.rebuild(db, NOW, jobs=2)
    assert _contents(db) == before
    derive.rebuild(db, NOW)
    assert _contents(db) == before
    # a purged event resent months later is a duplicate: not stored, not derived again
    desk = [e for e in Panel(device="desk-1", booted_at=JAN).events]
    resend = dict(db.query("SELECT * FROM raw_event_keys WHERE device = 'desk-1' AND seq = 3")[0])
    stored, dups, conflicts = store_events(db, [_event("desk-1", 3, resend["received_ms"] + 90 * DAY)])
    assert (stored, len(dups), conflicts) == ([], 1, []) and desk == []
    assert {d: store.contiguous_acked_seq(db, "msk", d, previous=0) for d in ("desk-1", "exit")} == acks
    derive.update(db, [("msk", "desk-1")], NOW)
    assert _contents(db) == before
    assert late  # (exit's late seq 5 held its January events back, above)


def _event(device, seq, received_ms):
    payload = {"v": 1, "seq": seq, "boot": 1, "up": 0, "t": None, "ev": "yes"}
    return {
        "site": "msk",
        "device": device,
        "seq": seq,
        "boot": 1,
        "up_ms": 0,
        "t_ms": None,
        "ev": "yes",
        "hold_ms": None,
        "received_ms": received_ms,
        "payload": json.dumps(payload),
    }


def test_a_settings_change_after_a_purge_rederives_only_from_the_checkpoint(any_db, tmp_path):
    db = any_db
    _three_months(db)
    _archive(db, tmp_path, "2025-01", "2025-02")
    archive.purge(db, keep_months=2, now_ms=NOW)
    kept_polls = db.query("SELECT * FROM polls WHERE opened_ms < ? ORDER BY site, device, open_seq", (FEB,))
    # a roster change from 1 January: the March polls take the new employee, the purged ones
    # stay as derived (their events are in the archive only)
    apply_site(db, SITE_TOML.replace('employee = "ivanova"', 'employee = "petrov"'), now_ms=NOW)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], NOW)
    assert db.query("SELECT * FROM polls WHERE opened_ms < ? ORDER BY site, device, open_seq", (FEB,)) == kept_polls
    march = db.query("SELECT DISTINCT employee FROM polls WHERE device = 'desk-1' AND opened_ms >= ?", (MAR,))
    assert [r["employee"] for r in march] == ["petrov"]


def test_restore_puts_every_archived_event_back_and_a_rebuild_derives_from_the_start(any_db, tmp_path):
    db = any_db
    _three_months(db)
    before = _contents(db)
    events = db.query("SELECT * FROM raw_events ORDER BY site, device, seq")
    _archive(db, tmp_path, "2025-01", "2025-02")
    archive.purge(db, keep_months=2, now_ms=NOW)
    for month in ("2025-01", "2025-02"):
        got = archive.restore(db, str(tmp_path / archive.file_name(month)))
        assert got["month"] == month and got["restored"] > 0
    assert archive.restore(db, str(tmp_path / archive.file_name("2025-01")))["restored"] == 0  # never twice
    assert db.query("SELECT * FROM raw_events ORDER BY site, device, seq") == events
    assert db.query("SELECT * FROM derive_checkpoints") == []
    assert all(a["purged"] == 0 and a["purged_ms"] is None for a in store.archives(db))
    derive.rebuild(db, NOW)
    assert _contents(db) == before


def test_purge_stops_at_a_month_not_archived_or_whose_archive_changed(any_db, tmp_path):
    db = any_db
    _three_months(db)
    feb = store.count_received(db, FEB, MAR)
    _archive(db, tmp_path, "2025-02")  # January is not archived
    p = archive.purge(db, keep_months=2, now_ms=NOW)
    assert p.cutoff_ms == JAN and p.purge == 0 and "2025-01" in p.stopped
    _archive(db, tmp_path, "2025-01")
    path = tmp_path / archive.file_name("2025-02")
    path.write_bytes(path.read_bytes()[:-20])  # damaged
    p = archive.purge(db, keep_months=2, now_ms=NOW)
    assert p.cutoff_ms == FEB and p.months == ["2025-01"] and "2025-02" in p.stopped
    assert store.count_received(db, FEB, MAR) == feb  # February untouched
    with pytest.raises(archive.ArchiveError, match="not over yet"):
        archive.archive_month(db, "2025-05", str(tmp_path), NOW)
    archive.archive_month(db, "2025-03", str(tmp_path), NOW)
    with pytest.raises(archive.ArchiveError, match="never overwritten"):
        archive.archive_month(db, "2025-03", str(tmp_path), NOW)


def test_events_not_derived_yet_are_not_purged(any_db, tmp_path):
    db = any_db
    _three_months(db)
    # desk-1 gets new settings: until the worker re-derives it, none of its events may go
    apply_site(db, SITE_TOML.replace("window_s = 30", "window_s = 20"), now_ms=NOW)
    _archive(db, tmp_path, "2025-01", "2025-02")
    p = archive.plan(db, keep_months=2, now_ms=NOW)
    assert p.through == {} and p.purge == 0 and p.kept == store.count_received(db, JAN, MAR)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], NOW)
    assert archive.plan(db, keep_months=2, now_ms=NOW).purge > 0


def test_the_archive_file_is_gzip_json_lines_an_operator_can_read(any_db, tmp_path):
    db = any_db
    _three_months(db)
    row = archive.archive_month(db, "2025-01", str(tmp_path), NOW)
    assert row["file"] == str(tmp_path / "raw-events-2025-01.jsonl.gz") and row["events"] > 100
    assert oct(os.stat(row["file"]).st_mode & 0o777) == "0o600"
    with gzip.open(row["file"], "rt") as f:
        header = json.loads(f.readline())
        first = dict(zip(header["columns"], json.loads(f.readline()), strict=True))
    assert header["month"] == "2025-01" and first["site"] == "msk" and JAN <= first["received_ms"] < FEB
    assert archive.sha256_of(row["file"]) == row["sha256"]


def test_postgresql_drops_a_purged_month_partition_whole(pg_store_url, tmp_path):
    db = schema.open_database(pg_store_url)
    try:
        _three_months(db, late_ms=FEB + 3 * DAY)  # 2025: in the default partitions (now's months exist)
        before = _contents(db)
        events, polls = store.count_received(db, 0, NOW), derive.totals(db)[0]
        with db.transaction():  # the worker's hourly job, as it ran in February 2025
            made = store.ensure_month_partitions(db, FEB) + derive.ensure_month_partitions(db, FEB)
        assert made == 8  # January through April, twice; the rows in the default ones moved
        assert store.count_received(db, 0, NOW) == events and derive.totals(db)[0] == polls
        assert db.scalar("SELECT COUNT(*) FROM raw_events_default") == 0
        assert db.scalar("SELECT COUNT(*) FROM polls_default") == 0
        names = {p["name"] for p in partitions.listing(db, "raw_events")}
        assert {"raw_events_202501", "raw_events_202502", "raw_events_202503", "raw_events_default"} <= names
        _archive(db, tmp_path, "2025-01", "2025-02")
        archive.purge(db, keep_months=2, now_ms=NOW)
        names = {p["name"] for p in partitions.listing(db, "raw_events")}
        assert "raw_events_202501" not in names and "raw_events_202502" not in names  # dropped whole
        assert "raw_events_202503" in names and store.count_received(db, 0, MAR) == 0
        rebuild_mod.rebuild(db, NOW, jobs=2)
        assert _contents(db) == before
        archive.restore(db, str(tmp_path / archive.file_name("2025-01")))  # into its month again
        assert "raw_events_202501" in {p["name"] for p in partitions.listing(db, "raw_events")}
        assert db.scalar("SELECT COUNT(*) FROM raw_events_default") == 0
        assert db.scalar("SELECT COUNT(*) FROM raw_events_202501") == store.count_received(db, JAN, FEB) > 0
        assert {p["name"] for p in partitions.listing(db, "polls")} >= {"polls_202501", "polls_202503"}
    finally:
        db.close()


def test_db_commands_archive_purge_and_restore(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    db = schema.open_database(url)
    _three_months(db)
    db.close()
    folder = tmp_path / "archives"
    folder.mkdir()

    def rating(*args):
        return subprocess.run(
            [sys.executable, "-m", "rating", "db", *args, "--db", url],
            capture_output=True,
            text=True,
            env={"RATING_LANG": "en", "PATH": "/usr/bin:/bin"},
        )

    out = rating("archive", "--through", "2025-02", "--dir", str(folder))
    assert out.returncode == 0, out.stderr
    assert "archived 2025-01" in out.stdout and "archived 2025-02" in out.stdout
    out = rating("purge", "--keep-months", "1", "--dry-run")
    assert out.returncode == 0 and "would delete" in out.stdout and "2025-03 is not archived" in out.stdout
    out = rating("purge", "--keep-months", "0")
    assert out.returncode == 2 and "--keep-months" in out.stderr and "Traceback" not in out.stderr
    out = rating("archive", "--month", "2025-13", "--dir", str(folder))
    assert out.returncode == 2 and "YYYY-MM" in out.stderr
    out = rating("restore-events", str(folder / "raw-events-2025-01.jsonl.gz"))
    assert out.returncode == 0 and "0 events of 2025-01 put back" in out.stdout
    out = rating("partitions")
    assert out.returncode == 0 and "archive 2025-01" in out.stdout


def test_the_gateway_worker_archives_and_purges_when_the_settings_say_so(tmp_path):
    from gateway.worker import Worker

    url = "sqlite:///%s" % (tmp_path / "rating.db")
    db = schema.open_database(url)
    try:
        _three_months(db)
        before = _contents(db)
        folder = tmp_path / "archive"
        folder.mkdir()
        Worker(url, "rating/v1", tick_s=3600).run_round(db, NOW)  # not configured: nothing
        assert os.listdir(folder) == [] and store.archives(db) == []
        Worker(url, "rating/v1", tick_s=3600, raw_archive_dir=str(folder), raw_keep_months=2).run_round(db, NOW)
        # January to March are over and archived; January and February purged (but exit's
        # events above its seq that came late, in March)
        assert sorted(os.listdir(folder)) == ["raw-events-2025-0%d.jsonl.gz" % m for m in (1, 2, 3)]
        assert [a["month"] for a in store.archives(db)] == ["2025-01", "2025-02", "2025-03"]
        left = store.count_received(db, JAN, MAR)
        assert left > 0 and store.first_seq_from(db, "msk", "exit", 0) == 5
        assert store.first_seq_from(db, "msk", "desk-1", 0) > 200
        assert _contents(db) == before
    finally:
        db.close()
