"""Subcommands: user add, list, set, disable, enable, passwd, bootstrap (accounts of `rating web`).

Passwords never go on the command line (it is visible to every user of the machine and kept
in shell histories): they are asked for twice on the terminal, or read as one line from
standard input with --password-stdin (for scripts: `printf '%s\\n' "$PW" | rating user add ...`).
"""

import argparse
import json
import sys
import time

from gateway.cli_common import CliError, add_db, group, open_db
from gateway.i18n import N_, _

ROLE_HELP = N_(
    "admin (accounts, tokens, everything), expert (review queue, verdicts, reports), analyst "
    "(reports, no verdicts), store-manager (reports and panels of their offices), technician "
    "(panel fleet, read-only), integration (a CRM's API token: the follow-ups of its offices, nothing else)"
)


def _now_ms():
    return int(time.time() * 1000)


def _read_password(args, username):
    """The new password: one line from stdin (--password-stdin), else asked twice on the tty."""
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("--password-stdin: nothing on standard input; pipe the password in as one line")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password; pipe it in with --password-stdin")
    import getpass

    first = getpass.getpass("new password for %s: " % username)
    second = getpass.getpass("again: ")
    if first != second:
        raise CliError("the two passwords differ; nothing changed, try again")
    return first


def _known_sites(db):
    from gateway import site as site_mod

    keys = site_mod.load(db).keys("site")
    return {k for _, k in keys} if keys else None  # before the first site apply: not checked


def _known_regions(db):
    """The region ids of the site file (None before the first site apply: not checked)."""
    from gateway import site as site_mod

    history = site_mod.load(db)
    return set(history.region_tree()) if history.keys("site") else None


def cmd_add(args):
    from gateway import users

    db = open_db(args.db)
    try:
        users.check_username(args.username)
        users.check_role(args.role)
        users.check_scope(args.role, args.all_offices, args.office, args.region, _known_sites(db), _known_regions(db))
        password = _read_password(args, args.username)
        user = users.add(
            db,
            args.username,
            password,
            args.role,
            _now_ms(),
            name=args.name,
            all_offices=args.all_offices,
            offices=args.office,
            regions=args.region,
            lang=args.lang,
            known_sites=_known_sites(db),
            known_regions=_known_regions(db),
        )
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        db.close()
    print("account %s (%s, %s) added" % (user["username"], user["role"], _scope_text(user)))
    return 0


def cmd_set(args):
    from gateway import users

    scope_given = bool(args.all_offices or args.office or args.region)
    if args.role is None and args.name is None and not scope_given:
        raise CliError("nothing to change: give --role, --name, or a new scope (--office, --region, --all-offices)")
    db = open_db(args.db)
    try:
        before = users.by_username(db, args.username)
        if before is None:
            raise CliError("no account %r; `rating user list` shows them" % args.username)
        user = users.update(
            db,
            args.username,
            _now_ms(),
            role=args.role,
            name=args.name,
            all_offices=args.all_offices if scope_given else None,
            offices=args.office if scope_given else None,
            regions=args.region if scope_given else None,
            known_sites=_known_sites(db),
            known_regions=_known_regions(db),
        )
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        db.close()
    print("account %s: %s, %s; its open sessions ended" % (user["username"], user["role"], _scope_text(user)))
    return 0


def _scope_text(user):
    if user["all_offices"]:
        return "all offices"
    parts = []
    if user["offices"]:
        parts.append("offices " + ", ".join(user["offices"]))
    if user["regions"]:
        parts.append("regions " + ", ".join(user["regions"]))
    return "; ".join(parts) or "no offices"


def _table(rows, columns):
    """Plain aligned text table; columns = [(key, title)]."""
    cells = [[title for _, title in columns]] + [[str(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def cmd_list(args):
    from gateway import users

    db = open_db(args.db)
    try:
        rows = users.list_users(db)
    finally:
        db.close()
    if args.format == "json":
        keys = ("username", "name", "role", "all_offices", "offices", "regions", "lang", "disabled", "must_change")
        json.dump([{k: u[k] for k in keys} for u in rows], sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if not rows:
        print("no accounts yet; `rating user bootstrap` makes the first admin")
        return 0
    _table(
        [
            {
                "username": u["username"],
                "name": u["name"],
                "role": u["role"],
                "scope": _scope_text(u),
                "lang": u["lang"] or "-",
                "state": "disabled" if u["disabled"] else ("must change password" if u["must_change"] else "active"),
            }
            for u in rows
        ],
        [
            ("username", "account"),
            ("name", "name"),
            ("role", "role"),
            ("scope", "scope"),
            ("lang", "lang"),
            ("state", "state"),
        ],
    )
    return 0


def _set_disabled(args, disabled):
    from gateway import users

    db = open_db(args.db)
    try:
        user = users.set_disabled(db, args.username, disabled, _now_ms())
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        db.close()
    print(
        "account %s %s"
        % (user["username"], "disabled; its sessions and tokens stop working" if disabled else "enabled")
    )
    return 0


def cmd_disable(args):
    return _set_disabled(args, True)


def cmd_enable(args):
    return _set_disabled(args, False)


def cmd_passwd(args):
    from gateway import users

    db = open_db(args.db)
    try:
        if users.by_username(db, args.username) is None:
            raise CliError("no account %r; `rating user list` shows them" % args.username)
        password = _read_password(args, args.username)
        user = users.set_password(db, args.username, password, _now_ms(), must_change=args.must_change)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        db.close()
    print("new password set for %s; its open sessions ended" % user["username"])
    return 0


def cmd_bootstrap(args):
    from gateway import users

    db = open_db(args.db)
    try:
        user, password = users.bootstrap(db, args.username, _now_ms())
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        db.close()
    # The one place a password is shown: once, on this terminal, and it must be changed at the
    # first sign-in, so it is worthless once used.
    print(_("first admin account: %s") % user["username"])
    print(_("one-time password:   %s") % password)
    print(_("sign in with `rating web` and choose a new password; this one works only for that"))
    return 0


def _account_args(p, role_required, all_offices_help):
    """--role, --name and the scope options (--office, --region, --all-offices) of `add` and `set`."""
    p.add_argument(
        "--role",
        required=role_required,
        choices=("admin", "expert", "analyst", "store-manager", "technician", "integration"),
        help=_(ROLE_HELP),
    )
    p.add_argument("--name", dest="name", metavar="TEXT", help=_("the person's full name (shown in the console)"))
    p.add_argument(
        "--office", action="append", default=[], metavar="SITE_ID", help=_("an office in scope (repeatable)")
    )
    p.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="NAME",
        help=_("a region of the site file in scope (repeatable)"),
    )
    p.add_argument("--all-offices", action="store_true", help=_(all_offices_help))


def register(sub):
    _g, usub = group(
        sub,
        "user",
        _("accounts of the web console (rating web): add, list, set, disable, passwd"),
        _(
            "Accounts of the web console. Roles: %s. Each account but an admin has a "
            "scope: offices (site ids of the site file) and/or regions, or all offices. Passwords "
            "are never given on the command line: they are asked for, or read from stdin with "
            "--password-stdin. See docs/console.md."
        )
        % _(ROLE_HELP),
    )

    def cmd(name, func, help_text, description=None):
        p = usub.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_db(p)
        p.set_defaults(func=func)
        return p

    p = cmd("add", cmd_add, _("add an account (the password is asked for)"))
    p.add_argument("username", metavar="NAME", help=_("account name, e.g. elena.ivanova"))
    _account_args(p, role_required=True, all_offices_help=N_("every office (not for store managers, usually)"))
    p.add_argument(
        "--lang", choices=("ru", "en"), help=_("the console's language for this account (default: the site file's)")
    )
    p.add_argument("--password-stdin", action="store_true", help=_("read the password as one line from standard input"))

    p = cmd("list", cmd_list, _("list the accounts (never passwords)"))
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = cmd(
        "set",
        cmd_set,
        _("change an account's role, name or scope (its open sessions end)"),
        _(
            "Change the role, the name or the scope of an account. A scope given (--office, --region, "
            "--all-offices) replaces the whole scope; without one the scope stays (an admin made "
            "anything else needs one). The account's open sessions end, so nobody keeps rights they "
            "lost. Examples:\n"
            "  rating user set anna --role analyst --region north-west\n"
            "  rating user set boris --office msk-tverskaya --office spb-nevsky"
        ),
    )
    p.add_argument("username", metavar="NAME")
    _account_args(p, role_required=False, all_offices_help=N_("every office"))

    p = cmd("disable", cmd_disable, _("disable an account: its sessions and API tokens stop working at once"))
    p.add_argument("username", metavar="NAME")
    p = cmd("enable", cmd_enable, _("enable a disabled account again"))
    p.add_argument("username", metavar="NAME")

    p = cmd("passwd", cmd_passwd, _("set a new password (its open sessions end)"))
    p.add_argument("username", metavar="NAME")
    p.add_argument("--password-stdin", action="store_true", help=_("read the password as one line from standard input"))
    p.add_argument("--must-change", action="store_true", help=_("the person must choose a new one at the next sign-in"))

    p = cmd(
        "bootstrap",
        cmd_bootstrap,
        _("make the first admin account (only while there is none)"),
        _(
            "Make the first admin account with a random one-time password, shown once here; the "
            "first sign-in must replace it. Refused once an active admin exists."
        ),
    )
    p.add_argument("username", metavar="NAME", nargs="?", default="admin", help=_("account name (default admin)"))
