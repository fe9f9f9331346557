"""`rating followups list|status`: the CRM follow-ups of No and silent polls (gateway/followups.py)
and the delivery to the integrations' webhooks. Settings: the site file's [followups] table
(docs/integrations.md). Customers' loyalty references are never printed here."""

import json

from gateway import i18n, review, times
from gateway.cli_common import CliError, add_db, group, open_db, settings_of
from gateway.i18n import N_, _

STATE_WORDS = {
    "held": N_("held"),
    "sent": N_("sent"),
    "retracted": N_("retracted"),
    "excluded": N_("excluded"),
}
REASON_WORDS = {
    "fm_pending": N_("a force-majeure report covers it, not yet judged"),
    "force_majeure": N_("under a confirmed force majeure"),
    "invalid": N_("the expert marked the poll invalid"),
    "answered": N_("the poll is no longer a No or silent one"),
    "too_old": N_("seen after max_age_h: too late to call"),
}


def cmd_list(args):
    from gateway import followups

    db = open_db(args.db, create=False)
    history = settings_of(db)
    if args.site is not None and history.get("site", args.site, 2**62) is None:
        raise CliError(_("no office %r in the site file; see rating site apply") % args.site)
    state = None if args.state == "all" else args.state
    rows = followups.listing(db, state, None if args.site is None else {args.site}, args.limit)
    if args.format == "json":
        out = [
            {
                "id": review.format_id(r["site"], r["device"], r["open_seq"]),
                "state": r["state"],
                "reason": r["reason"],
                "events": r["events"],
                "opened_ms": r["opened_ms"],
                "opened_local": times.format_iso(r["opened_ms"], history.tz(r["site"], r["opened_ms"])),
            }
            for r in rows
        ]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(_("no follow-ups"))
        return 0
    for r in rows:
        tz = history.tz(r["site"], r["opened_ms"])
        line = "%-28s %-20s %-10s" % (
            review.format_id(r["site"], r["device"], r["open_seq"]),
            times.format_time(r["opened_ms"], tz),
            _(STATE_WORDS.get(r["state"], r["state"])),
        )
        if r["reason"]:
            line += " " + _(REASON_WORDS.get(r["reason"], r["reason"]))
        print(line.rstrip())
    return 0


def cmd_status(args):
    from gateway import followups

    db = open_db(args.db, create=False)
    history = settings_of(db)
    st = followups.status(db)
    if args.format == "json":
        print(json.dumps(st, ensure_ascii=False, indent=2))
        return 0
    print(
        _("follow-ups: %(sent)s sent, %(held)s held, %(retracted)s retracted, %(excluded)s excluded")
        % {k: i18n.number(v, 0) for k, v in st["records"].items()}
    )
    print(
        _("events issued: %(f)s follow-ups, %(r)s retractions")
        % {"f": i18n.number(st["events"]["followup"], 0), "r": i18n.number(st["events"]["retraction"], 0)}
    )
    hooks = followups.config_of(history, times.now_ms())["webhooks"]
    seen = {w["channel"] for w in st["webhooks"]}
    for w in st["webhooks"]:
        line = _("webhook %(name)s: %(n)s queued, %(pending)s waiting") % {
            "name": w["channel"],
            "n": i18n.number(w["n"], 0),
            "pending": i18n.number(w["pending"] or 0, 0),
        }
        if w["oldest_ms"] is not None:
            line += "; " + _("oldest waiting since %s") % times.format_time(w["oldest_ms"], history.home_tz())
        if w["last_error"]:
            line += "; " + _("last error: %s") % w["last_error"]
        print(line)
    for name in sorted(set(hooks) - seen):
        print(_("webhook %s: nothing queued yet") % name)
    if not hooks and not seen:
        print(_("no webhook integration in the site file's [followups.webhooks]; the API still serves them"))
    return 0


def register(sub):
    _p, fsub = group(
        sub,
        "followups",
        _("CRM follow-ups of dissatisfied customers: list, status"),
        _(
            "Every valid No or silent poll not under a confirmed force majeure becomes a follow-up "
            "once its hold is over, sent to the integrations' webhooks and served by the console's "
            "API (GET /api/v1/followups); a later invalid verdict or confirmed force majeure sends a "
            "retraction. Settings: the site file's [followups] table (docs/integrations.md)."
        ),
    )
    p = fsub.add_parser("list", help=_("list follow-up records, newest first"))
    add_db(p)
    p.add_argument("--state", choices=("all", *STATE_WORDS), default="all", help=_("which records (default: all)"))
    p.add_argument("--site", metavar="SITE_ID", help=_("one office's records"))
    p.add_argument("--limit", type=int, default=100, metavar="N", help=_("at most N, newest first (default: 100)"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)
    p = fsub.add_parser("status", help=_("records per state and the webhook outbox per integration"))
    add_db(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_status)
