"""`rating`: one console script, one subcommand per job. The composition root: the only
place that knows every package.

Each area of the code base owns a module with a `register(subparsers)` function that adds
its subcommands; a subcommand's parser gets `func=<callable(args) -> int>`. Registration
must stay cheap (no heavy imports at module level) so `rating --help` is instant.

A handler reports what the user can fix by raising its package's user error
(`gateway.cli_common.CliError`, `technician.errors.DeviceError`): printed here as one line
`error: ...`, exit status 2, no traceback.
"""

import argparse
import importlib
import os
import sys

from gateway.cli_common import CliError
from technician.errors import DeviceError

# Modules that add subcommands, in the order they appear in `rating --help`. A module that
# cannot be imported is a broken installation: the error is raised, never skipped.
COMMAND_MODULES = (
    "simulator.demo",  # demo
    "gateway.cli_gateway",  # gateway run, deadletter, replay, record, status
    "gateway.cli_site",  # site apply, rebuild, review, counts import, report
    "gateway.cli_users",  # user add|list|disable|enable|passwd|bootstrap
    "console.cli",  # web
    "simulator.cli",  # sim run
    "technician.cli",  # device list|flash|deploy|test|logs
)

USER_ERRORS = (CliError, DeviceError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rating",
        description=(
            "Rating terminals: three-button customer panels, an MQTT gateway that stores their "
            "events and builds polls, and KPI reports (DI-staff, DI-office, ELI, conversion, "
            "coverage, force-majeure rate). Start with `rating demo`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # A group without its subcommand (e.g. `rating review`) prints that group's help.
        (getattr(args, "_parser", None) or parser).print_help()
        return 2
    try:
        return args.func(args) or 0
    except USER_ERRORS as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rating review list | head`: the reader left; say nothing more (Python's own advice).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
