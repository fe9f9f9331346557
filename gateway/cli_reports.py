"""`rating reports schedule add|list|remove`, `rating reports outbox`, `rating reports send-due`:
reports e-mailed by themselves (gateway/reportmail.py, docs/reports.md)."""

import argparse
import json
import time

from gateway import times
from gateway.cli_common import CliError, add_db, group, open_db, settings_of
from gateway.i18n import _, ngettext


def _now_ms():
    return int(time.time() * 1000)


def _id(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(_("%r is not a schedule number (see rating reports schedule list)") % text)
    return value


def _who(schedule):
    return schedule["username"] or "role:%s" % schedule["role"]


def cmd_add(args):
    from gateway import reportmail

    db = open_db(args.db, create=False)
    settings_of(db)
    try:
        row = reportmail.add_schedule(db, args.every, args.to, _now_ms(), username=args.user, role=args.role)
    except ValueError as exc:  # ScheduleError, UserError
        raise CliError(str(exc)) from None
    print(
        _("report schedule #%(id)d: %(every)s for %(user)s to %(to)s")
        % {"id": row["id"], "every": row["every"], "user": _who(row), "to": ", ".join(row["recipients"])}
    )
    return 0


def cmd_list(args):
    from gateway import reportmail

    db = open_db(args.db, create=False)
    settings_of(db)
    rows = reportmail.schedules(db)
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(_("no report schedules; add one with rating reports schedule add"))
    for r in rows:
        print(
            "#%-4d %-6s %-20s %s  (%s: %s)"
            % (r["id"], r["every"], _who(r), ", ".join(r["recipients"]), _("last"), r["last_period"] or "-")
        )
        if r["last_error"]:
            print("      " + _("the last report could not be built: %s") % r["last_error"])
    return 0


def cmd_remove(args):
    from gateway import reportmail

    db = open_db(args.db, create=False)
    settings_of(db)
    try:
        reportmail.remove_schedule(db, args.id)
    except reportmail.ScheduleError as exc:
        raise CliError(str(exc)) from None
    print(_("report schedule #%d removed") % args.id)
    return 0


def _state(r):
    if r["delivered_ms"] is not None:
        return _("sent")
    return _("failing") if r["last_error"] else _("queued")


def cmd_outbox(args):
    from gateway import reportmail

    db = open_db(args.db, create=False)
    history = settings_of(db)
    rows = reportmail.outbox(db, args.limit)
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(_("no report messages yet"))
    tz = history.home_tz()
    for r in rows:
        print(
            "#%-5d %-8s %s #%d %s -> %s"
            % (r["id"], _state(r), _("schedule"), r["schedule_id"], r["period"], ", ".join(r["recipients"]))
        )
        detail = ngettext("queued %(at)s, %(n)d attempt", "queued %(at)s, %(n)d attempts", r["attempts"]) % {
            "at": times.format_time(r["created_ms"], tz, seconds=False),
            "n": r["attempts"],
        }
        if r["delivered_ms"] is not None:
            detail += "; " + _("sent %s") % times.format_time(r["delivered_ms"], tz, seconds=False)
        elif r["last_error"]:
            detail += "; " + _("next try %(at)s; last error: %(error)s") % {
                "at": times.format_time(r["next_ms"], tz, seconds=False),
                "error": r["last_error"],
            }
        claimed = r.get("claimed_until")
        if r["delivered_ms"] is None and claimed is not None and claimed > time.time() * 1000:
            # a sender has it now ("Retry now" or another pass): nobody else sends it meanwhile
            detail += "; " + _("being sent (claimed until %s)") % times.format_time(claimed, tz, seconds=False)
        print("       " + detail)
    return 0


def cmd_send_due(args):
    from gateway import reportmail

    db = open_db(args.db, create=False)
    settings_of(db)
    result = reportmail.send_due(db, _now_ms())
    print(
        _("reports: %(queued)d queued, %(sent)d sent, %(failed)d failed, %(pending)d waiting") % result,
    )
    return 1 if result["failed"] else 0


def register(sub):
    _p, rsub = group(
        sub,
        "reports",
        _("reports e-mailed by themselves: schedules, the outbox, sending"),
        _(
            "A schedule sends the report of a console account's offices, in its language, every day, "
            "ISO week or month: the summary in the mail, the full report attached as .xlsx and PDF. "
            "The SMTP server is the site file's [alerts.email]; the password comes from the "
            "alerts.secrets file or $RATING_SMTP_PASSWORD. Run `rating reports send-due` from cron "
            "or the systemd timer deploy/rating-reports.timer (docs/reports.md)."
        ),
    )
    _s, ssub = group(rsub, "schedule", _("add, list or remove report schedules"), _("Report schedules."))
    p = ssub.add_parser("add", help=_("e-mail an account's report every day, week or month"))
    add_db(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="NAME", help=_("the console account: its offices, its language"))
    who.add_argument(
        "--role",
        choices=("admin", "expert", "analyst", "store-manager", "technician"),
        help=_("a role: the offices its enabled accounts see, together; the deployment's language"),
    )
    p.add_argument("--every", required=True, choices=("day", "week", "month"), help=_("how often"))
    p.add_argument("--to", required=True, action="append", metavar="ADDRESS", help=_("an e-mail address (repeatable)"))
    p.set_defaults(func=cmd_add)
    p = ssub.add_parser("list", help=_("list report schedules"))
    add_db(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)
    p = ssub.add_parser("remove", help=_("remove a report schedule and its messages not sent yet"))
    add_db(p)
    p.add_argument("id", type=_id, metavar="ID", help=_("the schedule's number (rating reports schedule list)"))
    p.set_defaults(func=cmd_remove)
    p = rsub.add_parser("outbox", help=_("the report messages: sent, queued, failing (with the error)"))
    add_db(p)
    p.add_argument("--limit", type=int, default=50, metavar="N", help=_("at most N, newest first (default: 50)"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_outbox)
    p = rsub.add_parser("send-due", help=_("queue the reports whose period has closed and send the outbox"))
    add_db(p)
    p.set_defaults(func=cmd_send_due)
