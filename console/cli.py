"""`rating web`: serve the console. Registration is cheap; the web stack loads in the handler."""

import argparse

from gateway.i18n import _


def register(sub):
    p = sub.add_parser(
        "web",
        help=_("the web console: review queue, KPI reports, panel fleet, accounts, JSON API"),
        description=(
            _(
                "Serve the web console on the gateway's database: the expert's review queue with "
                "video, KPI reports, the panel fleet, accounts and API tokens, and the JSON API "
                "(/api/v1, OpenAPI at /api/v1/openapi.json). Everything is served by this process; "
                "nothing is loaded from the internet. Accounts: `rating user ...`; the first admin: "
                "`rating user bootstrap`. See docs/console.md."
            )
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from gateway.cli_common import add_db

    add_db(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help=_("address to listen on (default 127.0.0.1; 0.0.0.0 for the office network, best behind a TLS proxy)"),
    )
    p.add_argument("--port", type=int, default=8080, help=_("port (default 8080)"))
    p.add_argument("--lang", choices=("ru", "en"), help=_("default language (default: the site file's)"))
    p.set_defaults(func=cmd_web)


def cmd_web(args):
    from gateway import users
    from gateway.cli_common import CliError, open_db

    if not 0 < args.port < 65536:
        raise CliError("--port must be between 1 and 65535")
    db = open_db(args.db)
    try:
        admins = users.count_admins(db)
        url = db.url
    finally:
        db.close()
    from console import server

    if not admins:
        print(_("no admin account yet: run `rating user bootstrap` (same --db) to make the first one"))
    print(
        _("console: http://%(host)s:%(port)d/  (Ctrl-C stops it)")
        % {"host": args.host if args.host != "0.0.0.0" else "127.0.0.1", "port": args.port}
    )
    try:
        server.serve(url, args.host, args.port, args.lang)
    except OSError as exc:
        raise CliError(
            _("cannot listen on %(host)s:%(port)d: %(error)s")
            % {"host": args.host, "port": args.port, "error": exc.strerror or exc}
        ) from None
    return 0
