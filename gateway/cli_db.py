"""`rating db backup` and `rating db restore`: the SQLite store's backups (gateway/backup.py;
PostgreSQL's are pg_dump/pg_restore, docs/install.md)."""

from gateway.cli_common import CliError, add_db, group
from gateway.i18n import _


def register(sub):
    _g, dsub = group(
        sub,
        "db",
        _("back up and restore the database"),
        _(
            "Backups of a SQLite database, taken while the gateway runs (a consistent copy, "
            "checked before it is kept). PostgreSQL: pg_dump and pg_restore, see docs/install.md."
        ),
    )
    b = dsub.add_parser(
        "backup",
        help=_("copy the database to a new file while the gateway runs"),
        description=_(
            "Copy the SQLite database to FILE (a new file, mode 0600: it holds password hashes). "
            "The copy is one committed state, checked, and kept only when whole."
        ),
    )
    add_db(b)
    b.add_argument("file", metavar="FILE", help=_("the backup to write (must not exist)"))
    b.set_defaults(func=cmd_backup)
    r = dsub.add_parser(
        "restore",
        help=_("put a backup back (stop the gateway first)"),
        description=_(
            "Check the backup FILE and copy it into the SQLite database given by --db. Stop the "
            "gateway first; an existing database is replaced only with --replace."
        ),
    )
    add_db(r)
    r.add_argument("file", metavar="FILE", help=_("the backup to restore"))
    r.add_argument("--replace", action="store_true", help=_("overwrite an existing database"))
    r.set_defaults(func=cmd_restore)


def cmd_backup(args):
    from gateway import backup

    try:
        size = backup.backup(args.db, args.file)
    except backup.BackupError as exc:
        raise CliError(str(exc)) from None
    print(_("backup written: %(file)s (%(kb)s KB)") % {"file": args.file, "kb": max(1, size // 1024)})
    return 0


def cmd_restore(args):
    from gateway import backup

    try:
        backup.restore(args.file, args.db, replace=args.replace)
    except backup.BackupError as exc:
        raise CliError(str(exc)) from None
    print(_("restored %(file)s; start the gateway again") % {"file": args.file})
    return 0
