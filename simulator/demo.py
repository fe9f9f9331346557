"""`rating demo`: the whole system on one machine, in well under two minutes.

Starts the embedded MQTT broker (amqtt, gateway/broker.py) and the gateway (`rating gateway run`
into SQLite), then simulates a week of a small chain (simulator/scenarios/demo-week.toml): every
panel runs the real firmware, customers and sellers press buttons (with contact bounce),
Wi-Fi drops and a broker outage happen. Afterwards the hourly counts are published, the
expert's verdicts recorded and the KPI report printed (per employee and per office, with
intervals, flags and the bottleneck diagnosis), checked against the simulation's ground truth.
Files land in --out.
"""

import os
import time

DEMO_SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios", "demo-week.toml")


def register(sub):
    p = sub.add_parser(
        "demo",
        help="simulate a week of a small chain end to end and print the KPI report",
        description=(__doc__ or "").split("\n\n")[1],
    )
    p.add_argument(
        "--out", default="out/demo", help="where the database, reports, truth and site file go (default out/demo)"
    )
    p.add_argument("--days", type=int, default=None, help="simulate fewer days (default: the scenario's 7)")
    p.add_argument("--seed", type=int, default=None, help="another seed gives another week")
    p.add_argument(
        "--broker",
        default="embedded",
        help="'embedded' (default: the gateway's amqtt broker), 'mosquitto' (our own, if "
        "installed) or mqtt://HOST:PORT of a running broker",
    )
    p.set_defaults(func=run)
    return p


def run(args):
    from gateway import report
    from gateway.cli_common import CliError
    from simulator import check, runner, scenario

    try:
        sc = scenario.load(DEMO_SCENARIO, days=args.days, seed=args.seed)
    except scenario.ScenarioError as exc:
        raise CliError("%s; --days must be at least 1" % exc) from None
    out = os.path.abspath(args.out)
    print(
        "rating demo: %d offices, %d panels running the real firmware, %d simulated days"
        % (len(sc.sites), len(sc.panels()), sc.days)
    )
    print(
        "  broker: %s; gateway: rating gateway run -> %s"
        % ("embedded (amqtt)" if args.broker == "embedded" else args.broker, os.path.join(out, "gateway.db"))
    )
    started = time.monotonic()
    try:
        doc, system, _w = runner.run(sc, out, broker=None if args.broker == "mosquitto" else args.broker, progress=True)
    except runner.RunError as exc:
        raise CliError(str(exc)) from None
    elapsed = time.monotonic() - started
    t = doc["totals"]
    st = doc["runner"]["stats"]
    print(
        "simulated %d panel-days in %.0f s: %d visitors, %d transactions, %d presses -> %d polls "
        "(%d silent), %d force-majeure reports, %d unsolicited presses"
        % (
            len(sc.panels()) * sc.days,
            elapsed,
            t["visitors"],
            t["transactions"],
            t["presses"],
            t["polls"],
            t["silent"],
            t["fm_reports"],
            t["unsolicited"],
        )
    )
    print(
        "faults on the way: %d Wi-Fi drops, %d broker outages, %d panel reboots, %d power cuts"
        % (st["wifi_drops"], st["broker_outages"], st["reboots"], st["power_cuts"])
    )
    rep = system["report"]
    text = report.render_table(rep["employee"]) + "\n\n" + report.render_table(rep["site"])
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(text + "\n")
    print()
    print(text)
    print()
    diffs = check.compare(doc, system) + system["problems"]
    if diffs:
        print("ground-truth check: %d differences\n%s" % (len(diffs), check.render(diffs)))
    else:
        print(
            "ground-truth check: every event stored exactly once; every poll, answer, force-majeure "
            "report and KPI matches what really happened."
        )
    for line in doc["runner"].get("warnings", []):
        print("note: %s" % line)
    db = "sqlite:///" + os.path.join(out, "gateway.db")
    print()
    print("Where to look next (`rating` is .venv/bin/rating; `. .venv/bin/activate` puts it on PATH):")
    print("  %s/report.txt      this report (report.json: the same as data)" % args.out)
    print("  rating status --db %s      panels, backlog, lost events" % db)
    print("  rating report --db %s --by device --period day" % db)
    print("  rating review list --db %s      what the expert checks" % db)
    print("  %s/truth.json      what really happened (every press, poll, force majeure, counts)" % args.out)
    print("  %s/site.toml       the site file the gateway got (rating site apply)" % args.out)
    print("  rating sim run simulator/scenarios/chain-week.toml --check   20 offices, every fault")
    return 1 if diffs else 0
