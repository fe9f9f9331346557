"""`rating`: one console script, one subcommand per job.

Each area of the code base owns a module with a `register(subparsers)` function that adds
its subcommands; a subcommand's parser gets `func=<callable(args) -> int>`. Registration
must stay cheap (no heavy imports at module level) so `rating --help` is instant.
"""
import argparse
import importlib
import os
import sys

# Modules that add subcommands, in the order they appear in `rating --help`.
COMMAND_MODULES = (
    "gateway.cli_demo",      # demo
    "gateway.cli_gateway",   # gateway run, deadletter, replay, record, status
    "gateway.cli_site",      # site apply, rebuild, review, counts import, report
    "simulator.cli",         # sim run
    "gateway.device.cli",    # device list|flash|deploy|test|logs
)


class CliError(Exception):
    """An error for the user: the message says what went wrong and what to do."""


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
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "?"):  # a real missing dependency inside it
                raise
            continue
        module.register(sub)
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
    except CliError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rating review list | head`: the reader left; say nothing more (Python's own advice).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    # Run through the imported module so `CliError` is the class the subcommands raise.
    from gateway.cli import main as _main
    sys.exit(_main())
