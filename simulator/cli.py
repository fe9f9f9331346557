"""`rating sim run SCENARIO.toml [--check] [--seed N] [--days N] [--sites N] [--out DIR]
[--broker URL|embedded] [--db URL] [--pure]` and `rating sim load [--panels N] [--days N] ...`
(simulator/loadgen.py).

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

from gateway.i18n import _, ngettext, number


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
    ld = s.add_parser(
        "load",
        help=_("pure load: N panels as MQTT clients through the broker into the gateway; ingest rate"),
        description=_(
            "Drive N panels (MQTT clients speaking the panel protocol, no firmware) through "
            "a real broker into the real gateway for a compressed stretch of days, honouring acks "
            "(resend until acked), then check every event was stored exactly once and print the "
            "ingest rate. Without --broker: our own Mosquitto with a login per panel and one "
            "`rating gateway run` into SQLite in --out."
        ),
    )
    ld.add_argument("--panels", type=int, default=200, help=_("how many panels (default 200, up to 10,000)"))
    ld.add_argument("--days", type=int, default=1, help=_("simulated days (default 1)"))
    ld.add_argument("--events-per-day", type=int, default=100, help=_("events per panel and day (default 100)"))
    ld.add_argument("--seed", type=int, default=1)
    ld.add_argument(
        "--broker",
        help=_(
            "mqtt://HOST:PORT of a running broker whose gateways you run yourself (then --db is "
            "their database); default: our own broker and gateway"
        ),
    )
    ld.add_argument("--db", help=_("the gateways' database URL (default: SQLite in --out)"))
    ld.add_argument("--root", default="rating/v1", help=_("topic root (default rating/v1)"))
    ld.add_argument("--out", default="out/load", help=_("folder for the database and the gateway's log"))
    ld.add_argument("--timeout", type=float, default=3600.0, help=_("give up after this many seconds"))
    ld.set_defaults(func=load_cmd)


def load(args):
    from gateway.cli_common import CliError
    from simulator import scenario

    try:
        return scenario.load(args.scenario, days=args.days, sites=args.sites, seed=args.seed)
    except scenario.ScenarioError as exc:
        raise CliError(_("%s; fix the scenario file (format: simulator/README.md)") % exc) from None


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


def load_cmd(args):
    from gateway.cli_common import CliError
    from simulator import loadgen

    if not 1 <= args.panels <= 10000:
        raise CliError("--panels must be 1..10000, got %d" % args.panels)
    if args.broker and not args.db:
        raise CliError("with --broker give the database its gateways store into (--db URL)")
    try:
        plan = loadgen.Plan(args.panels, args.days, args.events_per_day, args.seed)
    except ValueError as exc:
        raise CliError("%s; fix --panels/--days/--events-per-day" % exc) from None
    print(
        "rating sim load: %d panels x %d days x %d events = %d events"
        % (plan.panels, plan.days, plan.n_events() // plan.days, plan.panels * plan.n_events())
    )
    try:
        res, problems = loadgen.run(
            plan, args.out, broker_url=args.broker, db_url=args.db, root=args.root, log=print, timeout=args.timeout
        )
    except (RuntimeError, OSError) as exc:
        raise CliError("the load run failed: %s" % exc) from None
    print(
        "ingest: %d events acked in %.1f s = %.0f events/s (connect %.1f s; %d published, %d resent after "
        "%d ack timeouts)"
        % (res.events, res.load_s, res.rate(), res.connect_s, res.published, res.resends, res.ack_timeouts)
    )
    if problems:
        print("CHECK FAILED: %d problem(s):" % len(problems), file=sys.stderr)
        for line in problems[:50]:
            print("  - " + line, file=sys.stderr)
        return 1
    print("check: OK (every event stored exactly once)")
    return 0


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
                _("the end-to-end runner is not available (%s); use --pure for the model pipeline") % exc
            ) from None
        try:
            doc, system, w = runner.run(sc, args.out, broker=args.broker, db=args.db, progress=not args.quiet)
        except runner.RunError as exc:
            raise CliError(str(exc)) from None
    elapsed = time.monotonic() - started
    panel_days = len(sc.panels()) * sc.days
    print(summary(sc.meta["name"], panel_days, doc["totals"], elapsed))
    text = report_text(doc, system, w)
    with open(os.path.join(args.out, "report.txt"), "w") as f:
        f.write(text + "\n")
    print(_("truth.json, site.toml and report.txt in %s") % args.out)
    for line in doc.get("runner", {}).get("warnings", []):
        print(_("warning: %s") % line, file=sys.stderr)
    if not args.check:
        return 0
    diffs = check.compare(doc, system)
    diffs += system.get("problems", [])
    if diffs:
        print(
            ngettext(
                "CHECK FAILED: %d difference between the system and the truth:",
                "CHECK FAILED: %d differences between the system and the truth:",
                len(diffs),
            )
            % len(diffs),
            file=sys.stderr,
        )
        print(check.render(diffs), file=sys.stderr)
        return 1
    unsolicited = sum(doc["unsolicited"].values())
    agree = ", ".join(
        (
            ngettext("%d poll", "%d polls", len(doc["polls"])) % len(doc["polls"]),
            ngettext("%d force-majeure report", "%d force-majeure reports", len(doc["fms"])) % len(doc["fms"]),
            ngettext("%d unsolicited press", "%d unsolicited presses", unsolicited) % unsolicited,
        )
    )
    print(_("check: OK (%s agree with the truth)") % agree)
    lost = doc.get("runner", {}).get("lost")
    if lost is not None:
        dropped = sum(v["missing"] for v in lost.values())
        torn = sum(1 for p in doc["lost"] if p["lost"] == "power cut during its journal write")
        print(
            _(
                "events: every press stored exactly once, except %(dropped)d lost to the forced journal overflow "
                "(the gateway reports %(reported)d lost) and %(torn)d torn by power cuts mid-write"
            )
            % {"dropped": dropped, "reported": sum(v["gateway_lost"] for v in lost.values()), "torn": torn}
        )
    return 0


def summary(name, panel_days, totals, elapsed):
    """The run's one-line summary, counted and with decimals as the language writes them."""
    counts = ", ".join(
        (
            ngettext("%d panel-day", "%d panel-days", panel_days) % panel_days,
            ngettext("%d press", "%d presses", totals["presses"]) % totals["presses"],
            ngettext("%d poll", "%d polls", totals["polls"]) % totals["polls"],
            ngettext("%d force-majeure report", "%d force-majeure reports", totals["fm_reports"])
            % totals["fm_reports"],
        )
    )
    return _("%(name)s: %(counts)s in %(seconds)s s (%(rate)s panel-days/s)") % {
        "name": name,
        "counts": counts,
        "seconds": number(elapsed, 1),
        "rate": number(panel_days / max(elapsed, 1e-9), 1),
    }
