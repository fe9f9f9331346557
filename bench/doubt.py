"""How well the doubt score (gateway/doubt.py) separates a gaming seller's polls from honest
ones, on raw panel events derived by the real window builder.

    .venv/bin/python bench/doubt.py              # 20 honest sellers, 2 gaming, 5 days
    .venv/bin/python bench/doubt.py --days 2     # quicker
    .venv/bin/python bench/doubt.py --sim 5      # the simulator's gaming-week, seeds 1..5
    .venv/bin/python bench/doubt.py --speed      # scoring a week of 100 offices (56,000 polls)

With --sim N: the simulator's people model (simulator/scenarios/gaming-week.toml: six honest
sellers and one gaming seller, simulator/world.py) over N seeds, every press turned into the
raw event the firmware sends (simulator.pure.raw_events) and derived by the gateway; the
score's precision and recall at the queue's threshold (score > 0: the poll joins the queue)
and at 3, the gamed share of the queue's first k (k = the gamed polls), against the reference
of the same run: the gamed share of all polls (what a queue in random order finds) and of the
sample without the score (all No + a 10 % share).

By default a generator of its own, with stated assumptions (--sim: the simulator's people model).
Honest sellers: 40 customers a day each; the customer answers with probability 0.7 after a
reaction time drawn log-normally (median 3.5 s, 5th percentile about 1.7 s: reading a short
question and reaching a button), Yes 70 %, No 15 %, Unsure 15 %; now and then a seller
presses twice (a second press 2-8 s later) and a customer presses twice. Gaming sellers: half
their polls are real customers as above, the other half they open and answer Yes themselves
0.2-1.2 s later (some in quick runs), and after a No they open a poll again within 20-50 s and
answer Yes. Precision and recall of "score >= 3" (one strong sign or several weak ones) over
the gamed polls, and the gaming sellers' share of the 100 riskiest polls.
"""

import argparse
import importlib
import math
import os
import pathlib
import random
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "support")]

from gateway import derive, doubt  # noqa: E402

sites = importlib.import_module("gw_site_support")  # a site file, panels that press like the firmware
DAY = 86400000


def reaction(rng):
    return int(1000 * math.exp(rng.gauss(math.log(3.5), 0.45)))


def customer(panel, rng, at, truth, gamed=False):
    panel.press(at, "seller_short")
    seq = panel.seq
    if rng.random() < 0.05:  # the seller's finger slips: a second press in the window
        panel.press(at + rng.randint(2000, 8000), "seller_short")
    if rng.random() < 0.7:
        x = rng.random()
        answer = "yes" if x < 0.7 else "no" if x < 0.85 else "unsure"
        t = at + reaction(rng)
        panel.press(t, answer)
        if rng.random() < 0.03:
            panel.press(t + rng.randint(300, 2000), answer)
        truth[(panel.device, seq)] = gamed
        return answer
    truth[(panel.device, seq)] = gamed
    return None


def gamed_poll(panel, rng, at, truth):
    panel.press(at, "seller_short")
    truth[(panel.device, panel.seq)] = True
    panel.press(at + rng.randint(200, 1200), "yes")


def build(db, days, honest, gaming, seed):
    rng = random.Random(seed)
    devices = ["h%02d" % i for i in range(honest)] + ["g%02d" % i for i in range(gaming)]
    text = sites.SITE_TOML.split("[[panels]]")[0]
    for d in devices:
        text += '\n[[panels]]\nsite = "msk"\ndevice = "%s"\nquestion = "staff"\n' % d
        text += '\n[[roster]]\npanel = "msk/%s"\nemployee = "%s"\n' % (d, "ivanova" if d[0] == "g" else "petrov")
    sites.apply_site(db, text.replace('[[roster]]\npanel = "msk/desk-1"', '[[roster]]\npanel = "msk/h00"', 1))
    truth = {}
    events = []
    for d in devices:
        panel = sites.Panel("msk", d, booted_at=sites.T0 - 1000)
        for day in range(days):
            t = sites.T0 + day * DAY
            for _ in range(40):
                t += rng.randint(5, 20) * 60000
                if d[0] == "h" or rng.random() < 0.5:
                    answer = customer(panel, rng, t, truth)
                    if d[0] == "g" and answer == "no":
                        t += rng.randint(20000, 50000)
                        gamed_poll(panel, rng, t, truth)
                else:
                    for _ in range(rng.choice((1, 1, 2, 3))):
                        gamed_poll(panel, rng, t, truth)
                        t += rng.randint(60, 180) * 1000
        events += panel.events
    sites.store_events(db, events)
    derive.rebuild(db, sites.T0 + (days + 1) * DAY)
    return truth


def sim_seed(seed, days):
    """(polls, doubts, gamed ids, sample ids) of the gaming-week scenario with `seed`."""
    from gateway import review
    from simulator import pure, scenario, sitefile

    w = pure.model_world(
        scenario.load(os.path.join(ROOT, "simulator", "scenarios", "gaming-week.toml"), seed=seed, days=days)
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = sites.sqlite_db(pathlib.Path(tmp))
        sites.apply_site(db, sitefile.site_toml(w), w.scenario.start_ms - 7200000)
        sites.store_events(db, pure.raw_events(w))
        derive.rebuild(db, w.scenario.end_ms + DAY)
        polls, fms = derive.polls_and_reports(db)
        doubts = doubt.score(polls, derive.unsolicited_presses(db))
        db.close()
    seq = {p.poll: p.seq for ps in w.presses.values() for p in ps if p.role == "open"}
    gamed = {"%s/%s/%s" % (q["site"], q["device"], seq[q["id"]]) for q in w.polls if q.get("gamed")}
    sample = {
        review.format_id(r["site"], r["device"], r["open_seq"]) for s, r in review.sample(polls, fms, 0.1) if s != "fm"
    }
    return polls, doubts, gamed, sample


def sim(seeds, days):
    tot = {"polls": 0, "gamed": 0, "q": 0, "q_tp": 0, "s3": 0, "s3_tp": 0, "top_tp": 0, "sample": 0, "sample_tp": 0}
    for seed in range(1, seeds + 1):
        polls, doubts, gamed, sample = sim_seed(seed, days)
        queue = {k for k, d in doubts.items() if d.score > 0}
        strong = {k for k, d in doubts.items() if d.score >= 3}
        top = [doubt.poll_id(p) for p in doubt.rank(polls, doubts)[: len(gamed)]]
        row = {
            "polls": len(polls),
            "gamed": len(gamed),
            "q": len(queue),
            "q_tp": len(queue & gamed),
            "s3": len(strong),
            "s3_tp": len(strong & gamed),
            "top_tp": sum(i in gamed for i in top),
            "sample": len(sample),
            "sample_tp": len(sample & gamed),
        }
        for k, v in row.items():
            tot[k] += v
        _sim_line("seed %d" % seed, row)
    _sim_line("all %d seeds" % seeds, tot)


def _sim_line(label, r):
    pct = lambda a, b: 100.0 * a / b if b else float("nan")  # noqa: E731
    print(
        "%s: %d polls, %d gamed (%.1f %%) | queue (score > 0): %d, precision %.1f %%, recall %.1f %%"
        " | score >= 3: precision %.1f %%, recall %.1f %% | first %d of the queue: %.1f %% gamed"
        " | reference: sample without the score %d, %.1f %% gamed, recall %.1f %%"
        % (
            label,
            r["polls"],
            r["gamed"],
            pct(r["gamed"], r["polls"]),
            r["q"],
            pct(r["q_tp"], r["q"]),
            pct(r["q_tp"], r["gamed"]),
            pct(r["s3_tp"], r["s3"]),
            pct(r["s3_tp"], r["gamed"]),
            r["gamed"],
            pct(r["top_tp"], r["gamed"]),
            r["sample"],
            pct(r["sample_tp"], r["sample"]),
            pct(r["sample_tp"], r["gamed"]),
        )
    )


def speed(repeat=5):
    """Time of doubt.score over the polls of the console's coldest review page (all 100
    offices, a week: 2 panels x 40 polls a day x 7 days each, every seller press with its
    hold, 7 unsolicited presses per office), against the reference in the same run:
    review.sample over the same polls (the sample the page draws anyway)."""
    import statistics
    import time

    from gateway import review

    rng = random.Random(1)
    polls, presses = [], []
    for o in range(100):
        for d in range(2):
            t = sites.T0
            for i in range(280):
                t += rng.randint(60000, 1800000)
                a = rng.choice(["yes", "yes", "yes", "no", "unsure", None])
                polls.append(
                    {
                        "site": "o%03d" % o,
                        "device": "d%d" % d,
                        "open_seq": 2 * i + 1,
                        "opened_ms": t,
                        "answered_ms": None if a is None else t + reaction(rng),
                        "answer": a,
                        "extra_presses": 0,
                        "seller_presses": 1,
                        "seller_hold_ms": rng.randint(90, 400),
                        "employee": "e%03d-%d" % (o, i % 2),
                    }
                )
        presses += [{"site": "o%03d" % o, "device": "d0", "at_ms": sites.T0 + rng.randrange(7 * DAY)} for _ in range(7)]
    ref, took = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        review.sample(polls, [], 0.1)
        t1 = time.perf_counter()
        doubt.score(polls, presses)
        took.append(time.perf_counter() - t1)
        ref.append(t1 - t0)
    a, b = statistics.median(took) * 1000, statistics.median(ref) * 1000
    print(
        "%d polls: doubt.score %.0f ms, reference review.sample %.0f ms (ratio %.2f), median of %d"
        % (len(polls), a, b, a / b, repeat)
    )


def main():
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--speed", action="store_true", help="time the score on a week of 100 offices instead")
    ap.add_argument("--sim", type=int, metavar="SEEDS", help="the simulator's gaming-week over seeds 1..SEEDS instead")
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--honest", type=int, default=20)
    ap.add_argument("--gaming", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threshold", type=int, default=3)
    a = ap.parse_args()
    if a.speed:
        speed()
        return
    if a.sim:
        sim(a.sim, a.days)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = sites.sqlite_db(pathlib.Path(tmp))
        truth = build(db, a.days, a.honest, a.gaming, a.seed)
        polls, _fms = derive.polls_and_reports(db)
        doubts = doubt.score(polls, derive.unsolicited_presses(db))
        db.close()
    gamed = {doubt.poll_id(p) for p in polls if truth.get((p["device"], p["open_seq"]))}
    flagged = {k for k, d in doubts.items() if d.score >= a.threshold}
    tp = len(flagged & gamed)
    precision = tp / len(flagged) if flagged else float("nan")
    recall = tp / len(gamed) if gamed else float("nan")
    ranked = doubt.rank(polls, doubts)[:100]
    top = sum(doubt.poll_id(p) in gamed for p in ranked)
    print(
        "%d polls, %d gamed (%d of %d sellers gaming), %d days"
        % (len(polls), len(gamed), a.gaming, a.gaming + a.honest, a.days)
    )
    print(
        "score >= %d: %d polls flagged, precision %.1f %%, recall %.1f %%"
        % (a.threshold, len(flagged), 100 * precision, 100 * recall)
    )
    print("the 100 riskiest polls: %d gamed" % top)
    honest_flagged = len(flagged - gamed)
    honest_total = len(polls) - len(gamed)
    print(
        "honest polls flagged: %d of %d (%.2f %%)" % (honest_flagged, honest_total, 100 * honest_flagged / honest_total)
    )


if __name__ == "__main__":
    main()
