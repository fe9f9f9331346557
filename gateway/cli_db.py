"""`rating db backup` and `rating db restore`: the SQLite store's backups (gateway/backup.py;
PostgreSQL's are pg_dump/pg_restore, docs/install.md). `rating db archive | purge |
restore-events | partitions`: raw events archived by month and the retention of what is
derived and archived (gateway/archive.py, docs/partitions.md)."""

import time

from gateway import i18n
from gateway.cli_common import CliError, add_db, group, open_db
from gateway.i18n import _


def register(sub):
    _g, dsub = group(
        sub,
        "db",
        _("back up and restore the database; archive and purge old raw events"),
        _(
            "Backups of a SQLite database, taken while the gateway runs (a consistent copy, "
            "checked before it is kept). PostgreSQL: pg_dump and pg_restore, see docs/install.md. "
            "Raw events archived by month and purged once archived and derived: docs/partitions.md."
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
    _register_retention(dsub)


def _register_retention(dsub):
    a = dsub.add_parser(
        "archive",
        help=_("write a past month of raw events to an archive file"),
        description=_(
            "Write the raw events received in MONTH (UTC) to FOLDER/raw-events-MONTH.jsonl.gz (gzip'd "
            "JSON lines; never overwritten), read it back and record it. With --through, every month "
            "up to and including it that has events and no archive yet. Nothing is deleted: "
            "`rating db purge` does that, for archived and derived months only."
        ),
    )
    add_db(a)
    which = a.add_mutually_exclusive_group(required=True)
    which.add_argument("--month", metavar="YYYY-MM", help=_("the month to archive"))
    which.add_argument("--through", metavar="YYYY-MM", help=_("archive every month up to this one"))
    a.add_argument("--dir", required=True, metavar="FOLDER", help=_("the folder the archives go to"))
    a.set_defaults(func=cmd_archive)
    p = dsub.add_parser(
        "purge",
        help=_("delete raw events that are archived and derived, older than the retention"),
        description=_(
            "The retention of raw events: delete the events received before the month KEEP months "
            "ago, but only from months archived (file present and unchanged) and only events whose "
            "panel is derived through them. Polls and reports derived from them are kept (also by "
            "`rating rebuild`); the events can be put back with `rating db restore-events`."
        ),
    )
    add_db(p)
    p.add_argument("--keep-months", type=int, required=True, metavar="KEEP", help=_("months of raw events kept"))
    p.add_argument("--dry-run", action="store_true", help=_("say what would be deleted, delete nothing"))
    p.set_defaults(func=cmd_purge)
    r = dsub.add_parser(
        "restore-events",
        help=_("put the raw events of archive files back"),
        description=_(
            "Put the events of archive files (raw-events-YYYY-MM.jsonl.gz) back into the database: "
            "only events it stored before and no longer keeps; never a second copy."
        ),
    )
    add_db(r)
    r.add_argument("files", nargs="+", metavar="FILE", help=_("archive files"))
    r.set_defaults(func=cmd_restore_events)
    t = dsub.add_parser(
        "partitions",
        help=_("the monthly partitions (PostgreSQL) and the archived months"),
        description=_(
            "List the monthly partitions of raw events and polls (PostgreSQL; the gateway creates "
            "the coming months every hour) and the archived months. --create makes the coming "
            "months now."
        ),
    )
    add_db(t)
    t.add_argument("--create", action="store_true", help=_("create the partitions of the coming months now"))
    t.set_defaults(func=cmd_partitions)


def _now_ms():
    return int(time.time() * 1000)


def cmd_archive(args):
    from gateway import archive

    db = open_db(args.db, create=False)
    now = _now_ms()
    try:
        if args.month:
            months = [args.month]
        else:
            months = archive.months_to_archive(db, now, archive.month_range(args.through)[0])
    except archive.ArchiveError as exc:
        raise CliError(str(exc)) from None
    for month in months:
        try:
            row = archive.archive_month(db, month, args.dir, now)
        except archive.ArchiveError as exc:
            raise CliError(str(exc)) from None
        print(
            _("archived %(month)s: %(events)s events to %(file)s")
            % {"month": month, "events": i18n.number(row["events"], 0), "file": row["file"]}
        )
    if not months:
        print(_("nothing to archive"))
    return 0


def cmd_purge(args):
    from gateway import archive, partitions

    if args.keep_months < 1:
        raise CliError(_("--keep-months must be 1 or more (the current month is never purged)"))
    db = open_db(args.db, create=False)
    now = _now_ms()
    p = archive.plan(db, args.keep_months, now) if args.dry_run else archive.purge(db, args.keep_months, now)
    said = _("would delete") if args.dry_run else _("deleted")
    print(
        _("%(said)s %(events)s raw events received before %(cutoff)s UTC (months: %(months)s); %(kept)s kept")
        % {
            "said": said,
            "events": i18n.number(p.purge, 0),
            "cutoff": partitions.month_label(p.cutoff_ms),
            "months": ", ".join(p.months) or "-",
            "kept": i18n.number(p.kept, 0),
        }
    )
    if p.stopped:
        print(_("stopped at: %s") % p.stopped)
    return 0


def cmd_restore_events(args):
    from gateway import archive

    db = open_db(args.db, create=False)
    for path in args.files:
        try:
            got = archive.restore(db, path)
        except archive.ArchiveError as exc:
            raise CliError(str(exc)) from None
        print(
            _("%(file)s: %(restored)s events of %(month)s put back")
            % {"file": path, "restored": i18n.number(got["restored"], 0), "month": got["month"]}
        )
    return 0


def cmd_partitions(args):
    from gateway import derive, partitions, store

    db = open_db(args.db, create=False)
    if args.create:
        with db.transaction():
            made = store.ensure_month_partitions(db, _now_ms()) + derive.ensure_month_partitions(db, _now_ms())
        print(_("%s partitions created") % made)
    if db.dialect != "postgresql":
        print(_("SQLite keeps plain tables (no partitions)"))
    for table in ("raw_events", "polls"):
        for part in partitions.listing(db, table):
            bound = partitions.range_of(part["bound"])
            span = partitions.month_label(bound[0]) if bound else _("default")
            print("%-24s %-8s ~%s" % (part["name"], span, i18n.number(part["rows"], 0)))
    for a in store.archives(db):
        state = _("purged") if a["purged_ms"] is not None else _("kept")
        print(
            _("archive %(month)s: %(events)s events, %(state)s, %(file)s")
            % {"month": a["month"], "events": i18n.number(a["events"], 0), "state": state, "file": a["file"]}
        )
    return 0


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
