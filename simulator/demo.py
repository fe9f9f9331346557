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

from gateway import i18n
from gateway.i18n import N_, _, ngettext

DESCRIPTION = N_(
    "Starts the embedded MQTT broker (amqtt, gateway/broker.py) and the gateway (`rating gateway run` "
    "into SQLite), then simulates a week of a small chain (simulator/scenarios/demo-week.toml): every "
    "panel runs the real firmware, customers and sellers press buttons (with contact bounce), Wi-Fi "
    "drops and a broker outage happen. Afterwards the hourly counts are published, the expert's "
    "verdicts recorded and the KPI report printed (per employee and per office, with intervals, flags "
    "and the bottleneck diagnosis), checked against the simulation's ground truth. Files land in --out."
)
DEMO_SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios", "demo-week.toml")


def register(sub):
    p = sub.add_parser(
        "demo",
        help=_("simulate a week of a small chain end to end and print the KPI report"),
        description=_(DESCRIPTION),
    )
    p.add_argument(
        "--out", default="out/demo", help=_("where the database, reports, truth and site file go (default out/demo)")
    )
    p.add_argument("--days", type=int, default=None, help=_("simulate fewer days (default: the scenario's 7)"))
    p.add_argument("--seed", type=int, default=None, help=_("another seed gives another week"))
    p.add_argument(
        "--broker",
        default="embedded",
        help=_(
            "'embedded' (default: the gateway's amqtt broker), 'mosquitto' (our own, if "
            "installed) or mqtt://HOST:PORT of a running broker"
        ),
    )
    p.set_defaults(func=run)


def run(args):
    from gateway import report
    from gateway.cli_common import CliError
    from simulator import check, runner, scenario

    try:
        sc = scenario.load(DEMO_SCENARIO, days=args.days, seed=args.seed)
    except scenario.ScenarioError as exc:
        raise CliError(_("%s; --days must be at least 1") % exc) from None
    out = os.path.abspath(args.out)
    print(
        "rating demo: %s, %s, %s"
        % (
            ngettext("%d office", "%d offices", len(sc.sites)) % len(sc.sites),
            ngettext("%d panel running the real firmware", "%d panels running the real firmware", len(sc.panels()))
            % len(sc.panels()),
            ngettext("%d simulated day", "%d simulated days", sc.days) % sc.days,
        )
    )
    print(
        _("  broker: %(broker)s; gateway: rating gateway run -> %(db)s")
        % {
            "broker": _("embedded (amqtt)") if args.broker == "embedded" else args.broker,
            "db": os.path.join(out, "gateway.db"),
        }
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
        _("simulated %(panel_days)s in %(seconds)s: %(visitors)s, %(transactions)s, %(presses)s -> %(polls)s")
        % {
            "panel_days": ngettext("%d panel-day", "%d panel-days", len(sc.panels()) * sc.days)
            % len(sc.panels())
            * sc.days,
            "seconds": ngettext("%d second", "%d seconds", round(elapsed)) % round(elapsed),
            "visitors": ngettext("%d visitor", "%d visitors", t["visitors"]) % t["visitors"],
            "transactions": ngettext("%d transaction", "%d transactions", t["transactions"]) % t["transactions"],
            "presses": ngettext("%d press", "%d presses", t["presses"]) % t["presses"],
            "polls": ngettext("%d poll", "%d polls", t["polls"]) % t["polls"],
        }
    )
    print(
        _("  of them silent: %(silent)s; %(fm)s; %(unsolicited)s")
        % {
            "silent": ngettext("%d poll", "%d polls", t["silent"]) % t["silent"],
            "fm": ngettext("%d force-majeure report", "%d force-majeure reports", t["fm_reports"]) % t["fm_reports"],
            "unsolicited": ngettext("%d unsolicited press", "%d unsolicited presses", t["unsolicited"])
            % t["unsolicited"],
        }
    )
    print(
        _("faults on the way: %(drops)s, %(outages)s, %(reboots)s, %(cuts)s")
        % {
            "drops": ngettext("%d Wi-Fi drop", "%d Wi-Fi drops", st["wifi_drops"]) % st["wifi_drops"],
            "outages": ngettext("%d broker outage", "%d broker outages", st["broker_outages"]) % st["broker_outages"],
            "reboots": ngettext("%d panel reboot", "%d panel reboots", st["reboots"]) % st["reboots"],
            "cuts": ngettext("%d power cut", "%d power cuts", st["power_cuts"]) % st["power_cuts"],
        }
    )
    rep = system["report"]
    if i18n.chosen() and i18n.current() != rep["site"]["lang"]:
        # the user chose a language (--lang, $RATING_LANG) other than the demo site file's
        rep = _reports_in(out, i18n.current(), rep["site"]["generated_ms"])
    text = report.render_table(rep["employee"]) + "\n\n" + report.render_table(rep["site"])
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(text + "\n")
    print()
    print(text)
    print()
    diffs = check.compare(doc, system) + system["problems"]
    if diffs:
        print(
            _("ground-truth check: %(n)s\n%(list)s")
            % {"n": ngettext("%d difference", "%d differences", len(diffs)) % len(diffs), "list": check.render(diffs)}
        )
    else:
        print(
            _(
                "ground-truth check: every event stored exactly once; every poll, answer, force-majeure "
                "report and KPI matches what really happened."
            )
        )
    for line in doc["runner"].get("warnings", []):
        print(_("note: %s") % line)
    db = "sqlite:///" + os.path.join(out, "gateway.db")
    print()
    print(_("Where to look next (`rating` is .venv/bin/rating; `. .venv/bin/activate` puts it on PATH):"))
    print(_("  %s/report.txt      this report (report.json: the same as data)") % args.out)
    print(_("  rating status --db %s      panels, backlog, lost events") % db)
    print("  rating report --db %s --by device --period day" % db)
    print(_("  rating review list --db %s      what the expert checks") % db)
    print(_("  %s/truth.json      what really happened (every press, poll, force majeure, counts)") % args.out)
    print(_("  %s/site.toml       the site file the gateway got (rating site apply)") % args.out)
    print(_("  rating sim run simulator/scenarios/chain-week.toml --check   20 offices, every fault"))
    return 1 if diffs else 0


def _reports_in(out, lang, now_ms):
    """The demo's two reports again, in `lang`, from its database."""
    from gateway import report, schema

    db = schema.open_database("sqlite:///" + os.path.join(out, "gateway.db"))
    try:
        return {by: report.build_report(db, by=by, now_ms=now_ms, lang=lang) for by in ("employee", "site")}
    finally:
        db.close()
