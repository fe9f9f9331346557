"""Archives of raw events, month by month, and the retention that purges what is both derived
and archived (`rating db archive | purge | restore-events`; docs/partitions.md).

Archive. A month is the events *received* in it (UTC; the partition on PostgreSQL). Only a
month that is over is archived: received_ms is the gateway's clock, so nothing is added to it
afterwards. The file is `raw-events-YYYY-MM.jsonl.gz`: gzip'd JSON lines, a header line
({"format": "rating-raw-events", "version": 1, "month", "columns"}) then one JSON array per
event in (site, device, seq) order - readable with zcat/jq, put back by `restore`. It is
written to a temporary file, flushed, read back and counted, and only then renamed into
place and recorded (raw_archives, with its sha256): an archive that is recorded is whole.

Purge (the retention). `purge(keep_months)` deletes the event rows received before the start
of the month `keep_months` before the current one, but only
- months that are archived, with their file still there and unchanged (sha256) and the
  month's event count the one archived (otherwise: archive it again), taken oldest first
  (a month not archived stops the purge there);
- per panel, events at or below the seq through which the panel is derived with the settings
  in force (derive.derived_through) and below any seq that arrived after the cutoff (a gap
  filled late): the rest stays for a later purge.
Before deleting, each panel's derivation gets a checkpoint at its last purged seq
(derive.make_checkpoint): `rating rebuild` and re-derivations after `rating site apply` keep
the rows derived from purged events and go on from there. The event keys stay
(raw_event_keys): a purged event resent later is still a duplicate, and the acks and gap
checks see no hole. On PostgreSQL a month partition whose rows all go is dropped whole.
"""

import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field

from gateway import derive, partitions, store
from gateway.i18n import _

FORMAT = "rating-raw-events"
VERSION = 1
PAGE = 5000


class ArchiveError(Exception):
    """What went wrong and what to do, in one line."""


def file_name(month: str) -> str:
    return "raw-events-%s.jsonl.gz" % month


def month_range(month: str) -> tuple[int, int]:
    try:
        start = partitions.parse_month(month)
    except ValueError:
        raise ArchiveError(_("%s is not a month: write it as YYYY-MM, e.g. 2025-01") % month) from None
    y, m = partitions.month_of(start)
    return start, partitions.month_start_ms(y, m + 1)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def months_to_archive(db, now_ms: int, through_ms: int | None = None) -> list[str]:
    """The months (YYYY-MM) that are over by now_ms (and start at or before through_ms, when
    given), hold events and have no archive yet, oldest first."""
    done = {a["month"] for a in store.archives(db)}
    lo, _hi = store.received_range(db)
    out: list[str] = []
    if lo is None:
        return out
    t = partitions.month_start_ms(*partitions.month_of(lo))
    while True:
        month = partitions.month_label(t)
        nxt = month_range(month)[1]
        if nxt > now_ms or (through_ms is not None and t > through_ms):
            return out
        if month not in done and store.count_received(db, t, nxt):
            out.append(month)
        t = nxt


def archive_month(db, month: str, folder: str, now_ms: int) -> dict:
    """Write the events received in `month` to `folder`/raw-events-MONTH.jsonl.gz and record
    it; returns the raw_archives row. Refuses a month not over yet, one already purged, and an
    existing file (never overwritten)."""
    from_ms, to_ms = month_range(month)
    if to_ms > now_ms:
        raise ArchiveError(_("%s is not over yet: only past months are archived") % month)
    done = {a["month"]: a for a in store.archives(db)}.get(month)
    if done and (done["purged_ms"] is not None or done["purged"]):
        raise ArchiveError(_("%(month)s was archived to %(file)s and purged already") % done)
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise ArchiveError(_("no folder %s: create it first (it should be backed up)") % folder)
    path = os.path.join(folder, file_name(month))
    if os.path.exists(path):
        raise ArchiveError(_("%s exists: archives are never overwritten; move it away first") % path)
    part = path + ".part"
    n = _write(db, part, month, from_ms, to_ms)
    if _count_lines(part) != n:
        os.unlink(part)
        raise ArchiveError(_("the archive %s did not read back whole; nothing recorded") % part)
    os.rename(part, path)
    _sync_dir(folder)
    with db.transaction():
        store.record_archive(db, month, from_ms, to_ms, path, n, sha256_of(path), now_ms)
    return {a["month"]: a for a in store.archives(db)}[month]


def _write(db, part: str, month: str, from_ms: int, to_ms: int) -> int:
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n = 0
    with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        header = {"format": FORMAT, "version": VERSION, "month": month, "columns": list(store.EVENT_COLUMNS)}
        out.write((json.dumps(header) + "\n").encode("utf-8"))
        for page in store.received_pages(db, from_ms, to_ms, PAGE):
            lines = [json.dumps([e[c] for c in store.EVENT_COLUMNS], ensure_ascii=False) for e in page]
            out.write(("\n".join(lines) + "\n").encode("utf-8"))
            n += len(page)
        out.flush()
        raw.flush()
        os.fsync(raw.fileno())
    return n


def _count_lines(path: str) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


def _sync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_archive(path: str):
    """(header, pages of event dicts) of an archive file; ArchiveError when it is none."""
    try:
        f = gzip.open(path, "rt", encoding="utf-8")
        header = json.loads(f.readline())
    except (OSError, ValueError, EOFError) as exc:
        raise ArchiveError(_("%(file)s is not a raw-event archive: %(error)s") % {"file": path, "error": exc}) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        f.close()
        raise ArchiveError(_("%s is not a raw-event archive of this version") % path)
    columns = header["columns"]

    def pages():
        with f:
            page = []
            for line in f:
                page.append(dict(zip(columns, json.loads(line), strict=True)))
                if len(page) >= PAGE:
                    yield page
                    page = []
            if page:
                yield page

    return header, pages()


def restore(db, path: str) -> dict:
    """Put the events of an archive file back into the store (those whose key the store has
    and whose row it no longer keeps). When no archived month is purged any more, the
    derivation checkpoints go: the next rebuild derives every panel from its first event."""
    header, pages = read_archive(path)
    month = header["month"]
    from_ms, to_ms = month_range(month)
    with db.transaction():  # PostgreSQL: the month's partition again, if it was dropped
        store.ensure_month_partition(db, from_ms)
    before = store.count_received(db, from_ms, to_ms)
    for page in pages:
        with db.transaction():
            store.restore_events(db, page)
    after = store.count_received(db, from_ms, to_ms)
    with db.transaction():
        row = {a["month"]: a for a in store.archives(db)}.get(month)
        if row:
            store.mark_purged(db, month, max(0, row["events"] - after), None)
        if not any(a["purged"] for a in store.archives(db)):
            derive.drop_checkpoints(db)
    return {"month": month, "restored": after - before, "events": after}


@dataclass
class Plan:
    cutoff_ms: int  # events received before it may go
    months: list[str] = field(default_factory=list)  # archived months the purge covers
    through: dict[tuple[str, str], int] = field(default_factory=dict)  # panel -> last seq purged
    purge: int = 0  # event rows that go
    kept: int = 0  # event rows before the cutoff that stay (not derived yet, or a gap filled late)
    stopped: str = ""  # why the purge stops before the retention's cutoff ("" when it does not)


def plan(db, keep_months: int, now_ms: int) -> Plan:
    """What purge(keep_months) would delete (nothing is changed)."""
    y, m = partitions.month_of(now_ms)
    limit = partitions.month_start_ms(y, m - keep_months)
    lo, _hi = store.received_range(db)
    archived = {a["month"]: a for a in store.archives(db)}
    cutoff = limit if lo is None else partitions.month_start_ms(*partitions.month_of(lo))
    covered = []
    stopped = ""
    while lo is not None and cutoff < limit:
        month = partitions.month_label(cutoff)
        nxt = month_range(month)[1]
        n = store.count_received(db, cutoff, nxt)
        if n:
            stopped = _unusable(archived.get(month), n, month)
            if stopped:
                break
            covered.append(month)
        cutoff = nxt
    out = Plan(cutoff_ms=cutoff, months=covered, stopped=stopped)
    for site, device, top, n in store.received_before(db, cutoff):
        through = min(top, derive.derived_through(db, site, device))
        late = store.first_seq_from(db, site, device, cutoff)
        if late is not None:
            through = min(through, late - 1)
        if through > derive.checkpoint_seq(db, site, device):
            out.through[(site, device)] = through
        going = store.count_through(db, site, device, through, cutoff) if through > 0 else 0
        out.purge += going
        out.kept += n - going
    return out


def _unusable(row, n: int, month: str) -> str:
    """Why an archived month cannot be purged ("" when it can)."""
    if row is None:
        return _("%s is not archived: run `rating db archive --month %s --dir FOLDER`") % (month, month)
    if row["events"] - row["purged"] != n:
        return _("%(month)s changed since it was archived (%(then)d events, now %(now)d): archive it again") % {
            "month": month,
            "then": row["events"] - row["purged"],
            "now": n,
        }
    if not os.path.exists(row["file"]) or sha256_of(row["file"]) != row["sha256"]:
        return _("the archive of %(month)s (%(file)s) is missing or changed: archive it again") % row
    return ""


def purge(db, keep_months: int, now_ms: int) -> Plan:
    """Delete what plan() says: checkpoints first (one panel a transaction), then the rows
    and the month records in one transaction."""
    p = plan(db, keep_months, now_ms)
    if not p.through:
        return p
    done = {}
    for (site, device), through in sorted(p.through.items()):
        with db.transaction():
            done[(site, device)] = derive.make_checkpoint(db, site, device, through, now_ms)
    with db.transaction():
        p.purge = store.purge_received_before(db, p.cutoff_ms, done)
        rows = {a["month"]: a for a in store.archives(db)}
        for month in p.months:
            left = store.count_received(db, *month_range(month))
            store.mark_purged(db, month, rows[month]["events"] - left, None if left else now_ms)
    return p
