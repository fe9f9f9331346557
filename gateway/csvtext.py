"""CSV files people make in a spreadsheet: a UTF-8 BOM (Excel's "CSV UTF-8") and `;` as the
separator (what Russian Excel writes, since its decimal separator is the comma) are read as well
as plain comma-separated text. Shared by `rating counts import`, `rating transactions import`
and `rating review batch`."""

import csv
import io

from gateway.i18n import _, ngettext

MAX_ERRORS = 30  # problems listed in an import's error; the rest are counted


class ImportProblems(ValueError):
    """A file with bad lines, imported not at all: every problem (`errors`), the first
    MAX_ERRORS of them in the message."""

    def __init__(self, errors, source):
        self.errors = errors
        shown = errors[:MAX_ERRORS]
        more = "" if len(errors) <= MAX_ERRORS else "\n  " + _("... and %d more") % (len(errors) - MAX_ERRORS)
        head = self.head(len(errors))
        super().__init__("%s\n  %s%s" % (head % {"source": source, "n": len(errors)}, "\n  ".join(shown), more))

    @staticmethod
    def head(n):
        """The first line's text (a subclass says what was not done: imported, recorded)."""
        return ngettext(
            "%(source)s: nothing imported, %(n)d problem:", "%(source)s: nothing imported, %(n)d problems:", n
        )


def delimiter(text):
    """`;` when the header line has a `;` and no `,` outside quotes, else `,`."""
    header = text.split("\n", 1)[0]
    return ";" if ";" in header and "," not in header else ","


def dict_reader(text):
    """A csv.DictReader over `text` (BOM dropped), its header names stripped."""
    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter(text))
    reader.fieldnames = [h.strip() for h in (reader.fieldnames or [])]
    return reader


def blank(row):
    """A line with no values at all (skipped)."""
    return None not in row and all((v or "").strip() == "" for v in row.values() if isinstance(v, str))
