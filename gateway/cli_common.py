"""What the gateway's subcommands share: the user-error type, the `--db` option, opening the
database, and a subcommand group.

A handler raises `CliError("what happened; what to do")` for anything the user can fix; the
`rating` command (rating/cli.py) prints it as one line `error: ...` and exits with 2.
"""

import argparse
import os

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


NOT_SQLITE = N_("not an SQLite file")
CREATE_HINT = N_("`rating site apply FILE.toml --db %s` (or `rating gateway run`) creates one")


def open_db(url, hint=None, create=True):
    """The store at `url`, migrated; a CliError naming the problem when it cannot be opened.

    create=False (every command that only reads, or writes into settings that must exist): a
    database that does not exist or was never set up is an error naming the file meant, and
    nothing is created - a mistyped --db must not leave an empty database behind a report that
    says "no polls"."""
    from gateway import db as dbmod
    from gateway.schema import open_database

    url = url or dbmod.default_url()
    try:
        if not create:
            _require_set_up(url)
        return open_database(url)
    except dbmod.DatabaseError as exc:
        raise CliError("%s; %s" % (exc, hint or _("check --db or $RATING_DB"))) from None


def describe_sqlite(url):
    """Which file a SQLite URL means, absolute, with the slash rule when the URL is relative:
    sqlite:///data/r.db is ./data/r.db, sqlite:////data/r.db is /data/r.db."""
    from gateway import db as dbmod

    path = dbmod.sqlite_path(url)
    full = os.path.abspath(path)
    if url.startswith("sqlite:///") and not os.path.isabs(path):
        return _(
            "%(path)s (%(url)s is relative to the current folder; an absolute path takes four slashes: "
            "sqlite:///%(path)s)"
        ) % {"path": full, "url": url}
    return full


def _require_set_up(url):
    """CliError unless `url` names a database some command already set up (migrated)."""
    from gateway import db as dbmod

    if url.startswith(("postgresql://", "postgres://")):
        db = dbmod.connect(url)  # connecting creates nothing
        try:
            ready = db.is_set_up()
        finally:
            db.close()
        if not ready:
            raise CliError(
                _("the database %(url)s was never set up as a rating database; %(create)s")
                % {"url": dbmod._redact(url), "create": _(CREATE_HINT) % dbmod._redact(url)}
            )
        return
    if "://" in url and not url.startswith("sqlite:"):
        dbmod.connect(url)  # raises the URL error
    path = dbmod.sqlite_path(url)
    if path == ":memory:":
        return
    meant = describe_sqlite(url)
    if not os.path.isfile(path):
        raise CliError(_("no database at %(path)s; %(create)s") % {"path": meant, "create": _(CREATE_HINT) % url})
    try:
        ready = dbmod.sqlite_file_is_set_up(path)
    except dbmod.DatabaseError as exc:
        raise CliError(
            _("%(path)s is not a rating database (%(error)s); check --db or $RATING_DB")
            % {"path": meant, "error": _(NOT_SQLITE) if str(exc) == dbmod.NOT_SQLITE else exc}
        ) from None
    if not ready:
        raise CliError(
            _("%(path)s was never set up as a rating database; %(create)s")
            % {"path": meant, "create": _(CREATE_HINT) % url}
        )


def settings_of(db):
    """The settings history (gateway.site.History); from here on the command speaks the
    deployment's language unless the user chose one (--lang, $RATING_LANG)."""
    from gateway import site as site_mod

    history = site_mod.load(db)
    i18n.follow_deployment(history.lang())
    return history
