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
from gateway import store

REQUIRED = ("site", "from", "to")
OPTIONAL = ("device", "transactions", "visitors")
MAX_ERRORS = 30


class CountsError(ValueError):
    def __init__(self, errors, source):
        self.errors = errors
        shown = errors[:MAX_ERRORS]
        more = "" if len(errors) <= MAX_ERRORS else "\n  ... and %d more" % (len(errors) - MAX_ERRORS)
        super().__init__(
            "%s: nothing imported, %d problem(s):\n  %s%s" % (source, len(errors), "\n  ".join(shown), more)
        )


def _time(text):
    text = text.strip()
    if text.isdigit():
        return _bounded(int(text))
    return site_mod.to_ms(text)


# larger values would not fit the BIGINT columns (an OverflowError mid-import, not a line error)
MAX_VALUE = 2**53 - 1


def _bounded(value):
    if value > MAX_VALUE:
        raise ValueError("must be at most %d, got %d" % (MAX_VALUE, value))
    return value


def _count(text):
    text = text.strip()
    if text == "":
        return None
    if not text.isdigit():
        raise ValueError("must be a whole number >= 0 or empty, got %r" % text)
    return _bounded(int(text))


def parse(text, source="counts.csv"):
    """CSV text -> [dict(site, device, from_ms, to_ms, transactions, visitors)]; pure."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    errors = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown or not ("transactions" in header or "visitors" in header):
        if missing:
            errors.append("line 1: missing column(s) %s" % ", ".join(missing))
        if unknown:
            errors.append(
                "line 1: unknown column(s) %s (known: %s)" % (", ".join(unknown), ", ".join(REQUIRED + OPTIONAL))
            )
        if not ("transactions" in header or "visitors" in header):
            errors.append("line 1: give a transactions or a visitors column (or both)")
        raise CountsError(errors, source)
    reader.fieldnames = header
    rows = []
    seen = {}
    for row in reader:
        line = reader.line_num
        if all((v or "").strip() == "" for v in row.values()):
            continue  # blank line
        if None in row:
            errors.append("line %d: more values than columns" % line)
            continue
        rec = {}
        site = (row.get("site") or "").strip()
        if not site_mod.is_id(site):
            errors.append("line %d: site: %r is not a valid id ([a-z0-9-], 1-32 chars)" % (line, site))
        rec["site"] = site
        device = (row.get("device") or "").strip()
        if device and not site_mod.is_id(device):
            errors.append("line %d: device: %r is not a valid id ([a-z0-9-], 1-32 chars) or empty" % (line, device))
        rec["device"] = device
        for col, key in (("from", "from_ms"), ("to", "to_ms")):
            try:
                rec[key] = _time(row.get(col) or "")
            except ValueError as exc:
                errors.append("line %d: %s: %s" % (line, col, exc))
                rec[key] = None
        if rec["from_ms"] is not None and rec["to_ms"] is not None and rec["to_ms"] <= rec["from_ms"]:
            errors.append("line %d: to: must be after from" % line)
        for col in ("transactions", "visitors"):
            try:
                rec[col] = _count(row.get(col) or "")
            except ValueError as exc:
                errors.append("line %d: %s: %s" % (line, col, exc))
                rec[col] = None
        if (
            rec["transactions"] is None
            and rec["visitors"] is None
            and not any(
                e.startswith("line %d: transactions" % line) or e.startswith("line %d: visitors" % line) for e in errors
            )
        ):
            errors.append("line %d: give transactions, visitors or both" % line)
        key = (rec["site"], rec["device"], rec["from_ms"], rec["to_ms"])
        if key in seen:
            errors.append("line %d: the same site/device/interval as line %d" % (line, seen[key]))
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
