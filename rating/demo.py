"""`rating demo`: the simulated week (simulator/demo.py), then the web console on its database.

The simulator may not import the console (docs/architecture.md), so the composition root
joins them: after the week is simulated and its report printed, the console is served on
127.0.0.1 (a free port unless --console-port), its URL and the demo accounts' logins are
printed - passwords made for this run (console.demo), shown once on this terminal, so a demo
database left behind opens to nobody who did not see the run - and it serves until Ctrl-C,
which stops it cleanly. --no-console ends after the report (scripts); --console-only serves the
console of the last demo's database again without simulating.
"""

import os
import signal
import time

from gateway.cli_common import CliError
from gateway.i18n import _


def register(sub):
    from simulator import demo as sim_demo

    p = sim_demo.register(sub)
    p.description = (
        (p.description or "")
        + " "
        + _(
            "Then the web console is served on 127.0.0.1 with demo accounts (their passwords are made "
            "for this run and printed once) until Ctrl-C."
        )
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--no-console", action="store_true", help=_("end after the report; do not serve the console"))
    group.add_argument(
        "--console-only",
        action="store_true",
        help=_("do not simulate: serve the console of the last demo in --out again (new passwords)"),
    )
    p.add_argument(
        "--console-port", type=int, default=0, metavar="PORT", help=_("the console's port (default: a free one)")
    )
    p.set_defaults(func=run)
    return p


def run(args, wait=None):
    """The demo, then the console until Ctrl-C. `wait`: what blocks while the console serves
    (default: sleeping until KeyboardInterrupt)."""
    from simulator import demo as sim_demo

    if not 0 <= args.console_port <= 65535:
        raise CliError(_("--console-port must be between 1 and 65535 (or 0: a free one)"))
    db_path = os.path.join(os.path.abspath(args.out), "gateway.db")
    code = 0
    if args.console_only:
        if not os.path.isfile(db_path):
            raise CliError(
                _("no demo database at %(path)s; run `rating demo --out %(out)s` first")
                % {"path": db_path, "out": args.out}
            )
    else:
        code = sim_demo.run(args)
        if args.no_console:
            return code
    serve_console("sqlite:///" + db_path, args.console_port, wait)
    return code


def _sleep_forever():
    while True:
        time.sleep(3600)


def serve_console(db_url, port=0, wait=None):
    """Serve the console with fresh demo accounts until Ctrl-C (or `wait` returns)."""
    from console import demo

    try:
        running, logins = demo.start(db_url, port=port)
    except OSError as exc:
        raise CliError(
            _("cannot serve the console on port %(port)d: %(why)s; give another --console-port")
            % {"port": port, "why": exc}
        ) from None
    print()
    print(_("web console: %s/   (Ctrl-C stops it)") % running.url, flush=True)
    print(_("sign in as (passwords made for this run; they open nothing after it):"))
    for role, account, password in logins:
        print("  %-14s %-11s %s" % (role, account, password))
    print(
        _(
            "The expert clears the review queue with the keyboard (j/k, v/i, c/r, u); the store manager "
            "sees one office. docs/console.md"
        ),
        flush=True,
    )
    old_term = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    try:
        (wait or _sleep_forever)()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
        signal.signal(signal.SIGTERM, old_term)
    print(_("web console stopped"), flush=True)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt
