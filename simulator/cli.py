"""`rating sim run SCENARIO.toml [--check] [--seed N] [--days N] [--sites N] [--out DIR]
[--broker URL|embedded] [--db URL] [--pure]`.

By default the end-to-end runner (simulator/runner.py): the real firmware on virtual panels,
a real MQTT broker (our own Mosquitto, the embedded amqtt broker, or --broker URL) and the real
gateway (`rating gateway run`) into SQLite in --out, with the scenario's faults. --pure runs
the model pipeline (scenario -> presses -> gateway.windows -> kpi_core) without firmware,
broker or database.
"""

import json
import os
import sys
import time

from gateway.i18n import _


def register(sub):
    p = sub.add_parser("sim", help=_("simulated stores: `rating sim run SCENARIO.toml --check`"))
    p.set_defaults(_parser=p)
    s = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    r = s.add_parser(
        "run",
        help=_("run a scenario and (with --check) compare the result with the ground truth"),
        description=_(
            "Run a scenario (simulator/scenarios/*.toml, format in simulator/README.md) "
            "end to end: real firmware -> real broker -> `rating gateway run` -> SQLite. "
            "Writes truth.json, site.toml, report.txt, gateway.db, gateway.log, "
            "report-gateway.txt and report.json to --out."
        ),
    )
    r.add_argument("scenario", help=_("scenario TOML file, e.g. simulator/scenarios/smoke-day.toml"))
    r.add_argument(
        "--check", action="store_true", help=_("compare polls and KPIs with the truth; exit 1 on any difference")
    )
    r.add_argument("--seed", type=int, help=_("override the scenario's seed"))
    r.add_argument("--days", type=int, help=_("simulate only the first N days"))
    r.add_argument("--sites", type=int, help=_("simulate only the first N sites"))
    r.add_argument("--out", default="out/sim", help=_("folder for the database and the reports (default out/sim)"))
    r.add_argument("--pure", action="store_true", help=_("model pipeline only: no firmware, broker or database"))
    r.add_argument(
        "--broker",
        help=_(
            "mqtt://HOST:PORT of a running broker (broker outages are then skipped); "
            "'embedded' starts the gateway's amqtt broker; default: our own Mosquitto "
            "(the embedded broker where none is installed)"
        ),
    )
    r.add_argument("--db", help=_("gateway database URL, must hold no events yet (default: a fresh SQLite in --out)"))
    r.add_argument("--quiet", action="store_true", help=_("no progress bar"))
    r.set_defaults(func=run_cmd)


def load(args):
    from gateway.cli_common import CliError
    from simulator import scenario

    try:
        return scenario.load(args.scenario, days=args.days, sites=args.sites, seed=args.seed)
    except scenario.ScenarioError as exc:
        raise CliError("%s; fix the scenario file (format: simulator/README.md)" % exc) from None


def run_pure(sc, out_dir):
    """-> (truth_doc, system dict, world) from the model pipeline."""
    from simulator import pure, sitefile, truth

    w = pure.model_world(sc)
    doc = truth.build(w)
    system = pure.derive(w)
    system["unsolicited"] = {"%s/%s" % k: v for k, v in system["unsolicited"].items()}
    write_outputs(out_dir, doc, sitefile.site_toml(w))
    return doc, system, w


def write_outputs(out_dir, doc, site_text):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "truth.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, default=str)
    with open(os.path.join(out_dir, "site.toml"), "w") as f:
        f.write(site_text)


def report_text(doc, system, w):
    from simulator import table

    sc = w.scenario
    names = {e: s["sellers"][e]["name"] for s in sc.sites for e in s["sellers"]}
    truth_by_id = {(p["site"], p["device"], p["open_seq"]): p for p in doc["polls"]}
    polls = []
    for p in system["polls"]:
        t = truth_by_id.get((p["site"], p["device"], p["open_seq"]))
        polls.append(
            dict(
                p,
                id="%s/%s/%s" % (p["site"], p["device"], p["open_seq"]),
                employee=t["employee"] if t else "?",
                kind=t["kind"] if t else "staff",
                invalid=bool(t and t["invalid"]),
            )
        )
    confirmed = {(f["site"], f["device"], f["seq"]) for f in doc["fms"] if f["confirmed"]}
    emp_of = {(f["site"], f["device"], f["seq"]): f["employee"] for f in doc["fms"]}
    fms = [
        dict(
            f,
            confirmed=(f["site"], f["device"], f["seq"]) in confirmed,
            employee=emp_of.get((f["site"], f["device"], f["seq"]), "?"),
        )
        for f in system.get("fms", [])
    ]
    return table.render(table.figures(polls, fms, doc["counts"], sc.method["k"], names, w.transactions_by_employee))


def run_cmd(args):
    from gateway.cli_common import CliError
    from simulator import check

    sc = load(args)
    started = time.monotonic()
    if args.pure:
        doc, system, w = run_pure(sc, args.out)
    else:
        try:
            from simulator import runner
        except ImportError as exc:
            raise CliError(
                "the end-to-end runner is not available (%s); use --pure for the model pipeline" % exc
            ) from None
        try:
            doc, system, w = runner.run(sc, args.out, broker=args.broker, db=args.db, progress=not args.quiet)
        except runner.RunError as exc:
            raise CliError(str(exc)) from None
    elapsed = time.monotonic() - started
    panel_days = len(sc.panels()) * sc.days
    print(
        "%s: %d panel-days, %d presses, %d polls, %d force-majeure reports in %.1f s (%.1f panel-days/s)"
        % (
            sc.meta["name"],
            panel_days,
            doc["totals"]["presses"],
            doc["totals"]["polls"],
            doc["totals"]["fm_reports"],
            elapsed,
            panel_days / max(elapsed, 1e-9),
        )
    )
    text = report_text(doc, system, w)
    with open(os.path.join(args.out, "report.txt"), "w") as f:
        f.write(text + "\n")
    print("truth.json, site.toml and report.txt in %s" % args.out)
    for line in doc.get("runner", {}).get("warnings", []):
        print("warning: %s" % line, file=sys.stderr)
    if not args.check:
        return 0
    diffs = check.compare(doc, system)
    diffs += system.get("problems", [])
    if diffs:
        print("CHECK FAILED: %d difference(s) between the system and the truth:" % len(diffs), file=sys.stderr)
        print(check.render(diffs), file=sys.stderr)
        return 1
    print(
        "check: OK (%d polls, %d force-majeure reports, %d unsolicited presses agree with the truth)"
        % (len(doc["polls"]), len(doc["fms"]), sum(doc["unsolicited"].values()))
    )
    lost = doc.get("runner", {}).get("lost")
    if lost is not None:
        dropped = sum(v["missing"] for v in lost.values())
        torn = sum(1 for p in doc["lost"] if p["lost"] == "power cut during its journal write")
        print(
            "events: every press stored exactly once, except %d lost to the forced journal overflow "
            "(the gateway reports %d lost) and %d torn by power cuts mid-write"
            % (dropped, sum(v["gateway_lost"] for v in lost.values()), torn)
        )
    return 0
