"""`rating rebuild --jobs N` (gateway/rebuild.py): per panel in worker processes, chunk by chunk,
with the same result as one in-process derivation of every panel in one go."""

import random
import subprocess
import sys

import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, store_events

from gateway import derive, review, schema, store
from gateway import rebuild as rebuild_mod

ANSWERS = ("yes", "no", "unsure", None, None)
END = T0 + 40 * 24 * 60 * MIN

# every table derivation writes, with an order that makes the rows comparable
DERIVED = {
    "polls": "site, device, open_seq",
    "force_majeure": "site, device, seq",
    "unsolicited": "site, device, seq",
    "anomalies": "site, device, seq, n",
    "derive_state": "site, device",
    "poll_rollup": "site, device, employee, question, kind, tz, day",
    "fm_rollup": "site, device, employee, question, tz, day",
}


def _history(db, seed=7):
    """Nine panels (three configured, six not) over five weeks: polls, late answers, long presses,
    events without a clock, a clock offset learnt for one boot, and two expert verdicts."""
    rng = random.Random(seed)
    apply_site(db, SITE_TOML)
    events = []
    for i, device in enumerate(("desk-1", "exit", "door", "x1", "x2", "x3", "x4", "x5", "x6")):
        p = Panel(device=device)
        t = T0 + i * MIN
        for _ in range(rng.randint(40, 160)):
            t += rng.choice((20 * 1000, 31 * 1000, 5 * MIN, 3 * 60 * MIN, 20 * 60 * MIN))
            roll = rng.random()
            if roll < 0.05:
                p.press(t, "seller_long", hold=3000)
            elif roll < 0.1:
                p.press(t, rng.choice(("yes", "no")))  # unsolicited
            else:
                p.press(t, "seller_short", clock=rng.random() > 0.1)
                answer = rng.choice(ANSWERS)
                if answer:
                    p.press(t + rng.choice((2000, 29000, 40000)), answer)
        events += p.events
    store_events(db, events)
    store.record_boot_clock(db, "msk", "x2", 1, T0, 3600000, "state", T0)
    derive.rebuild(db, END)
    polls = db.query("SELECT site, device, open_seq FROM polls WHERE device = 'desk-1' ORDER BY open_seq LIMIT 2")
    review.record(db, "poll", "msk/desk-1/%d" % polls[0]["open_seq"], "invalid", "test", "expert", END)
    fm = db.query("SELECT site, device, seq FROM force_majeure ORDER BY site, device, seq LIMIT 1")
    if fm:
        f = fm[0]
        review.record(db, "fm", "%s/%s/%d" % (f["site"], f["device"], f["seq"]), "confirm", "test", "expert", END)


def _contents(db):
    return {table: db.query("SELECT * FROM %s ORDER BY %s" % (table, order)) for table, order in DERIVED.items()}


def _one_go(db):
    """The reference: every panel derived in this process from its first event in one transaction."""
    derive.clear_derived(db)
    for site, device in store.event_panels(db):
        derive.rebuild_panel(db, site, device, END, chunk=10**9)
    return _contents(db)


@pytest.mark.parametrize("jobs", [1, 3])
def test_rebuild_in_worker_processes_equals_one_derivation_of_every_panel(any_db, jobs, monkeypatch):
    _history(any_db)
    expected = _one_go(any_db)
    assert len(expected["polls"]) > 300 and expected["force_majeure"] and expected["poll_rollup"]
    monkeypatch.setattr(rebuild_mod, "BATCH", 4)
    # small pages and transactions: a panel's events come over several pages, a page holds
    # several panels, and a transaction several panels
    result = rebuild_mod.rebuild(any_db, END, jobs=jobs, page=37, per_transaction=100)
    assert result.panels == 9 and result.jobs == jobs
    assert _contents(any_db) == expected
    workers = [k for k in result.peak_kib if k.startswith("worker")]
    # 9 panels = 3 batches of 4: one to three workers (the pool starts them as work comes)
    assert (not workers) if jobs == 1 else 1 <= len(workers) <= 3
    assert all(v > 0 for v in result.peak_kib.values())


@pytest.mark.parametrize(("page", "per_transaction"), [(1, 1), (5000, 10**9), (200, 0)])
def test_panels_rebuilt_together_equal_one_derivation_of_every_panel(any_db, page, per_transaction):
    """rebuild_panels: every page size (one event a page; every panel in one page) and
    transaction size (one transaction for all; one a panel) gives the one-go rows, over rows
    a gateway derived before (they are replaced, not added to)."""
    _history(any_db)
    expected = _one_go(any_db)
    panels = store.event_panels(any_db)
    assert derive.rebuild_panels(any_db, panels[:4], END, page, per_transaction) == 4
    assert derive.rebuild_panels(any_db, panels[4:], END, page, per_transaction) == 5
    assert _contents(any_db) == expected
    derive.clear_derived(any_db)
    derive.rebuild_panels(any_db, panels, END, page, per_transaction)
    assert _contents(any_db) == expected


def test_rebuild_command_takes_jobs_and_reports_the_peak_memory(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    db = schema.open_database(url)
    _history(db)
    expected = _contents(db)
    db.close()
    out = subprocess.run(
        [sys.executable, "-m", "rating", "rebuild", "--db", url, "--jobs", "2"],
        capture_output=True,
        text=True,
        env={"RATING_LANG": "en", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    # one or two workers: the pool starts a second one only when the first is busy
    assert "rebuilt 9 panels" in out.stdout and " worker process" in out.stdout and "MB" in out.stdout
    db = schema.open_database(url)
    try:
        got = _contents(db)
        for table in (got, expected):  # the command derives at the real now, not at END
            for row in table["derive_state"]:
                row.pop("updated_ms"), row.pop("due_ms")
        assert got == expected
    finally:
        db.close()


def test_rebuild_refuses_a_job_count_below_one(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    schema.open_database(url).close()
    out = subprocess.run(
        [sys.executable, "-m", "rating", "rebuild", "--db", url, "--jobs", "0"],
        capture_output=True,
        text=True,
        env={"RATING_LANG": "en", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr and "--jobs" in out.stderr


@pytest.mark.parametrize(("per_transaction", "committed"), [(1, 4), (10**9, 0)])
def test_a_rebuild_that_fails_keeps_whole_panels_only(any_db, monkeypatch, per_transaction, committed):
    """A failure while panels are derived together rolls back the panels of its transaction,
    written or not: the panels committed before are whole, the others have no rows at all."""
    from gateway import rollup

    _history(any_db)
    expected = _one_go(any_db)
    panels = store.event_panels(any_db)
    derive.clear_derived(any_db)
    real, seen = rollup.panel_rows, []

    def failing(history, panel, polls):
        seen.append((panel.site, panel.device))
        if len(seen) == 5:
            raise RuntimeError("disk full")
        return real(history, panel, polls)

    monkeypatch.setattr(rollup, "panel_rows", failing)
    monkeypatch.setattr(derive, "REBUILD_FLUSH_ROWS", 1)  # each panel's rows written at its end
    # a transaction a panel (the first four are committed), or one for all (none is)
    with pytest.raises(RuntimeError):
        derive.rebuild_panels(any_db, panels, END, page=50, per_transaction=per_transaction)
    done = {(r["site"], r["device"]) for r in any_db.query("SELECT site, device FROM derive_state")}
    assert done == set(seen[:committed])
    got = _contents(any_db)
    for table, rows in expected.items():
        assert got[table] == [r for r in rows if (r["site"], r["device"]) in done], table


def test_a_rebuild_waits_for_a_live_worker_deriving_the_same_panel(pg_url):
    """A running gateway's worker derives a panel under derive.DERIVE_LOCKS (several gateways on
    one PostgreSQL): `rating rebuild` takes the same lock per panel, so the two never write the
    same panel's rows at once (either would fail on a unique key, or leave the other's rows)."""
    import threading
    import time

    worker = schema.open_database(pg_url)
    rebuilder = schema.open_database(pg_url)
    try:
        _history(worker)
        before = _contents(worker)
        done = threading.Event()

        def rebuild():
            derive.rebuild_panels(rebuilder, [("msk", "desk-1"), ("msk", "exit")], END)
            done.set()

        with worker.transaction():
            worker.lock_names(derive.DERIVE_LOCKS, ["msk/exit"])  # the worker is deriving msk/exit
            thread = threading.Thread(target=rebuild)
            thread.start()
            waiting = 0
            for _ in range(200):  # until the rebuild's backend waits for the worker's lock
                waiting = worker.scalar("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                if waiting or done.is_set():
                    break
                time.sleep(0.05)
            assert waiting and not done.is_set()  # waits for the worker's transaction
        thread.join(30)
        assert done.is_set()
        assert _contents(worker) == before
    finally:
        worker.close()
        rebuilder.close()


def _presses(panels, polls):
    """Each panel's seller press and Yes `polls` times, a minute apart (Panel objects kept)."""
    for p in panels:
        for i in range(len(p.events) // 2, len(p.events) // 2 + polls):
            p.press(T0 + i * MIN, "seller_short")
            p.press(T0 + i * MIN + 2000, "yes")


def test_a_gateway_deriving_a_panel_during_the_rebuild_loses_nothing(pg_store_url):
    """A live gateway stores and derives new presses of a panel while the rebuild is busy with
    another panel of the same batch: the rebuild reads a panel's events only once it holds that
    panel's lock, so its rows cover every stored event (before, a page of several panels' events
    was read ahead of the lock and the gateway's newer rows were overwritten with older ones)."""
    db = schema.open_database(pg_store_url)
    gateway = schema.open_database(pg_store_url)
    try:
        apply_site(db, SITE_TOML)
        desk, door, exit_ = Panel("msk", "desk-1"), Panel("msk", "door"), Panel("msk", "exit")
        _presses((desk, door, exit_), 5)
        store_events(db, desk.events + door.events + exit_.events)
        derive.clear_derived(db)
        read, calls = store.events_to_derive, []

        def read_then_the_gateway_works(*args, **kw):
            rows = read(*args, **kw)
            if not calls:  # while the rebuild reads msk/desk-1: the gateway stores and derives msk/exit
                n = len(exit_.events)
                _presses((exit_,), 3)
                store_events(gateway, exit_.events[n:])
                with gateway.transaction():
                    gateway.lock_names(derive.DERIVE_LOCKS, ["msk/exit"])
                    derive.update(gateway, [("msk", "exit")], END)
            calls.append(args[1:3])
            return rows

        store.events_to_derive = read_then_the_gateway_works
        try:
            derive.rebuild_panels(db, [("msk", "desk-1"), ("msk", "door"), ("msk", "exit")], END, 5000, 1)
        finally:
            store.events_to_derive = read
        assert db.scalar("SELECT fed_seq FROM derive_state WHERE device = 'exit'") == len(exit_.events)
        assert db.scalar("SELECT COUNT(*) FROM polls WHERE device = 'exit'") == 8
        after = _contents(db)
        derive.rebuild(db, END)
        assert _contents(db) == after
    finally:
        db.close()
        gateway.close()


def test_panels_rebuilt_together_under_a_locale_collation(pg_url):
    """Office ids the site file allows ([a-z0-9-]) sort differently in Python and in a locale
    collation ("a-c" < "ab" in Python, "ab" < "a-c" in en-US): rebuild_panels must derive every
    panel whatever the database's collation (a span query in Python's order once skipped some)."""
    import psycopg

    base = pg_url.rsplit("/", 1)[0]
    name = "rating_test_icu_%s" % pg_url.rsplit("_", 1)[-1]
    with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        try:
            admin.execute(
                "CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US-u-ka-shifted'"
                " LOCALE 'C.UTF-8'" % name
            )
        except psycopg.Error as exc:
            pytest.skip("no ICU collation on this server: %s" % str(exc).strip().splitlines()[0])
    db = schema.open_database("%s/%s" % (base, name))
    try:
        apply_site(db, SITE_TOML)
        panels = [Panel(site, "desk-1") for site in ("a", "a-c", "ab", "b")]
        _presses(panels, 5)
        store_events(db, [e for p in panels for e in p.events])
        derive.clear_derived(db)
        derive.rebuild_panels(db, store.event_panels(db), END)
        counts = db.query("SELECT site, COUNT(*) AS n FROM polls GROUP BY site")
        assert sorted((r["site"], r["n"]) for r in counts) == [("a", 5), ("a-c", 5), ("ab", 5), ("b", 5)]
    finally:
        db.close()
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
