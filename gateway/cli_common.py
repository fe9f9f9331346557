"""What the gateway's subcommands share: the user-error type, the `--db` option, opening the
database, and a subcommand group.

A handler raises `CliError("what happened; what to do")` for anything the user can fix; the
`rating` command (rating/cli.py) prints it as one line `error: ...` and exits with 2.
"""

import argparse

from gateway import i18n
from gateway.i18n import N_, _

DB_HELP = N_(
    "database: sqlite:///path.db, a file path, or postgresql://user@host/db "
    "(default: $RATING_DB, else $RATING_DATA/rating.db, else ./rating-data/rating.db)"
)


class CliError(Exception):
    """An error for the user: the message says what went wrong and what to do."""


def add_db(parser):
    """The `--db URL` option every command that reads or writes the store takes."""
    parser.add_argument("--db", metavar="URL", help=_(DB_HELP))


def group(sub, name, help_text, description):
    """A subcommand group (`rating site ...`); without its subcommand it prints its own help."""
    p = sub.add_parser(
        name, help=help_text, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.set_defaults(_parser=p, func=None)
    return p, p.add_subparsers(dest=name + "_command", metavar="COMMAND")


def open_db(url, hint=None):
    """The store at `url`, migrated; a CliError naming the problem when it cannot be opened."""
    from gateway.db import DatabaseError
    from gateway.schema import open_database

    try:
        return open_database(url)
    except DatabaseError as exc:
        raise CliError("%s; %s" % (exc, hint or _("check --db or $RATING_DB"))) from None


def settings_of(db):
    """The settings history (gateway.site.History); from here on the command speaks the
    deployment's language unless the user chose one (--lang, $RATING_LANG)."""
    from gateway import site as site_mod

    history = site_mod.load(db)
    i18n.follow_deployment(history.lang())
    return history
