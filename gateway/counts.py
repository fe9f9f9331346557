"""`rating counts import FILE.csv`: transactions and visitors per site (or panel) and interval.

Columns (header row required, comma-separated, UTF-8; order free, extra columns refused):
    site          office id (as in the site file)
    device        optional: panel id when the count belongs to one panel; empty = whole site
    from, to      interval start (inclusive) and end (exclusive): ISO 8601 with a UTC offset
                  (2025-01-06T09:00:00+03:00, ...Z) or Unix epoch milliseconds
    transactions  sales in the interval (whole number >= 0), may be empty
    visitors      people counted at the door (whole number >= 0), may be empty
Re-importing the same file changes nothing; a corrected file overwrites the values of the same
(site, device, from, to). A file with any bad line imports nothing: every problem is listed
with its line number.
"""

import csv
import io
import os

from gateway import site as site_mod
from gateway import store, times
from gateway.i18n import _, ngettext
from protocol.checks import MAX_INT

REQUIRED = ("site", "from", "to")
OPTIONAL = ("device", "transactions", "visitors")
VALUES = ("transactions", "visitors")
MAX_ERRORS = 30
# larger values would not fit the BIGINT columns (an OverflowError mid-import, not a line error)
MAX_VALUE = MAX_INT


class CountsError(ValueError):
    def __init__(self, errors, source):
        self.errors = errors
        shown = errors[:MAX_ERRORS]
        more = "" if len(errors) <= MAX_ERRORS else "\n  " + _("... and %d more") % (len(errors) - MAX_ERRORS)
        head = ngettext(
            "%(source)s: nothing imported, %(n)d problem:", "%(source)s: nothing imported, %(n)d problems:", len(errors)
        )
        super().__init__("%s\n  %s%s" % (head % {"source": source, "n": len(errors)}, "\n  ".join(shown), more))


def _bounded(value):
    if value > MAX_VALUE:
        raise ValueError(_("must be at most %(max)d, got %(got)d") % {"max": MAX_VALUE, "got": value})
    return value


def _time(text):
    text = text.strip()
    if text.isdigit():
        return _bounded(int(text))
    return times.parse_instant(text)


def _count(text):
    text = text.strip()
    if text == "":
        return None
    if not text.isdigit():
        raise ValueError(_("must be a whole number >= 0 or empty, got %r") % text)
    return _bounded(int(text))


def _check_header(header):
    """Problems with the header row (line 1)."""
    errors = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing:
        errors.append(_("line 1: missing column(s) %s") % ", ".join(missing))
    if unknown:
        errors.append(
            _("line 1: unknown column(s) %(unknown)s (known: %(known)s)")
            % {"unknown": ", ".join(unknown), "known": ", ".join(REQUIRED + OPTIONAL)}
        )
    if not any(c in header for c in VALUES):
        errors.append(_("line 1: give a transactions or a visitors column (or both)"))
    return errors


def _ids(row, rec, errors):
    site = (row.get("site") or "").strip()
    if not site_mod.is_id(site):
        errors.append("site: " + _("%r is not a valid id (%s)") % (site, site_mod.ID_RULE))
    device = (row.get("device") or "").strip()
    if device and not site_mod.is_id(device):
        errors.append("device: " + _("%r is not a valid id (%s) or empty") % (device, site_mod.ID_RULE))
    rec["site"], rec["device"] = site, device


def _interval(row, rec, errors):
    for col, key in (("from", "from_ms"), ("to", "to_ms")):
        try:
            rec[key] = _time(row.get(col) or "")
        except ValueError as exc:
            errors.append("%s: %s" % (col, exc))
            rec[key] = None
    if rec["from_ms"] is not None and rec["to_ms"] is not None and rec["to_ms"] <= rec["from_ms"]:
        errors.append("to: " + _("must be after from"))


def _values(row, rec, errors):
    bad = False
    for col in VALUES:
        try:
            rec[col] = _count(row.get(col) or "")
        except ValueError as exc:
            errors.append("%s: %s" % (col, exc))
            rec[col] = None
            bad = True
    if not bad and rec["transactions"] is None and rec["visitors"] is None:
        errors.append(_("give transactions, visitors or both"))


def _record(row):
    """One data row -> (record, [problems without the line number])."""
    if None in row:
        return None, [_("more values than columns")]
    rec, errors = {}, []
    _ids(row, rec, errors)
    _interval(row, rec, errors)
    _values(row, rec, errors)
    return rec, errors


def parse(text, source="counts.csv"):
    """CSV text -> [dict(site, device, from_ms, to_ms, transactions, visitors)]; pure."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    errors = _check_header(header)
    if errors:
        raise CountsError(errors, source)
    reader.fieldnames = header
    rows = []
    seen = {}
    for row in reader:
        line = reader.line_num
        if all((v or "").strip() == "" for v in row.values() if isinstance(v, str)) and None not in row:
            continue  # blank line
        rec, problems = _record(row)
        errors += [_("line %(line)d: %(problem)s") % {"line": line, "problem": p} for p in problems]
        if rec is None:
            continue
        key = (rec["site"], rec["device"], rec["from_ms"], rec["to_ms"])
        if key in seen:
            errors.append(
                _("line %(line)d: the same site/device/interval as line %(first)d") % {"line": line, "first": seen[key]}
            )
        seen[key] = line
        rows.append(rec)
    if errors:
        raise CountsError(errors, source)
    return rows


def import_file(db, path, now_ms):
    """Parse and store a counts CSV in one transaction; returns the number of rows."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    name = os.path.basename(path)
    rows = parse(text, name)
    with db.transaction():
        for r in rows:
            store.insert_counts(
                db,
                r["site"],
                r["device"],
                r["from_ms"],
                r["to_ms"],
                r["transactions"],
                r["visitors"],
                "csv:" + name,
                now_ms,
            )
    return len(rows)
