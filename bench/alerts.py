"""The negative-run alert's false-alarm rate and detection delay on simulated employees, and
what one evaluation of the alert rules costs on an office's five weeks of polls.

    .venv/bin/python bench/alerts.py                       # 20,000 honest weeks, 2,000 bad hours
    .venv/bin/python bench/alerts.py --weeks 2000 --polls 2000   # quicker

Honest subject-weeks: each simulated employee has its own share of No/silent answers, drawn
uniformly from 10-40 %; its baseline is estimated from the 4 weeks before (as the rule does);
a week of `--per-week` polls (default 240: 40 a day, 6 days) is run through the CUSUM with the
rule's default settings. False-alarm rate = the share of weeks with an alert (95 % Wilson
interval). Bad hour: an employee at 20 % gets `--bad` polls at a higher share after 100
ordinary polls of the week; detection = an alert within those polls; delay = the bad polls
seen until the alert.

Cost: alerts.evaluate on SQLite for one office with its polls of the 5 weeks the rules read,
next to derive.index alone on the same range (the read the service rules cannot avoid).
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "support")]

from gateway import alertrules, alerts, derive  # noqa: E402
from kpi_core import wilson  # noqa: E402


def _draws(rng, n, p):
    return [rng.random() < p for _ in range(n)]


def false_alarms(weeks, per_week, seed):
    s = alertrules.rule_settings(None, "negative_run")
    rng = random.Random(seed)
    alarms = 0
    for _ in range(weeks):
        p = rng.uniform(0.1, 0.4)
        base = sum(_draws(rng, 4 * per_week, p))
        p0 = alertrules.baseline_share(base, 4 * per_week)
        alarms += alertrules.cusum(_draws(rng, per_week, p), p0, s["odds_ratio"], s["h"]) is not None
    low, high = wilson(alarms, weeks)
    return alarms / weeks, low, high


def detection(runs, bad, share, seed, per_week=240):
    s = alertrules.rule_settings(None, "negative_run")
    rng = random.Random(seed)
    delays = []
    for _ in range(runs):
        p0 = alertrules.baseline_share(sum(_draws(rng, 4 * per_week, 0.2)), 4 * per_week)
        xs = _draws(rng, 100, 0.2) + _draws(rng, bad, share)
        hit = alertrules.cusum(xs, p0, s["odds_ratio"], s["h"])
        if hit is not None and hit >= 100:
            delays.append(hit - 100 + 1)
    delays.sort()
    return (
        len(delays) / runs,
        (statistics.median(delays) if delays else None),
        (delays[int(0.9 * len(delays))] if delays else None),
    )


def evaluation_cost(polls, repeat):
    import importlib
    import pathlib

    sites = importlib.import_module("gw_site_support")  # tests/support: a site file, pressing panels
    SITE_TOML, T0, Panel = sites.SITE_TOML, sites.T0, sites.Panel
    apply_site, sqlite_db, store_events = sites.apply_site, sites.sqlite_db, sites.store_events

    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite_db(pathlib.Path(tmp))
        apply_site(db, SITE_TOML)
        rng = random.Random(1)
        span = 35 * 86400000
        events = []
        for device in ("desk-1", "exit", "door"):
            panel = Panel("msk", device, booted_at=T0 - 1000)
            for i in range(polls // 3):
                panel.poll(T0 + i * span // (polls // 3), rng.choice(("yes", "yes", "no", None)))
            events += panel.events
        store_events(db, events)
        now = T0 + span
        derive.rebuild(db, now)
        read, full = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            derive.index(db, sites=["msk"], from_ms=now - 35 * 86400000)
            read.append(time.perf_counter() - t)
            t = time.perf_counter()
            alerts.evaluate(db, now, {"msk"})
            full.append(time.perf_counter() - t)
        n = derive.totals(db)[0]
        db.close()
    return n, statistics.median(read), statistics.median(full)


def main():
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--weeks", type=int, default=20000)
    ap.add_argument("--per-week", type=int, default=240)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--polls", type=int, default=6000, help="polls of the office in the cost part")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    s = alertrules.rule_settings(None, "negative_run")
    print("negative_run: odds ratio %s, h %s, baseline %d days" % (s["odds_ratio"], s["h"], s["baseline_days"]))
    for per_week in sorted({100, a.per_week, 500}):
        rate, low, high = false_alarms(a.weeks, per_week, a.seed)
        print(
            "false alarms, %d polls/week: %.2f %% of %d honest weeks (95 %% CI %.2f-%.2f %%)"
            % (per_week, 100 * rate, a.weeks, 100 * low, 100 * high)
        )
    for bad, share in ((20, 0.8), (20, 0.6), (40, 0.5)):
        found, median, p90 = detection(a.runs, bad, share, a.seed)
        print(
            "bad run of %d polls at %.0f %% (baseline 20 %%): detected in %.1f %%, after %s polls (median), %s (90th pct)"
            % (bad, 100 * share, 100 * found, median, p90)
        )
    n, read, full = evaluation_cost(a.polls, a.repeat)
    print(
        "evaluate, one office with %d polls in 5 weeks: %.0f ms (reference: derive.index of the range alone %.0f ms)"
        % (n, 1000 * full, 1000 * read)
    )


if __name__ == "__main__":
    main()
