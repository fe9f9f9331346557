"""`rating`: one console script, one subcommand per job. The composition root: the only
place that knows every package.

Each area of the code base owns a module with a `register(subparsers)` function that adds
its subcommands; a subcommand's parser gets `func=<callable(args) -> int>`. Registration
must stay cheap (no heavy imports at module level) so `rating --help` is instant.

A handler reports what the user can fix by raising its package's user error
(`gateway.cli_common.CliError`, `technician.errors.DeviceError`): printed here as one line
`error: ...`, exit status 2, no traceback.

The language of help texts and messages is chosen before the parser is built (`--lang`
anywhere on the line, `$RATING_LANG`, the locale: gateway.i18n.choose); a command that reads
the database then follows the deployment's language unless the user chose one.
"""

import argparse
import importlib
import os
import sys

from gateway import i18n
from gateway.cli_common import CliError
from gateway.i18n import _
from technician import i18n as technician_i18n
from technician.errors import DeviceError

# Modules that add subcommands, in the order they appear in `rating --help`. A module that
# cannot be imported is a broken installation: the error is raised, never skipped.
COMMAND_MODULES = (
    "rating.demo",  # demo (simulator.demo, then the console)
    "gateway.cli_gateway",  # gateway run, deadletter, replay, record, status
    "gateway.cli_site",  # site apply, rebuild, review, counts import, report
    "gateway.cli_transactions",  # transactions import|unmatched|conversion
    "gateway.cli_accounts",  # broker config, broker account, panel rotate-password|credentials
    "gateway.cli_users",  # user add|list|disable|enable|passwd|bootstrap
    "gateway.cli_alerts",  # alerts list|ack|resolve
    "gateway.cli_followups",  # followups list|status
    "gateway.cli_reports",  # reports schedule add|list|remove, reports outbox, reports send-due
    "gateway.cli_db",  # db backup|restore
    "console.cli",  # web
    "simulator.cli",  # sim run
    "technician.cli",  # device list|flash|deploy|test|logs
)

USER_ERRORS = (CliError, DeviceError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rating",
        description=_(
            "Rating terminals: three-button customer panels, an MQTT gateway that stores their "
            "events and builds polls, and KPI reports (DI-staff, DI-office, ELI, conversion, "
            "coverage, force-majeure rate). Start with `rating demo`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--lang",
        choices=i18n.LANGS,
        help=_("language of messages (default: $RATING_LANG, else the deployment's, else the locale's)"),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    technician_i18n.install(i18n._, i18n.ngettext, i18n.number)  # technician/ speaks through the one catalogue
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _lang_flag(argv):
    """(the value of --lang, argv without it): --lang is global, valid anywhere on the line, and
    read before the parser is built so the help is in that language too."""
    lang, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--lang" and i + 1 < len(argv):
            lang, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--lang="):
            lang = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return lang, rest


def main(argv=None):
    flag, argv = _lang_flag(sys.argv[1:] if argv is None else list(argv))
    try:
        lang, explicit = i18n.choose(flag)
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    i18n.activate(lang, explicit)
    with i18n.cli_language(lang):
        return _run(argv, lang if explicit else None)


def _run(argv, lang):
    parser = build_parser()
    args = parser.parse_args(argv)
    if lang:
        args.lang = lang  # the subcommands that take a language (report, review list) get it too
    if not getattr(args, "func", None):
        # A group without its subcommand (e.g. `rating review`) prints that group's help.
        (getattr(args, "_parser", None) or parser).print_help()
        return 2
    try:
        return args.func(args) or 0
    except USER_ERRORS as exc:
        print(_("error: %s") % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rating review list | head`: the reader left; say nothing more (Python's own advice).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
