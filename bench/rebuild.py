"""`rating rebuild --jobs N` on a generated chain, next to a plain SQL scan of the same raw events.

    nice .venv/bin/python bench/rebuild.py --pg --panels 3000 --days 30 --jobs 1,2   # PostgreSQL
    nice .venv/bin/python bench/rebuild.py --panels 300 --days 30 --jobs 1,2         # SQLite
    nice .venv/bin/python bench/rebuild.py --pg --panels 300 --days 7                # = make bench

The chain: panels/3 offices (Europe/Moscow) with 3 panels each (two staff desks with one
employee each, one office-question exit), `--polls` polls a panel a day (default 11: ~1M polls
a month for 3,000 panels, the issue's chain) from 09:00 local, 50 minutes apart, from
2025-01-06. Each poll is two raw events, a seller press and an answer 4 s later (yes, no or
unsure), except every eighth, answered 40 s later: a silent poll plus an unsolicited press.
Raw events and their keys are generated in SQL (generate_series / a recursive CTE) as ingest
stores them, into the monthly partitions on PostgreSQL (created first, as the gateway does).

Measured, each in a fresh process:
- the reference: one plain SQL scan of every raw event (`SELECT site, device, COUNT(*),
  MAX(seq), SUM(LENGTH(payload)) ... GROUP BY site, device`): reading the rows a rebuild reads;
- `gateway.rebuild.rebuild(jobs=N)` (what `rating rebuild --jobs N` runs) for each N: wall
  time, events/s, peak resident memory of the parent and of the largest worker (ru_maxrss);
  the derived polls are checked to be the same for every N (count and a checksum).
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.environ.get("RATING_BENCH_CODE") or REPO, os.path.join(REPO, "bench")]

T0 = 1736143200000  # 2025-01-06T06:00Z = 09:00 Moscow, a Monday
DAY = 86400000


def site_toml(offices):
    parts = ['[deployment]\nlang = "en"\nfrom = 2025-01-01T00:00:00Z\n']
    parts.append('[[questions]]\nid = "staff"\nkind = "staff"\ntext_ru = "Как {employee}?"\ntext_en = "{employee}?"\n')
    parts.append('[[questions]]\nid = "office"\nkind = "office"\ntext_ru = "Офис?"\ntext_en = "Office?"\n')
    for i in range(offices):
        parts.append('[[sites]]\nid = "o%04d"\nname = "Office %04d"\ntimezone = "Europe/Moscow"\n' % (i, i))
        for d in (0, 1):
            parts.append('[[employees]]\nid = "e%04d-%d"\nname = "Employee %04d-%d"\n' % (i, d, i, d))
            parts.append('[[panels]]\nsite = "o%04d"\ndevice = "p%d"\nquestion = "staff"\n' % (i, d))
            parts.append(
                '[[roster]]\npanel = "o%04d/p%d"\nemployee = "e%04d-%d"\nfrom = 2025-01-01T00:00:00Z\n' % (i, d, i, d)
            )
        parts.append('[[panels]]\nsite = "o%04d"\ndevice = "p2"\nquestion = "office"\n' % i)
    return "\n".join(parts)


def _numbers(db, n):
    if db.dialect == "postgresql":
        return "SELECT g AS i FROM generate_series(CAST(0 AS BIGINT), %d) g" % (n - 1)
    return "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d) SELECT i FROM c" % (n - 1)


def _text(db, expr, width):
    if db.dialect == "postgresql":
        return "lpad((%s)::text, %d, '0')" % (expr, width)
    return "printf('%%0%dd', %s)" % (width, expr)


def build(url, panels, days, polls):
    from gateway import derive, schema, site, store

    started = time.monotonic()
    db = schema.open_database(url)
    site.apply(db, site.parse(site_toml(panels // 3)), T0 - 7 * DAY, "bench.toml")
    t = T0 - DAY
    while t < T0 + (days + 31) * DAY:  # the months of the data, as the gateway would have made them
        with db.transaction():
            store.ensure_month_partitions(db, t)
            derive.ensure_month_partitions(db, t)
        t += 28 * DAY
    n = panels * days * polls
    # poll i: panel j = i % panels, its poll number k = i / panels: day k / polls, slot k % polls
    j, k = "(i %% %d)" % panels, "(i / %d)" % panels
    office = "'o' || %s" % _text(db, "%s / 3" % j, 4)
    device = "'p' || (%s %% 3)" % j
    at = "(%d + (%s / %d) * %d + (%s %% %d) * 3000000 + %s * 97)" % (T0, k, polls, DAY, k, polls, j)
    late = "CASE WHEN i % 8 = 0 THEN 40000 ELSE 4000 END"
    answer = "CASE (i * 7) % 5 WHEN 0 THEN 'no' WHEN 1 THEN 'unsure' ELSE 'yes' END"
    with db.transaction():
        for step, ev, dt in ((1, "'seller_short'", "0"), (2, answer, late)):
            seq = "(2 * %s + %d)" % (k, step)
            db.execute(
                "INSERT INTO raw_events (site, device, seq, boot, up_ms, t_ms, ev, hold_ms, received_ms, payload)"
                " SELECT %s, %s, %s, 1, %s + %s - %d, %s + %s, %s, NULL, %s + %s + 40, '{\"v\":1}' FROM (%s) nums"
                % (office, device, seq, at, dt, T0 - DAY, at, dt, ev, at, dt, _numbers(db, n))
            )
        db.execute(
            "INSERT INTO raw_event_keys (site, device, seq, received_ms) SELECT site, device, seq, received_ms"
            " FROM raw_events"
        )
    db.execute("ANALYZE")
    events = db.scalar("SELECT COUNT(*) FROM raw_event_keys")
    db.close()
    return events, time.monotonic() - started


REFERENCE = (
    "SELECT site, device, COUNT(*) AS n, MAX(seq) AS m, SUM(LENGTH(payload)) AS b FROM raw_events GROUP BY site, device"
)


class _ServerCpu:
    """CPU seconds of the PostgreSQL server processes serving this database meanwhile (the
    rebuild's connections; the server runs on this machine): sampled from /proc every 0.2 s
    while the rebuild runs, the last sample of each backend kept (a backend's last < 0.2 s
    may be missed). None where /proc cannot be read."""

    def __init__(self, url):
        import threading

        from gateway import db as dbmod

        self.db = dbmod.connect(url)
        self.own = self.db.scalar("SELECT pg_backend_pid()")
        self.ticks = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self):
        pids = [r["pid"] for r in self.db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
        for pid in pids:
            if pid == self.own:
                continue
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime

    def _run(self):
        while not self.done.wait(0.2):
            self._sample()

    def stop(self):
        self.done.set()
        self.thread.join()
        self.db.close()
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK") if self.ticks else None


def measure(url, what, jobs):
    """In this (fresh) process: the reference scan or a rebuild with `jobs`; prints JSON."""
    import resource

    from gateway import db as dbmod
    from gateway import rebuild

    if what == "profile":
        return profile(url)
    db = dbmod.connect(url)
    started = time.monotonic()
    if what == "reference":
        rows = db.query(REFERENCE)
        out = {"seconds": time.monotonic() - started, "panels": len(rows), "events": sum(r["n"] for r in rows)}
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        server = _ServerCpu(url) if db.dialect == "postgresql" else None
        result = rebuild.rebuild(db, T0 + 400 * DAY, jobs=jobs)
        server_s = server.stop() if server else None
        check = db.query_one(
            "SELECT COUNT(*) AS polls, SUM(opened_ms % 1000003) AS opened,"
            " SUM(CASE WHEN answer IS NULL THEN 1 ELSE 0 END) AS silent FROM polls"
        ) or {"polls": 0, "opened": 0, "silent": 0}
        # the other derived tables too: a faster rebuild must write the same rows everywhere
        more = [
            db.scalar("SELECT COUNT(*) FROM derive_state"),
            db.scalar("SELECT SUM(fed_count) FROM derive_state"),
            db.scalar("SELECT COUNT(*) FROM poll_rollup"),
            db.scalar("SELECT SUM(polls + 3 * yes + 7 * silent + 11 * contact) FROM poll_rollup"),
            db.scalar("SELECT COUNT(*) FROM unsolicited"),
            db.scalar("SELECT COUNT(*) FROM force_majeure"),
        ]
        out = {
            "seconds": result.seconds,
            "panels": result.panels,
            "parent_mb": result.peak_kib["parent"] / 1024,
            "worker_mb": result.worker_peak_kib / 1024,
            "workers": len(result.peak_kib) - 1,
            "check": [int(check["polls"]), int(check["opened"] or 0), int(check["silent"] or 0)]
            + [int(x or 0) for x in more],
            "server_cpu_s": server_s,
            # CPU seconds of this process and its (joined) workers: the work, whatever the load
            "cpu_s": sum(
                getattr(resource.getrusage(who), f)
                for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                for f in ("ru_utime", "ru_stime")
            ),
        }
    db.close()
    print(json.dumps(out), flush=True)


def _count_statements(dbmod):
    """Count the Database calls that reach the server (bench only: wraps the class's methods in
    this process): {method: calls}, and the rows sent by executemany / insert_rows."""
    import collections

    counts = collections.Counter()

    def wrap(name, orig):
        def counted(self, *args, **kwargs):
            counts[name] += 1
            if name in ("executemany", "insert_rows"):
                rows = list(args[-1])
                counts[name + " rows"] += len(rows)
                args = args[:-1] + (rows,)
            return orig(self, *args, **kwargs)

        return counted

    for name in ("execute", "executemany", "query", "insert_rows", "_begin", "_commit"):
        if hasattr(dbmod.Database, name):
            setattr(dbmod.Database, name, wrap(name, getattr(dbmod.Database, name)))
    return counts


def profile(url):
    """The rebuild in this process (--jobs 1) under cProfile, counting its statements."""
    import cProfile
    import io
    import pstats

    from gateway import db as dbmod
    from gateway import rebuild

    counts = _count_statements(dbmod)
    db = dbmod.connect(url)
    prof = cProfile.Profile()
    started = time.monotonic()
    prof.enable()
    result = rebuild.rebuild(db, T0 + 400 * DAY, jobs=1)
    prof.disable()
    seconds = time.monotonic() - started
    db.close()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(18)
    per_panel = {k: round(v / max(result.panels, 1), 2) for k, v in sorted(counts.items())}
    out = {"seconds": seconds, "panels": result.panels, "counts": dict(counts), "per_panel": per_panel}
    print(text.getvalue())
    print(json.dumps(out), flush=True)


def _run(url, what, jobs=0, code=None, full=False):
    env = dict(os.environ)
    if code:  # another checkout's gateway package (the code before a change), same chain
        env["RATING_BENCH_CODE"] = os.path.abspath(code)
    got = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure", what, "--url", url, "--jobs", str(jobs)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    lines = got.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    if full:
        out["text"] = "\n".join(lines[:-1])
    return out


def _load():
    return " ".join("%.1f" % x for x in os.getloadavg())


def _redact(url):
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _count_events(url):
    from gateway import db as dbmod

    db = dbmod.connect(url)
    try:
        return int(db.scalar("SELECT COUNT(*) FROM raw_event_keys") or 0)
    finally:
        db.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panels", type=int, default=300)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--polls", type=int, default=11, help="polls a panel a day")
    ap.add_argument("--jobs", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--pg", action="store_true", help="a fresh PostgreSQL database (else SQLite in build/bench)")
    ap.add_argument("--keep", action="store_true", help="keep the database (its URL is printed) for --db")
    ap.add_argument("--db", help="measure on this database generated before with --keep (no generation)")
    ap.add_argument("--code", help="a checkout whose gateway package is measured (e.g. main's, for a before)")
    ap.add_argument(
        "--profile", action="store_true", help="also the rebuild in one process under cProfile, counting its statements"
    )
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        return measure(args.url, args.measure, int(args.jobs))
    drop = None
    if args.db:
        url = args.db
    elif args.pg:
        from support import pg_database

        url, drop, why = pg_database()
        if url is None:
            print("no PostgreSQL: %s" % why)
            return 1
    else:
        folder = os.path.join(REPO, "build", "bench")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "rebuild-%d-%d.db" % (args.panels, args.days))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        url = "sqlite:///" + path
    try:
        if args.db:
            events = _count_events(url)
            print("%s: %d raw events, generated before; load average %s" % (_redact(url), events, _load()), flush=True)
        else:
            events, built = build(url, args.panels, args.days, args.polls)
            print(
                "%s: %d panels x %d days x %d polls: %d raw events generated in %.1f s; load average %s"
                % ("PostgreSQL" if args.pg else "SQLite", args.panels, args.days, args.polls, events, built, _load()),
                flush=True,
            )
            if args.keep:
                print("kept for --db: %s" % _redact(url), flush=True)
        ref = _run(url, "reference")
        print(
            "reference scan: %.2f s (%d panels, %d events), peak %.0f MB"
            % (ref["seconds"], ref["panels"], ref["events"], ref["peak_mb"]),
            flush=True,
        )
        if args.profile:
            got = _run(url, "profile", 1, args.code, full=True)
            print(got["text"])
            print(
                "profiled rebuild --jobs 1 (cProfile on): %.1f s, %d panels; Database calls %s; per panel %s"
                % (got["seconds"], got["panels"], got["counts"], got["per_panel"]),
                flush=True,
            )
        checks = set()
        for jobs in [int(x) for x in args.jobs.split(",")]:
            got = _run(url, "rebuild", jobs, args.code)
            checks.add(tuple(got["check"]))
            print(
                "rebuild --jobs %d: %.1f s = %.0f events/s, %.1fx the reference; %d polls; peak memory: parent %.0f MB,"
                " largest of %d workers %.0f MB; Python CPU %.1f s = %.0f events per CPU second; PostgreSQL server"
                " CPU %s; load average %s"
                % (
                    jobs,
                    got["seconds"],
                    events / got["seconds"],
                    got["seconds"] / max(ref["seconds"], 1e-6),
                    got["check"][0],
                    got["parent_mb"],
                    got["workers"],
                    got["worker_mb"],
                    got["cpu_s"],
                    events / max(got["cpu_s"], 1e-6),
                    "-" if got.get("server_cpu_s") is None else "%.1f s" % got["server_cpu_s"],
                    _load(),
                ),
                flush=True,
            )
            print("derived rows check: %s" % got["check"], flush=True)
        print("same derived rows for every --jobs: %s" % (len(checks) == 1))
        return 0 if len(checks) == 1 else 1
    finally:
        if drop and not args.keep:
            drop()


if __name__ == "__main__":
    sys.exit(main())
