"""POS matching (gateway/transactions.py): what one more sale costs on a till with a long
history, next to re-matching the whole till (the reference, in the same run).

    .venv/bin/python bench/transactions.py --polls 20000          # SQLite under build/bench/
    .venv/bin/python bench/transactions.py --polls 20000 --pg     # a fresh PostgreSQL database

One office, one panel at till "till-1"; N polls a minute and a half apart and N sales 20 s before
each, generated in SQL (polls are derived rows: derivation is measured by rebuild benchmarks).
Measured: `store_many` of one new sale at the end of the till (stored + re-matched from its time
on, in its transaction), the mean of --repeat runs; a full `rematch` of the till (what a
settings change or `rating rebuild` costs per till); `conversion_rows` for the office's last day.
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "bench")]

T0 = 1736150400000
STEP = 90_000

SITE = """
[deployment]
lang = "en"
from = 2025-01-01T00:00:00Z

[[sites]]
id = "msk"
name = "Office"
timezone = "Europe/Moscow"

[[questions]]
id = "staff"
kind = "staff"
text_ru = "Как {employee}?"
text_en = "{employee}?"

[[employees]]
id = "ivanova"
name = "Ivanova"

[[panels]]
site = "msk"
device = "desk-1"
question = "staff"
till = "till-1"

[[roster]]
panel = "msk/desk-1"
employee = "ivanova"
from = 2025-01-01T00:00:00Z
"""


def _numbers(db, n):
    if db.dialect == "postgresql":
        return "SELECT g AS i FROM generate_series(CAST(0 AS BIGINT), %d) g" % (n - 1)
    return "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d) SELECT i FROM c" % (n - 1)


def build(db, n):
    from gateway import site

    site.apply(db, site.parse(SITE), T0, "bench.toml")
    with db.transaction():
        db.execute(
            "INSERT INTO polls (site, device, open_seq, opened_ms, closes_ms, answer, extra_presses, seller_presses,"
            " time_source, employee, question, kind, provisional, contact) SELECT 'msk', 'desk-1', 2 * i + 1,"
            " %d + i * %d, %d + i * %d + 30000, 'yes', 0, 1, 'device', 'ivanova', 'staff', 'staff', 0, 1 FROM (%s) n"
            % (T0, STEP, T0, STEP, _numbers(db, n))
        )
        db.execute(
            "INSERT INTO transactions (site, tx_id, till, at_ms, loyalty, source, received_ms)"
            " SELECT 'msk', 'R-' || CAST(i AS TEXT), 'till-1', %d + i * %d - 20000, NULL, 'bench', %d FROM (%s) n"
            % (T0, STEP, T0, _numbers(db, n))
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--pg", action="store_true")
    args = ap.parse_args()
    from gateway import schema, site, transactions

    drop = None
    if args.pg:
        import support

        url, drop, why = support.pg_database()
        if url is None:
            sys.exit("no PostgreSQL: %s" % why)
    else:
        folder = os.path.join(REPO, "build", "bench")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "transactions-%d.db" % args.polls)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        url = "sqlite:///" + path
    db = schema.open_database(url)
    build(db, args.polls)
    if db.dialect == "postgresql":
        db.execute("ANALYZE")  # what autovacuum does for a running deployment
    history = site.load(db)
    started = time.perf_counter()
    with db.transaction():
        matched = transactions.rematch(db, "msk", "till-1", history)
    full_s = time.perf_counter() - started
    end = T0 + args.polls * STEP
    times = []
    for k in range(args.repeat):
        sale = transactions.check("msk", {"id": "NEW-%d" % k, "till": "till-1", "t": end + k * STEP})
        started = time.perf_counter()
        with db.transaction():
            transactions.store_many(db, [("msk", sale)], "bench", end)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    rows = transactions.conversion_rows(db, history, "msk", "device", end - 86400000, end)
    report_s = time.perf_counter() - started
    one = sum(times) / len(times)
    print(
        "%s, %d polls and %d sales on one till (load average %.1f)"
        % (db.dialect, args.polls, args.polls, os.getloadavg()[0])
    )
    print("  full re-match of the till (reference): %.3f s, %d matches" % (full_s, matched))
    print(
        "  one more sale, stored and matched:      %.2f ms (mean of %d) = %.4f of the full re-match"
        % (one * 1000, len(times), one / full_s)
    )
    print("  conversion of the last day:             %.3f s (%d polls)" % (report_s, rows[0]["polls"] if rows else 0))
    db.close()
    if drop:
        drop()


if __name__ == "__main__":
    main()
