"""Rendering time of the report documents with their charts on a year of a 100-office chain:
what `rating reports send-due` spends on one weekly and one monthly mail (every grouping's
report, the trend report, the charts as PNG, the PDF, the .xlsx, the whole message) and what
`rating report --format pdf|html` spends on its charts.

    .venv/bin/python bench/report_docs.py                       # the database of bench/console.py
    .venv/bin/python bench/report_docs.py --offices 10          # a smaller chain
    .venv/bin/python bench/report_docs.py --db sqlite:///copy.db # a copy of a database built elsewhere
    .venv/bin/python bench/report_docs.py --db sqlite:///out/demo/gateway.db --week 2025-03-03 --month 2025-03-01

The database is bench/console.py's (build/bench/console-year-N.db, built by it when missing:
~15 min for 100 offices). Reference, in the same run: `report.build_report` of every office for
the week (the part the documents start from). Each figure is the median of --repeat runs.
"""

import argparse
import datetime as dt
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import TypeVar

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO]

from gateway import report, report_docs, report_export, reportmail, schema  # noqa: E402

T = TypeVar("T")


def _bench_console():
    """bench/console.py (its year generator), loaded under another name: `console` is the app."""
    spec = importlib.util.spec_from_file_location("bench_console", os.path.join(REPO, "bench", "console.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _database(args):
    if args.db:
        return args.db
    bc = _bench_console()
    folder = os.path.join(REPO, "build", "bench")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "console-year-%d.db" % args.offices)
    if not os.path.exists(path):
        print("building a year of %d offices into %s (bench/console.py's generator)" % (args.offices, path), flush=True)
        building = path + ".building"
        bc.build("sqlite:///" + building, args.offices)
        os.replace(building, path)
    url = "sqlite:///" + path
    bc.mark_derived(url)
    return url


CPU: list[float] = []  # the CPU ms of the last _median (this process), next to the wall clock


def _median(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """(median wall ms of `repeat` calls, the last call's result); CPU[0]: their median CPU ms
    (the figure to read on a loaded machine)."""
    times, cpu = [], []
    result = None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    CPU[:] = [statistics.median(cpu)]
    return statistics.median(times), result  # type: ignore[return-value]


def measure(url, repeat, monday="2025-12-22", first="2025-11-01"):
    db = schema.open_database(url)
    # a full ISO week and a month (default: the year's last ones), naive local bounds (each
    # office's own time)
    start = dt.datetime.fromisoformat(monday)
    week = (start, start + dt.timedelta(days=7))
    begin = dt.datetime.fromisoformat(first)
    month = (begin, (begin + dt.timedelta(days=32)).replace(day=1))
    rows = []

    def row(label, ms, note=""):
        rows.append((label, ms, note))
        print("  %-62s %9.1f ms wall %9.1f ms CPU  %s" % (label, ms, CPU[0], note), flush=True)

    ref, weekly = _median(lambda: report.build_report(db, by="site", start=week[0], end=week[1], lang="ru"), repeat)
    row("reference: build_report(every office, the week)", ref, "%d rows" % len(weekly["rows"]))
    ms, figs = _median(lambda: report_docs.figures(weekly, ("png",)), repeat)
    row("charts of the week (offices with intervals), PNG", ms, "%d chart(s)" % len(figs))
    ms, figs_svg = _median(lambda: report_docs.figures(weekly, ("svg",)), repeat)
    row("charts of the week, SVG", ms)
    ms, pdf = _median(lambda: report_docs.pdf_bytes(weekly, figs), repeat)
    row("PDF of the week (table + the PNG charts)", ms, "%d KB" % (len(pdf) // 1024))
    ms, page = _median(lambda: report_docs.render_html(weekly, figs_svg), repeat)
    row("HTML of the week (table + inline SVG)", ms, "%d KB" % (len(page) // 1024))
    ms, by_day = _median(
        lambda: report.build_report(db, by="site", period="day", start=week[0], end=week[1], lang="ru"), repeat
    )
    row("trend report: build_report(every office, the week by day)", ms, "%d rows" % len(by_day["rows"]))
    ms, trend_figs = _median(lambda: report_docs.figures(by_day, ("png",)), repeat)
    row("trend charts of the week by day (at most 10 series), PNG", ms, "%d chart(s)" % len(trend_figs))

    for every, (start, end) in (("week", week), ("month", month)):
        split = reportmail.TREND_PERIOD[every]

        def mail(every=every, start=start, end=end, split=split):
            reports = [report.build_report(db, by=by, start=start, end=end, lang="ru") for by in report.BYS]
            trend = report.build_report(db, by="site", period=split, start=start, end=end, lang="ru")
            msg = reportmail.compose(reports, every, "p", "r@example.org", ["b@example.org"], "<m@x>", trend)
            return msg.as_string()

        ms, raw = _median(mail, repeat)
        row("the whole %sly mail (4 reports + trend, charts, PDF, xlsx)" % every, ms, "%d KB" % (len(raw) // 1024))
    reports = [report.build_report(db, by=by, start=week[0], end=week[1], lang="ru") for by in report.BYS]
    ms, book = _median(lambda: report_export.workbook_bytes(reports), repeat)
    row("of which: the .xlsx of the week (every grouping)", ms, "%d KB" % (len(book) // 1024))
    db.close()
    return rows


def main():
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--offices", type=int, default=100)
    p.add_argument("--db", help="a database URL to read instead of bench/console.py's (not written)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--week", default="2025-12-22", help="the Monday of the week measured (default: the year's last)")
    p.add_argument("--month", default="2025-11-01", help="the first day of the month measured")
    args = p.parse_args()
    url = _database(args)
    print("report documents with charts (median of %d), %s:" % (args.repeat, url), flush=True)
    measure(url, args.repeat, args.week, args.month)


if __name__ == "__main__":
    main()
