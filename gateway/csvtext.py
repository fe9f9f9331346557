"""CSV files people make in a spreadsheet: a UTF-8 BOM (Excel's "CSV UTF-8") and `;` as the
separator (what Russian Excel writes, since its decimal separator is the comma) are read as well
as plain comma-separated text. Shared by `rating counts import` and `rating review batch`."""

import csv
import io


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
