"""`rating alerts list|ack|resolve`: the alerts the gateway raised (gateway/alerts.py)."""

import argparse
import getpass
import json
import os
import time

from gateway import i18n, times
from gateway.cli_common import CliError, add_db, group, open_db, settings_of
from gateway.i18n import N_, _

RULE_TITLES = {
    "panel_offline": N_("panel offline during opening hours"),
    "stuck_button": N_("button stuck"),
    "clock_unsynced": N_("panel clock not synchronised"),
    "journal_dropping": N_("panel journal dropping events"),
    "config_not_applied": N_("config not applied"),
    "dead_letters": N_("dead letters arriving"),
    "counts_missing": N_("counts not arriving"),
    "negative_run": N_("run of No/silent answers above the own baseline"),
    "di_high": N_("DI above the threshold"),
    "fm_unreviewed": N_("force-majeure reports waiting for review"),
    "fm_rate": N_("force-majeure rate above the threshold"),
}
SEVERITY_WORDS = {"info": N_("info"), "warning": N_("warning"), "critical": N_("critical")}
STATE_WORDS = {"open": N_("open"), "acked": N_("acknowledged"), "resolved": N_("resolved")}
LIST_STATES = ("unresolved", "open", "acked", "resolved", "all")


def _now_ms():
    return int(time.time() * 1000)


def _existing_db(url):
    """open_db, but a SQLite file that does not exist is an error (no empty database behind a typo)."""
    from gateway import db as dbmod

    url = url or dbmod.default_url()
    if not url.startswith(("postgresql://", "postgres://")):
        path = dbmod.sqlite_path(url)
        if path != ":memory:" and not os.path.exists(path):
            raise CliError(_("no database at %s; check --db or $RATING_DB") % path)
    return open_db(url)


def _id(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(_("%r is not an alert number (see rating alerts list)") % text)
    return value


def cmd_list(args):
    from gateway import alerts

    db = _existing_db(args.db)
    history = settings_of(db)
    if args.site is not None and history.get("site", args.site, 2**62) is None:
        raise CliError(_("no office %r in the site file; see rating site apply") % args.site)
    state = None if args.state == "all" else args.state
    rows = alerts.listing(db, state, None if args.site is None else {args.site}, args.limit)
    if args.format == "json":
        out = []
        for r in rows:
            item = {k: r[k] for k in ("id", "state", "rule", "severity", "site", "region", "subject", "summary")}
            item.update({k: r[k] for k in ("raised_ms", "last_ms", "fired", "cleared_ms", "acked_ms", "acked_by")})
            item.update(resolved_ms=r["resolved_ms"], resolved_by=r["resolved_by"], detail=json.loads(r["detail"]))
            out.append(item)
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(_("no alerts"))
        return 0
    for r in rows:
        tz = history.home_tz(r["site"])
        line = "#%-5d %-12s %-8s %s: %s" % (
            r["id"],
            _(STATE_WORDS[r["state"]]),
            _(SEVERITY_WORDS.get(r["severity"], r["severity"])),
            _(RULE_TITLES.get(r["rule"], r["rule"])),
            r["subject"],
        )
        print(line)
        when = _("raised %(at)s, fired %(n)s times") % {
            "at": times.format_time(r["raised_ms"], tz),
            "n": i18n.number(r["fired"]),
        }
        if r["cleared_ms"] is not None and r["resolved_ms"] is None:
            when += "; " + _("condition gone since %s") % times.format_time(r["cleared_ms"], tz)
        if r["acked_by"]:
            when += "; " + _("acknowledged by %s") % r["acked_by"]
        if r["resolved_by"]:
            when += "; " + _("resolved by %s") % r["resolved_by"]
        print("       %s\n       %s" % (r["summary"], when))
    return 0


def _act(args, verb):
    from gateway import alerts

    db = _existing_db(args.db)
    settings_of(db)
    by = args.by or getpass.getuser()
    try:
        row = getattr(alerts, verb)(db, args.id, by, _now_ms())
    except alerts.AlertError as exc:
        if alerts.get(db, args.id) is None:
            raise CliError(_("no alert #%d; see rating alerts list") % args.id) from None
        raise CliError(_("alert #%d is already resolved; nothing to do") % args.id) from exc
    word = _("acknowledged") if verb == "ack" else _("resolved")
    print(_("alert #%(id)d %(word)s by %(by)s") % {"id": row["id"], "word": word, "by": by})
    return 0


def register(sub):
    _p, asub = group(
        sub,
        "alerts",
        _("alerts the gateway raised: list, acknowledge, resolve"),
        _(
            "Alerts raised by the gateway as events are stored: panels offline in opening hours, "
            "stuck buttons, unsynchronised clocks, dropped events, configs not applied, dead "
            "letters, counts not arriving; runs of No/silent answers, DI and force-majeure rates "
            "above their thresholds. Rules, opening hours and channels: the site file's [alerts] "
            "table (docs/alerts.md)."
        ),
    )
    p = asub.add_parser("list", help=_("list alerts (default: those not resolved)"))
    add_db(p)
    p.add_argument("--state", choices=LIST_STATES, default="unresolved", help=_("which alerts (default: unresolved)"))
    p.add_argument("--site", metavar="SITE_ID", help=_("one office's alerts (and the deployment-wide ones)"))
    p.add_argument("--limit", type=int, default=100, metavar="N", help=_("at most N, newest first (default: 100)"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)
    for verb, help_text in (
        ("ack", _("acknowledge an alert: someone is on it")),
        ("resolve", _("resolve an alert: its rule's cooldown starts now")),
    ):
        p = asub.add_parser(verb, help=help_text, description=help_text)
        add_db(p)
        p.add_argument("id", type=_id, metavar="ID", help=_("the alert's number (rating alerts list)"))
        p.add_argument("--by", metavar="NAME", help=_("who (default: the login name)"))
        p.set_defaults(func=lambda args, verb=verb: _act(args, verb))
