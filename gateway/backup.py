"""`rating db backup` / `rating db restore`: a consistent copy of a SQLite store, taken while the
gateway runs, and putting one back (docs/install.md, "Backups").

SQLite's online backup API copies the database page by page under a read transaction, so the
copy is one committed state (never half a batch), WAL included, without stopping the gateway.
The copy is written to a temporary file next to the target (mode 0600: it holds password
hashes), checked (`PRAGMA integrity_check`, the migrations table), flushed to disk and only
then renamed into place: a backup that is there is whole. Restore copies the same way into the
store (through SQLite, so the store's own WAL cannot resurrect old pages) and needs the gateway
stopped. PostgreSQL is backed up with its own tools (pg_dump/pg_restore, docs/install.md).
"""

import contextlib
import os
import sqlite3

from gateway import db as dbmod
from gateway.i18n import _


class BackupError(Exception):
    """What went wrong and what to do, in one line."""


def _sqlite_file(url):
    url = url or dbmod.default_url()
    if url.startswith(("postgresql://", "postgres://")):
        raise BackupError(
            _(
                "%s is PostgreSQL: back it up with `pg_dump -Fc -f FILE` and restore with `pg_restore` "
                "(docs/install.md, Backups)"
            )
            % dbmod._redact(url)
        )
    try:
        return dbmod.sqlite_path(url)
    except dbmod.DatabaseError as exc:
        raise BackupError(str(exc)) from None


def _check(path):
    """Raise BackupError unless `path` is an intact rating store."""
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            has_schema = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(
            _("%(path)s is not a readable SQLite database: %(error)s") % {"path": path, "error": exc}
        ) from None
    if ok != "ok":
        raise BackupError(_("%(path)s is damaged (integrity check: %(result)s)") % {"path": path, "result": ok})
    if not has_schema:
        raise BackupError(_("%s is not a rating database (no schema_migrations table)") % path)


def _copy(src_path, dst_path):
    """SQLite's online backup of src into dst (created when missing)."""
    src = sqlite3.connect("file:%s?mode=ro" % src_path, uri=True, timeout=30)
    try:
        dst = sqlite3.connect(dst_path, timeout=30)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
        finally:
            dst.close()
    finally:
        src.close()


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(db_url, out_path):
    """Copy the store at db_url to out_path (a new file); returns its size in bytes."""
    src = _sqlite_file(db_url)
    if not os.path.isfile(src):
        raise BackupError(_("no database at %s; check --db or $RATING_DB") % src)
    if os.path.exists(out_path):
        raise BackupError(_("%s exists; name a new file (a backup never overwrites one)") % out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise BackupError(_("folder %s does not exist; create it first") % folder)
    tmp = "%s.part-%d" % (out_path, os.getpid())
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        _copy(src, tmp)
        _check(tmp)
        _fsync(tmp)
        os.link(tmp, out_path)  # fails rather than replace a file that appeared meanwhile
    except sqlite3.Error as exc:
        raise BackupError(_("backup of %(db)s failed: %(error)s") % {"db": src, "error": exc}) from None
    except FileExistsError:
        raise BackupError(_("%s exists; name a new file (a backup never overwrites one)") % out_path) from None
    except OSError as exc:
        raise BackupError(_("cannot write %(file)s: %(error)s") % {"file": out_path, "error": exc}) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return os.path.getsize(out_path)


def restore(backup_path, db_url, replace=False):
    """Put the backup at backup_path into the store at db_url (the gateway stopped). An existing
    store is replaced only with replace=True."""
    dst = _sqlite_file(db_url)
    if not os.path.isfile(backup_path):
        raise BackupError(_("no backup at %s") % backup_path)
    _check(backup_path)
    if os.path.exists(dst) and not replace:
        raise BackupError(
            _("a database exists at %s; stop the gateway and add --replace to overwrite it with the backup") % dst
        )
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise BackupError(_("folder %s does not exist; create it first") % folder)
    if not os.path.exists(dst):
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        _copy(backup_path, dst)
        conn = sqlite3.connect(dst)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # what the gateway runs with
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(
            _("restore into %(db)s failed: %(error)s (is the gateway still running?)") % {"db": dst, "error": exc}
        ) from None
    _check(dst)
