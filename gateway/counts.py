"""`rating counts import FILE.csv`: transactions and visitors per site (or panel) and interval.

Columns (header row required, `,`- or `;`-separated, UTF-8 with or without a BOM; order free,
extra columns refused) - a Russian Excel "CSV UTF-8" export reads as it is:
    site          office id (as in the site file; an office the settings never had is refused)
    device        optional: panel id when the count belongs to one panel; empty = whole site
    from, to      interval start (inclusive) and end (exclusive): ISO 8601 (2025-01-06T09:00,
                  with an offset or in the office's timezone), 06.01.2025 09:00 (the office's
                  timezone), or Unix epoch milliseconds
    transactions  sales in the interval (whole number >= 0; 12,0 and 1 234 are read as Excel
                  writes them), may be empty
    visitors      people counted at the door (the same), may be empty
Re-importing the same file changes nothing; a corrected file overwrites the values of the same
(site, device, from, to). A file with any bad line imports nothing: every problem is listed
with its line number.
"""

import datetime as _dt
import os
import re

from gateway import csvtext, store, times
from gateway import site as site_mod
from gateway.i18n import _
from protocol.checks import MAX_INT

REQUIRED = ("site", "from", "to")
OPTIONAL = ("device", "transactions", "visitors")
VALUES = ("transactions", "visitors")
# larger values would not fit the BIGINT columns (an OverflowError mid-import, not a line error)
MAX_VALUE = MAX_INT


class CountsError(csvtext.ImportProblems):
    """A counts file with bad lines (gateway/csvtext.ImportProblems)."""


def _bounded(value):
    if value > MAX_VALUE:
        raise ValueError(_("must be at most %(max)d, got %(got)d") % {"max": MAX_VALUE, "got": value})
    return value


# 06.01.2025 09:00[:00]: how Russian Excel writes a date-time cell into a CSV
_RU_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _time(text, tz=None):
    """Epoch ms, ISO 8601 (without an offset: in `tz`, the office's) or dd.mm.yyyy hh:mm."""
    text = text.strip()
    if text.isdigit():
        return _bounded(int(text))
    m = _RU_DATE.match(text)
    if m:
        day, month, year, hour, minute, second = (int(g) if g else 0 for g in m.groups())
        try:
            text = _dt.datetime(year, month, day, hour, minute, second).isoformat()
        except ValueError as exc:
            raise ValueError("%r: %s" % (text, exc)) from None
    if tz is None:
        return times.parse_instant(text)
    return times.parse_instant(text, tz)


def _count(text):
    """A whole number as a person or Excel writes it: 1234, 1 234, 1234,0 (decimal comma)."""
    raw = text
    text = text.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if text == "":
        return None
    whole, sep, fraction = text.replace(",", ".").partition(".")
    if not whole.isdigit() or (sep and not re.fullmatch(r"0+", fraction)):
        raise ValueError(_("must be a whole number >= 0 or empty, got %r") % raw.strip())
    return _bounded(int(whole))


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


def _ids(row, rec, errors, offices):
    site = (row.get("site") or "").strip()
    device = (row.get("device") or "").strip()
    if not site_mod.is_id(site):
        errors.append("site: " + _("%r is not a valid id (%s)") % (site, site_mod.ID_RULE))
    elif offices is not None and site not in offices:
        errors.append(
            "site: "
            + _("no office %(site)r in the settings; the offices are: %(known)s")
            % {"site": site, "known": ", ".join(sorted(offices)) or "-"}
        )
    if device and not site_mod.is_id(device):
        errors.append("device: " + _("%r is not a valid id (%s) or empty") % (device, site_mod.ID_RULE))
    elif device and offices is not None and site in offices and device not in offices[site]:
        errors.append(
            "device: "
            + _("office %(site)s has no panel %(device)r; its panels are: %(known)s")
            % {"site": site, "device": device, "known": ", ".join(sorted(offices[site])) or "-"}
        )
    rec["site"], rec["device"] = site, device


def _interval(row, rec, errors, tz_of):
    tz = tz_of(rec["site"]) if tz_of and site_mod.is_id(rec["site"]) else None
    for col, key in (("from", "from_ms"), ("to", "to_ms")):
        try:
            rec[key] = _time(row.get(col) or "", tz)
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


def _record(row, offices, tz_of):
    """One data row -> (record, [problems without the line number])."""
    if None in row:
        return None, [_("more values than columns")]
    rec, errors = {}, []
    _ids(row, rec, errors, offices)
    _interval(row, rec, errors, tz_of)
    _values(row, rec, errors)
    return rec, errors


def parse(text, source="counts.csv", offices=None, tz_of=None):
    """CSV text -> [dict(site, device, from_ms, to_ms, transactions, visitors)]; pure.
    offices: {site: {device, ...}} the settings know (None: not checked); tz_of(site): the
    timezone a time without an offset is read in (None: such a time is refused)."""
    reader = csvtext.dict_reader(text)
    errors = _check_header(reader.fieldnames or [])
    if errors:
        raise CountsError(errors, source)
    rows = []
    seen = {}
    for row in reader:
        line = reader.line_num
        if csvtext.blank(row):
            continue
        rec, problems = _record(row, offices, tz_of)
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


def offices_of(history):
    """{site: {device, ...}} of every office and panel the settings ever had."""
    out = {key: set() for _kind, key in history.keys("site")}
    for _kind, key in history.keys("panel"):
        site, device = key.split("/", 1)
        out.setdefault(site, set()).add(device)
    return out


def import_file(db, path, now_ms, history=None):
    """Parse and store a counts CSV in one transaction; returns the number of rows. With the
    settings `history`, unknown offices and panels are refused and times without an offset are
    read in their office's timezone. UnicodeDecodeError for a file that is not UTF-8."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    name = os.path.basename(path)
    if history is None:
        rows = parse(text, name)
    else:
        rows = parse(text, name, offices_of(history), lambda site: history.tz(site))
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
