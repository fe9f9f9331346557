"""What rolling a report up by region adds: `report_regions.rollup` on an office report of a
large chain (100 offices, a year by week: 5,200 office rows, 20 regions in two levels), next
to the reference `report_core.row_dict` of the same rows (what the report itself spends per
row once its counts are summed). The office report is made up here (random counts per row):
the rollup reads only the rows, never the database.

    .venv/bin/python bench/report_regions.py [--offices 100] [--weeks 52] [--repeat 5]
"""

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway import report, report_regions  # noqa: E402
from gateway.report_core import Tally, row_dict  # noqa: E402
from kpi_core import PollCounts, ScopeCounts  # noqa: E402


def office_report(offices, weeks, opts, rng):
    rows = []
    for o in range(offices):
        for w in range(weeks):
            staff = PollCounts(rng.randint(20, 80), rng.randint(0, 20), rng.randint(0, 5), rng.randint(0, 30))
            tally = Tally(scope=ScopeCounts(staff=staff, polls=staff.valid, fm_reports=rng.randint(0, 3)))
            head = {
                "key": "office-%03d" % o,
                "label": "Office %d" % o,
                "period": "2025-W%02d" % (w + 1),
                "period_start_ms": w * 604800000,
                "period_end_ms": (w + 1) * 604800000,
                "timezone": "Europe/Moscow",
            }
            rows.append(row_dict(head, tally, opts))
    return {"rows": rows, "total": rows[0], "bottleneck": [], "by": "site", "period": "week"}, rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--offices", type=int, default=100)
    p.add_argument("--weeks", type=int, default=52)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    rng = random.Random(1)
    from gateway import site

    opts = report.options(site.History([]), "site", "week", lang="en", now_ms=0)
    by_site, rows = office_report(args.offices, args.weeks, opts, rng)
    # 4 top regions of 5 sub-regions each; every office in one sub-region
    members, tree = {}, {}
    for top in range(4):
        members["top-%d" % top] = []
        tree["top-%d" % top] = {"name": "Top %d" % top, "parent": None}
        for sub in range(5):
            rid = "sub-%d-%d" % (top, sub)
            tree[rid] = {"name": rid, "parent": "top-%d" % top}
            members[rid] = ["office-%03d" % o for o in range(args.offices) if o % 20 == top * 5 + sub]
            members["top-%d" % top] += members[rid]
    rollup_s, reference_s = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = report_regions.rollup(by_site, members, tree, opts)
        rollup_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        for r in rows:
            row_dict({k: r[k] for k in ("key", "label", "period")}, report_regions.tally_of(r), opts)
        reference_s.append(time.perf_counter() - t)
    print(
        "%d office rows -> %d region rows: rollup median %.0f ms (max %.0f); reference row_dict of the "
        "office rows median %.0f ms; load average %.2f"
        % (
            len(rows),
            len(out["rows"]),
            1000 * statistics.median(rollup_s),
            1000 * max(rollup_s),
            1000 * statistics.median(reference_s),
            os.getloadavg()[0],
        )
    )


if __name__ == "__main__":
    main()
