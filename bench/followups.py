"""What the CRM follow-up pass (gateway/followups.py) costs on the gateway's worker: the first
pass over a day of a chain's polls (every No/silent poll issued), and a steady pass where every
panel was just derived and nothing is new (what each worker round pays), next to the read the
pass cannot avoid (derive.negative_polls of each panel over max_age, the reference).

    .venv/bin/python bench/followups.py                    # 200 panels (10 an office) x 100 polls, SQLite
    .venv/bin/python bench/followups.py --panels 50        # quicker
"""

import argparse
import importlib
import os
import pathlib
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "support")]

from gateway import derive, followups  # noqa: E402

# tests/support (a site file, pressing panels), found through sys.path at run time
sites = importlib.import_module("gw_site_support")
MIN, SITE_TOML, T0, Panel = sites.MIN, sites.SITE_TOML, sites.T0, sites.Panel
apply_site, sqlite_db, store_events = sites.apply_site, sites.sqlite_db, sites.store_events

PER_OFFICE = 10


def office(i):
    return "o%d" % (i // PER_OFFICE)


def chain(n_panels):
    """The test site file plus offices of PER_OFFICE staff panels each."""
    text = SITE_TOML
    for o in sorted({office(i) for i in range(n_panels)}):
        text += '\n[[sites]]\nid = "%s"\nname = "%s"\ntimezone = "Europe/Moscow"\n' % (o, o)
    text += "\n[followups]\nhold_min = 30\n"
    for i in range(n_panels):
        text += '\n[[panels]]\nsite = "%s"\ndevice = "p%d"\nquestion = "staff"\n' % (office(i), i)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panels", type=int, default=200)
    ap.add_argument("--polls", type=int, default=100, help="polls per panel over 12 hours")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite_db(pathlib.Path(tmp))
        apply_site(db, chain(args.panels))
        events = []
        for i in range(args.panels):
            p = Panel(office(i), "p%d" % i, booted_at=T0 - 3600000)
            for k in range(args.polls):
                p.poll(T0 + k * (720 * MIN // args.polls), rng.choice(["yes", "yes", "yes", "unsure", "no", None]))
            events += p.events
        store_events(db, events)
        now = T0 + 13 * 60 * MIN
        derive.rebuild(db, now)
        panels = {(office(i), "p%d" % i) for i in range(args.panels)}
        started = time.perf_counter()
        issued = followups.update(db, now, panels)
        first = time.perf_counter() - started
        steady, ref = [], []
        for r in range(args.repeat):
            started = time.perf_counter()
            assert followups.update(db, now + (r + 1) * 1000, panels) == []
            steady.append(time.perf_counter() - started)
            started = time.perf_counter()
            for panel in sorted(panels):
                derive.negative_polls(db, now - 48 * 3600000, now, panel)
            ref.append(time.perf_counter() - started)
        s, f = min(steady), min(ref)
        print("load average %.1f" % os.getloadavg()[0])
        print(
            "first pass: %d follow-ups issued from %d polls of %d panels in %.2f s (%.0f a second)"
            % (len(issued), args.panels * args.polls, args.panels, first, len(issued) / first)
        )
        print(
            "steady pass, every panel derived, nothing new: %.1f ms; reference (negative_polls of each panel): "
            "%.1f ms; ratio %.2f" % (s * 1000, f * 1000, s / f)
        )


if __name__ == "__main__":
    main()
