"""A file of verdicts (`rating review batch FILE.csv`): parsed and checked as a whole, so a bad
line records nothing. Pure: the caller passes the office timezones and records the rows.

Columns (header row; `,` or `;`; order free): id, verdict, reason, and optionally from, to (the
corrected period of a confirmed report, read in its office's timezone without an offset).
"""

from gateway import csvtext, review, times
from gateway.i18n import _, ngettext

REQUIRED = ("id", "verdict")
OPTIONAL = ("reason", "from", "to")
TARGET = {"invalid": review.POLL, "valid": review.POLL, "confirm": review.FM, "reject": review.FM}


class BatchError(csvtext.ImportProblems):
    """A verdict batch with bad lines: nothing recorded, every problem listed."""

    @staticmethod
    def head(n):
        return ngettext(
            "%(source)s: nothing recorded, %(n)d problem:", "%(source)s: nothing recorded, %(n)d problems:", n
        )


def _header(header):
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
    return errors


def _entry(row, tz_of):
    """One line -> ((target, id, verdict, reason, from_ms, to_ms), [problems])."""
    if None in row:
        return None, [_("more values than columns")]
    errors = []
    ident = (row.get("id") or "").strip()
    site = None
    try:
        site = review.parse_id(ident)[0]
    except review.ReviewError as exc:
        errors.append("id: %s" % exc)
    verdict = (row.get("verdict") or "").strip().lower()
    if verdict not in TARGET:
        errors.append("verdict: " + _("must be one of %s, got %r") % (", ".join(TARGET), verdict))
    bounds = []
    for col in ("from", "to"):
        text = (row.get(col) or "").strip()
        if not text:
            bounds.append(None)
            continue
        try:
            bounds.append(times.parse_instant(text, tz_of(site)))
        except ValueError as exc:
            errors.append("%s: %s" % (col, exc))
            bounds.append(None)
    if (bounds[0] is not None or bounds[1] is not None) and verdict != "confirm":
        errors.append(_("from/to only go with the verdict confirm"))
    reason = (row.get("reason") or "").strip()
    if verdict in ("invalid", "reject") and not reason:
        errors.append("reason: " + _("is required for %s") % verdict)
    if errors:
        return None, errors
    return (TARGET[verdict], ident, verdict, reason, bounds[0], bounds[1]), []


def parse(text, tz_of, source="verdicts.csv"):
    """CSV text -> [(line, (target, id, verdict, reason, from_ms, to_ms))]; BatchError listing
    every problem with its line. tz_of(site) is the office's timezone."""
    reader = csvtext.dict_reader(text)
    errors = _header(reader.fieldnames or [])
    if errors:
        raise BatchError(errors, source)
    out, seen = [], {}
    for row in reader:
        if csvtext.blank(row):
            continue
        line = reader.line_num
        entry, problems = _entry(row, tz_of)
        errors += [_("line %(line)d: %(problem)s") % {"line": line, "problem": p} for p in problems]
        if entry is None:
            continue
        key = (entry[0], entry[1])
        if key in seen:
            errors.append(_("line %(line)d: the same id as line %(first)d") % {"line": line, "first": seen[key]})
        seen[key] = line
        out.append((line, entry))
    if not out and not errors:
        errors.append(_("no verdicts in the file"))
    if errors:
        raise BatchError(errors, source)
    return out
