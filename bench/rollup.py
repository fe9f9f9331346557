"""`rating report` from the rollups on a chain-sized database, next to a plain SQL reference.

    .venv/bin/python bench/rollup.py --polls 1000000                    # SQLite, build/bench/rollup-1000000.db
    .venv/bin/python bench/rollup.py --polls 1000000 --pg               # a fresh PostgreSQL database
    .venv/bin/python bench/rollup.py --polls 100000 --counts            # with daily site-wide counts

The chain: 1,000 offices (Europe/Moscow) with 3 panels each (two staff-question desks, one
office-question exit), one employee per desk; N polls spread evenly over the panels and 30
days from 2025-01-06, 09:00-21:00 local (a quarter No or silent), two raw events per poll, one
force-majeure report per panel and week. Polls, reports and raw events are generated in SQL
(a recursive CTE / generate_series), not derived (a derivation of every event is `rating
rebuild`, measured separately); the rollup rows are made from them by gateway.rollup.refresh,
panel by panel, as derivation makes them (timed: "rollup build").

Measured, each in a fresh process (peak memory = that process's ru_maxrss):
- `report.build_report(by="employee", period="month", stream=True)` and `(by="site",
  period="week")` written as CSV to /dev/null row by row (what `rating report --format csv`
  does); --first-days N: only over the first N days (--to that local midnight);
- the reference: one plain SQL GROUP BY over the polls giving the same answer counts per
  employee and month / office and week (no intervals, flags, force majeure or verdicts);
- with --whole also the same report through gateway.report_sums (every row's sums held until
  the last row: the code before gateway.report_stream), the before of a before/after.
"""

import argparse
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "bench")]

T0 = 1736143200000  # 2025-01-06T06:00Z = 09:00 Moscow, a Monday
DAY = 86400000
OFFICES = 1000
PANELS = 3 * OFFICES
MOSCOW = 3 * 3600 * 1000


def site_toml():
    parts = ['[deployment]\nlang = "en"\nfrom = 2025-01-01T00:00:00Z\n']
    parts.append("[deployment.reference]\ndi_staff = 0.10\ndi_office = 0.12\n")
    for i in range(OFFICES):
        parts.append('[[sites]]\nid = "o%04d"\nname = "Office %04d"\ntimezone = "Europe/Moscow"\n' % (i, i))
    parts.append('[[questions]]\nid = "staff"\nkind = "staff"\ntext_ru = "Как {employee}?"\ntext_en = "{employee}?"\n')
    parts.append('[[questions]]\nid = "office"\nkind = "office"\ntext_ru = "Офис?"\ntext_en = "Office?"\n')
    for i in range(OFFICES):
        for d in (0, 1):
            parts.append('[[employees]]\nid = "e%04d-%d"\nname = "Employee %04d-%d"\n' % (i, d, i, d))
            parts.append('[[panels]]\nsite = "o%04d"\ndevice = "p%d"\nquestion = "staff"\n' % (i, d))
            parts.append(
                '[[roster]]\npanel = "o%04d/p%d"\nemployee = "e%04d-%d"\nfrom = 2025-01-01T00:00:00Z\n' % (i, d, i, d)
            )
        parts.append('[[panels]]\nsite = "o%04d"\ndevice = "p2"\nquestion = "office"\n' % i)
    return "\n".join(parts)


def _numbers(db, n):
    """SQL giving column i = 0..n-1."""
    if db.dialect == "postgresql":
        return "SELECT g AS i FROM generate_series(CAST(0 AS BIGINT), %d) g" % (n - 1)
    return "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d) SELECT i FROM c" % (n - 1)


def _text(db, expr, width):
    if db.dialect == "postgresql":
        return "lpad((%s)::text, %d, '0')" % (expr, width)
    return "printf('%%0%dd', %s)" % (width, expr)


def build(url, polls, with_counts):
    from gateway import derive, rollup, schema, site

    started = time.monotonic()
    db = schema.open_database(url)
    site.apply(db, site.parse(site_toml()), T0 - 7 * DAY, "bench.toml")
    per_panel = -(-polls // PANELS)
    # panel j = i % 3000 (office j // 3, device j % 3); its n-th poll (n = i // 3000) on day n % 30,
    # in hour slot (n // 30) % 12 from 09:00 local, at a minute set by the panel
    j, n = "(i %% %d)" % PANELS, "(i / %d)" % PANELS
    office = "'o' || %s" % _text(db, "%s / 3" % j, 4)
    device = "'p' || (%s %% 3)" % j
    opened = "(%d + (%s %% 30) * %d + ((%s / 30) %% 12) * 3600000 + ((%s * 7919) %% 3600) * 1000)" % (T0, n, DAY, n, j)
    staff = "(%s %% 3 < 2)" % j
    answer = "CASE (i * 7) % 16 WHEN 0 THEN NULL WHEN 1 THEN NULL WHEN 2 THEN 'no' WHEN 3 THEN 'no' WHEN 4 THEN 'unsure' WHEN 5 THEN 'unsure' ELSE 'yes' END"
    employee = "CASE WHEN %s THEN 'e' || %s || '-' || (%s %% 3) ELSE NULL END" % (staff, _text(db, "%s / 3" % j, 4), j)
    kind = "CASE WHEN %s THEN 'staff' ELSE 'office' END" % staff
    with db.transaction():
        db.execute(
            "INSERT INTO polls (site, device, open_seq, opened_ms, closes_ms, answer, answer_seq, answered_ms,"
            " extra_presses, seller_presses, time_source, employee, question, kind, video_url, provisional, contact)"
            " SELECT %s, %s, 2 * %s + 1, %s, %s + 30000, %s, 2 * %s + 2, %s + 5000, 0, 1, 'device', %s, %s, %s,"
            " NULL, 0, CASE WHEN %s THEN 1 ELSE 0 END FROM (%s) nums"
            % (office, device, n, opened, opened, answer, n, opened, employee, kind, kind, staff, _numbers(db, polls))
        )
        # two raw events per poll (what `rating status` and the report's lost-event check read)
        for k, ev in ((1, "seller_short"), (2, "yes")):
            db.execute(
                "INSERT INTO raw_events (site, device, seq, boot, up_ms, t_ms, ev, hold_ms, received_ms, payload)"
                " SELECT %s, %s, 2 * %s + %d, 1, %s - %d, %s, '%s', NULL, %s + 40, '{}' FROM (%s) nums"
                % (office, device, n, k, opened, T0 - DAY, opened, ev, opened, _numbers(db, polls))
            )
        # a force-majeure report per staff panel and week (Thursdays 14:00 local)
        for week in range(5):
            at = T0 + (7 * week + 3) * DAY + 5 * 3600000
            db.execute(
                "INSERT INTO force_majeure (site, device, seq, pressed_ms, start_ms, end_ms, presses, time_source,"
                " employee, video_url, provisional) SELECT %s, %s, %d, %d, %d, %d, 1, 'device', %s, NULL, 0"
                " FROM (%s) nums WHERE %s"
                % (office, device, 10**6 + week, at, at, at + 15 * 60000, employee, _numbers(db, PANELS), staff)
            )
        if with_counts:
            for day in range(30):
                start = T0 - 9 * 3600000 + day * DAY  # local midnight
                db.execute(
                    "INSERT INTO counts (site, device, from_ms, to_ms, transactions, visitors, source, received_ms)"
                    " SELECT 'o' || %s, '', %d, %d, 20 + i %% 7, 30 + i %% 11, 'bench', %d FROM (%s) nums"
                    % (_text(db, "i", 4), start, start + DAY, start, _numbers(db, OFFICES))
                )
        # what derivation leaves per panel: the events it fed (every one, in seq order)
        db.execute(
            "INSERT INTO derive_state (site, device, fed_seq, fed_count, snapshot, watch, updated_ms, due_ms)"
            " SELECT site, device, MAX(seq), COUNT(*), '{}', '{}', 0, NULL FROM raw_events GROUP BY site, device"
        )
    generated = time.monotonic() - started
    history = site.load(db)
    t = time.monotonic()
    # the panels with polls (not store.event_panels: its SQLite index of panels, raw_event_keys,
    # is kept by store.insert_events, which the SQL generation above does not go through)
    for s, d in [(r["site"], r["device"]) for r in db.query("SELECT DISTINCT site, device FROM polls")]:
        with db.transaction():
            rollup.refresh(db, s, d, history)
    rolled = time.monotonic() - t
    db.execute("ANALYZE")
    print(
        "built %d polls (%d per panel), %d raw events, counts: %s: generated in SQL %.1f s, rollup %.1f s"
        % (derive.totals(db)[0], per_panel, 2 * polls, with_counts, generated, rolled),
        flush=True,
    )
    db.close()
    return generated, rolled


def _renice_backend(db) -> None:
    """Lower the priority of this connection's PostgreSQL backend (a generator must not crowd
    out the others on a shared machine); silently nothing where not allowed."""
    pid = db.scalar("SELECT pg_backend_pid()")
    subprocess.run(["renice", "-n", "15", "-p", str(pid)], capture_output=True, check=False)


def _day_of(d):
    """The Moscow day labels (day, ISO week, month) and local-midnight instant of generated day d."""
    from gateway import rollup

    at = T0 + d * DAY
    return rollup._labels(at, _MOSCOW_TZ), at


_MOSCOW_TZ = __import__("zoneinfo").ZoneInfo("Europe/Moscow")


def gen_day(db, d, k):
    """Generated day d of build_big: the day's polls of every panel (k each) and their rollup
    rows in one statement, a force-majeure report per staff panel on Thursdays; one transaction."""
    j = "g.j"
    office = "'o' || lpad((%s / 3)::text, 4, '0')" % j
    staff = "(%s %% 3 < 2)" % j
    employee = "CASE WHEN %s THEN 'e' || lpad((%s / 3)::text, 4, '0') || '-' || (%s %% 3) ELSE NULL END" % (
        staff,
        j,
        j,
    )
    kind = "CASE WHEN %s THEN 'staff' ELSE 'office' END" % staff
    (day, week, month), at = _day_of(d)
    n = "(%d + g.m)" % (d * k)  # the panel's poll number
    i = "(%s * %d + %s)" % (n, PANELS, j)
    gen = (
        "SELECT %s AS site, 'p' || (%s %% 3) AS device, 2 * %s + 1 AS open_seq,"
        " %d + (g.m %% 12) * 3600000 + (((g.m / 12) * 443 + %s * 7919) %% 3600) * 1000 AS opened,"
        " CASE (%s * 7) %% 16 WHEN 0 THEN NULL WHEN 1 THEN NULL WHEN 2 THEN 'no' WHEN 3 THEN 'no'"
        " WHEN 4 THEN 'unsure' WHEN 5 THEN 'unsure' ELSE 'yes' END AS answer,"
        " %s AS employee, %s AS kind, CASE WHEN %s THEN 1 ELSE 0 END AS contact"
        " FROM generate_series(0, %d) AS j CROSS JOIN generate_series(0, %d) AS m,"
        " LATERAL (SELECT j, m) g" % (office, j, n, at, j, i, employee, kind, staff, PANELS - 1, k - 1)
    )
    sql = (
        "WITH g AS MATERIALIZED (%s), ins AS (INSERT INTO polls (site, device, open_seq, opened_ms, closes_ms,"
        " answer, answer_seq, answered_ms, extra_presses, seller_presses, time_source, employee, question,"
        " kind, video_url, provisional, contact) SELECT site, device, open_seq, opened, opened + 30000, answer,"
        " open_seq + 1, opened + 5000, 0, 1, 'device', employee, kind, kind, NULL, 0, contact FROM g)"
        " INSERT INTO poll_rollup (site, device, employee, question, kind, tz, day, week, month, min_ms,"
        " max_ms, polls, invalid, yes, no, unsure, silent, fm_no, fm_silent, contact, t_device, t_repaired,"
        " t_arrival) SELECT site, device, COALESCE(employee, ''), kind, kind, 'Europe/Moscow', '%s', '%s',"
        " '%s', MIN(opened), MAX(opened), COUNT(*), 0, SUM(CASE WHEN answer = 'yes' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN answer = 'no' THEN 1 ELSE 0 END), SUM(CASE WHEN answer = 'unsure' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN answer IS NULL THEN 1 ELSE 0 END), 0, 0, SUM(contact), COUNT(*), 0, 0"
        " FROM g GROUP BY site, device, employee, kind" % (gen, day, week, month)
    )
    with db.transaction():
        db.execute(sql)
        if d % 7 == 3:  # a force-majeure report per staff panel on Thursdays 14:00 local
            fm_at = at + 5 * 3600000
            db.execute(
                "INSERT INTO force_majeure (site, device, seq, pressed_ms, start_ms, end_ms, presses,"
                " time_source, employee, video_url, provisional) SELECT %s, 'p' || (g.j %% 3), %d, %d, %d,"
                " %d, 1, 'device', %s, NULL, 0 FROM generate_series(0, %d) AS j, LATERAL (SELECT j) g WHERE %s"
                % (office, 10**7 + d, fm_at, fm_at, fm_at + 15 * 60000, employee, PANELS - 1, staff)
            )
            db.execute(
                "INSERT INTO fm_rollup (site, device, employee, question, tz, day, week, month, min_ms, max_ms,"
                " reports, confirmed, rejected) SELECT site, device, employee, 'staff', 'Europe/Moscow', '%s',"
                " '%s', '%s', start_ms, start_ms, 1, 0, 0 FROM force_majeure WHERE seq = %d"
                % (day, week, month, 10**7 + d)
            )


def gen_slice(url, k, first, step, days):
    """A --gen-jobs process: the days first, first + step, ... of build_big."""
    from gateway import db as dbmod

    started = time.monotonic()
    db = dbmod.connect(url)
    _renice_backend(db)
    for n, d in enumerate(range(first, days, step)):
        gen_day(db, d, k)
        if n % 10 == 9:
            print(
                "process %d: day %d/%d, %.0f s, load %.1f"
                % (first, d + 1, days, time.monotonic() - started, os.getloadavg()[0]),
                flush=True,
            )
    db.close()


def build_big(url, polls, days, gen_jobs=1):
    """PostgreSQL at 100M scale: day by day, each day's polls of every panel made by one
    generate_series and, from the same rows in the same statement, that day's rollup rows
    (what rollup.refresh writes for these polls: no verdicts, one timezone); no raw events
    (200M rows would not fit the disk: derive_state says every event was fed and each panel
    keeps its newest raw event, as after retention, so the lost-event check reads none). A sample of panels is checked against rollup.refresh after."""
    from gateway import schema, site

    started = time.monotonic()
    db = schema.open_database(url)
    _renice_backend(db)
    site.apply(db, site.parse(site_toml()), T0 - 7 * DAY, "bench.toml")
    k = -(-polls // (PANELS * days))  # polls per panel and day
    if gen_jobs > 1:  # days dealt to processes (each day is its own statement and transaction)
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--gen-days",
                    url,
                    "--gen-k",
                    str(k),
                    "--gen-slice",
                    "%d:%d:%d" % (i, gen_jobs, days),
                ]
            )
            for i in range(gen_jobs)
        ]
        if any(p.wait() for p in procs):
            raise SystemExit("a generating process failed")
    else:
        for d in range(days):
            gen_day(db, d, k)
            if d % 10 == 9 or d == days - 1:
                print(
                    "day %d/%d: %d polls, %.0f s, load %.1f"
                    % (d + 1, days, (d + 1) * k * PANELS, time.monotonic() - started, os.getloadavg()[0]),
                    flush=True,
                )
    finish_big(db)
    generated = time.monotonic() - started
    print("generated %d polls over %d days in %.0f s" % (k * PANELS * days, days, generated), flush=True)
    db.close()
    return generated, 0.0


def finish_big(db):
    """What build_big does after the days (also for a generation stopped after some days:
    `--db URL --finish`): derive_state, statistics, the sampled check."""
    with db.transaction():
        db.execute("DELETE FROM derive_state")
        db.execute(
            "INSERT INTO derive_state (site, device, fed_seq, fed_count, snapshot, watch, updated_ms, due_ms)"
            " SELECT site, device, MAX(open_seq) + 1, MAX(open_seq) + 1, '{}', '{}', 0, NULL FROM polls"
            " GROUP BY site, device"
        )
        # each panel's newest raw event, the one derivation fed last (the older ones archived:
        # what retention leaves); without it the lost-event check would see every panel's
        # events missing and look for gaps panel by panel
        db.execute("DELETE FROM raw_events")
        db.execute(
            "INSERT INTO raw_events (site, device, seq, boot, up_ms, t_ms, ev, hold_ms, received_ms, payload)"
            " SELECT site, device, fed_seq, 1, 0, 0, 'yes', NULL, 0, '{}' FROM derive_state"
        )
    db.execute("ANALYZE")
    check_sample(db, ("o0000", "p0"), ("o0517", "p1"), ("o0999", "p2"))


def check_sample(db, *panels):
    """rollup.refresh of these panels must leave their generated rollup rows as they are."""
    from gateway import rollup, site

    history = site.load(db)
    for s, d in panels:
        rows = []
        for _ in range(2):
            rows.append(
                [
                    tuple(r.values())
                    for r in db.query(
                        "SELECT * FROM poll_rollup WHERE site = ? AND device = ? ORDER BY day, employee", (s, d)
                    )
                ]
                + [
                    tuple(r.values())
                    for r in db.query("SELECT * FROM fm_rollup WHERE site = ? AND device = ? ORDER BY day", (s, d))
                ]
            )
            if len(rows) == 1:
                with db.transaction():
                    rollup.refresh(db, s, d, history)
        if rows[0] != rows[1]:
            raise SystemExit("generated rollup of %s/%s differs from rollup.refresh" % (s, d))
    print("generated rollup rows equal rollup.refresh on %d sampled panels" % len(panels), flush=True)


REFERENCE = {
    ("employee", "month"): (
        "SELECT employee, {month} AS m, kind, COUNT(*) AS n, SUM(CASE WHEN answer = 'yes' THEN 1 ELSE 0 END) AS y,"
        " SUM(CASE WHEN answer = 'no' THEN 1 ELSE 0 END) AS no, SUM(CASE WHEN answer IS NULL THEN 1 ELSE 0 END) AS s"
        " FROM polls WHERE kind = 'staff' GROUP BY employee, {month}, kind"
    ),
    ("site", "week"): (
        "SELECT site, {week} AS w, kind, COUNT(*) AS n, SUM(CASE WHEN answer = 'yes' THEN 1 ELSE 0 END) AS y,"
        " SUM(CASE WHEN answer = 'no' THEN 1 ELSE 0 END) AS no, SUM(CASE WHEN answer IS NULL THEN 1 ELSE 0 END) AS s"
        " FROM polls GROUP BY site, {week}, kind"
    ),
}


def measure(url, by, period, what, days=None):
    """In this (fresh) process: the report or the reference; prints seconds, rows, peak MB."""
    from gateway import db as dbmod
    from gateway import report

    db = dbmod.connect(url)
    t = time.monotonic()
    if what in ("report", "whole"):
        # what `rating report --format csv` does: the rows streamed to the output as they are made
        from gateway import report_export, report_stream

        if what == "whole":  # as before report_stream: every row's sums held until the last row
            report_stream.streams = lambda opts: False

        end = None if not days else T0 - 9 * 3600000 + days * DAY  # local midnight (Moscow)
        data = report.build_report(db, by=by, period=period, end=end, now_ms=T0 + 400 * DAY, stream=True)
        counted = [0]

        def rows_of(it):
            for r in it:
                counted[0] += 1
                yield r

        data["rows"] = rows_of(data["rows"])
        with open(os.devnull, "w", encoding="utf-8") as out:
            report_export.write_csv(data, out)
        rows = counted[0]
    else:
        if db.dialect == "postgresql":
            local = "to_timestamp(opened_ms / 1000.0) AT TIME ZONE 'Europe/Moscow'"
            month, week = "to_char(%s, 'YYYY-MM')" % local, "to_char(%s, 'IYYY-IW')" % local
        else:
            local = "(opened_ms + %d) / 1000, 'unixepoch'" % MOSCOW
            # the Monday of the local date's week
            month = "strftime('%%Y-%%m', %s)" % local
            week = "date(%s, '-' || ((CAST(strftime('%%w', %s) AS INTEGER) + 6) %% 7) || ' days')" % (local, local)
        sql = REFERENCE[(by, period)].format(month=month, week=week)
        if days:
            sql = sql.replace(
                " GROUP BY",
                " %s opened_ms < %d GROUP BY" % ("AND" if "WHERE" in sql else "WHERE", T0 - 9 * 3600000 + days * DAY),
            )
        rows = len(db.query(sql))
    took = time.monotonic() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("%s %.3f %d %.0f" % (what, took, rows, peak))


def run_one(url, by, period, what, days=None):
    extra = ["--first-days", str(days)] if days else []
    out = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--url", url, "--by", by, "--period", period] + extra,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[1]), int(out[2]), float(out[3])


def main():
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--polls", type=int, default=100000)
    ap.add_argument("--pg", action="store_true", help="a fresh PostgreSQL database (dropped afterwards)")
    ap.add_argument("--counts", action="store_true", help="daily site-wide transactions and visitors too")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--regen", action="store_true")
    ap.add_argument("--days", type=int, help="PostgreSQL: generate day by day over this many days (100M scale)")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL database (its URL is printed)")
    ap.add_argument("--db", help="measure an existing database (a --keep run's URL) instead of generating")
    ap.add_argument(
        "--first-days", type=int, help="report (and reference) over the first N days only (--to local midnight)"
    )
    ap.add_argument(
        "--whole", action="store_true", help="also the report holding every row's sums (gateway.report_sums, as before)"
    )
    ap.add_argument("--finish", action="store_true", help="with --db: finish a stopped --days generation")
    ap.add_argument("--gen-jobs", type=int, default=1, help="with --days: generate the days in N processes")
    ap.add_argument("--gen-days", help=argparse.SUPPRESS)  # a --gen-jobs process: the database URL
    ap.add_argument("--gen-k", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--gen-slice", help=argparse.SUPPRESS)  # i:n:days, the days d = i, i+n, ... < days
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--by", default="employee", help=argparse.SUPPRESS)
    ap.add_argument("--period", default="month", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gen_days:
        gen_slice(args.gen_days, args.gen_k, *map(int, args.gen_slice.split(":")))
        return
    if args.measure:
        measure(args.url, args.by, args.period, args.measure, args.first_days)
        return
    drop = None
    if args.db and args.finish:
        from gateway import db as dbmod

        finish_big(dbmod.connect(args.db))
    if args.db:
        url = args.db
    elif args.pg:
        from support import pg_database

        url, drop, _ = pg_database()
        print("database: %s" % url, flush=True)
        if args.keep:
            drop = None
    else:
        path = os.path.join(REPO, "build", "bench", "rollup-%d%s.db" % (args.polls, "-counts" if args.counts else ""))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if args.regen and os.path.exists(path):
            os.remove(path)
        url = "sqlite:///%s" % path
        if not os.path.exists(path):
            build(url, args.polls, args.counts)
    try:
        if args.pg and not args.db and args.days:
            build_big(url, args.polls, args.days, args.gen_jobs)
        elif args.pg and not args.db:
            build(url, args.polls, args.counts)  # inside the try: a failed build drops its database too
        from gateway import schema

        schema.open_database(url).close()  # a database generated before the latest migrations gets them
        print("load average: %.2f %.2f %.2f" % os.getloadavg())
        whole = " | held sums (before)" if args.whole else ""
        print(
            "| report | rating report | plain SQL reference | ratio | rows | peak memory (report / reference)%s |"
            % whole
        )
        print("|---|---|---|---|---|---|" + ("---|" if whole else ""))
        for by, period in (("employee", "month"), ("site", "week")):
            reps = [run_one(url, by, period, "report", args.first_days) for _ in range(args.repeat)]
            refs = [run_one(url, by, period, "reference", args.first_days) for _ in range(args.repeat)]
            rep, ref = min(r[0] for r in reps), min(r[0] for r in refs)
            before = ""
            if args.whole:
                olds = [run_one(url, by, period, "whole", args.first_days) for _ in range(args.repeat)]
                before = " %.2f s, %.0f MB |" % (min(r[0] for r in olds), max(r[2] for r in olds))
            print(
                "| by %s, %s | %.2f s | %.2f s | %.1fx | %d | %.0f / %.0f MB |%s"
                % (
                    by,
                    period,
                    rep,
                    ref,
                    rep / ref,
                    reps[0][1],
                    max(r[2] for r in reps),
                    max(r[2] for r in refs),
                    before,
                ),
                flush=True,
            )
    finally:
        if drop:
            drop()


if __name__ == "__main__":
    main()
