"""The report for people: a text table, CSV that Excel opens as it is, an .xlsx workbook, and a
compact pivot (rows x periods) of one figure. Pure text/bytes out of the report dict, except
`write_*`, which write a file atomically (a temporary file in the same folder, then renamed:
a failed write leaves nothing behind).

Times are shown as local dates in the office's timezone (the row's `timezone`), never epoch ms.
CSV: UTF-8 with a BOM when written to a file (Excel then reads the Cyrillic right); with
lang ru `;` between fields and decimal commas (what Russian Excel expects), else `,` and
decimal points. Shares stay fractions (0.24 = 24 %) in CSV; the workbook stores them as numbers
with a % format.
"""

import contextlib
import csv
import datetime as _dt
import functools
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from gateway import i18n, report_pos
from gateway.report_core import BYS, FIGURES

Report = Mapping[str, Any]
SIGNED = ("eli",)


# --- small formatting helpers ------------------------------------------------------------------


def _local(iso: str | None) -> _dt.datetime | None:
    """A row's local ISO time as a naive local datetime (what a spreadsheet shows)."""
    return None if iso is None else _dt.datetime.fromisoformat(iso).replace(tzinfo=None)


@functools.lru_cache(maxsize=4096)  # a report's rows share few period bounds: parsed once each
def local_text(iso: str | None) -> str:
    when = _local(iso)
    if when is None:
        return ""
    return when.strftime("%Y-%m-%d") if when.time() == _dt.time(0) else when.strftime("%Y-%m-%d %H:%M")


def pct_text(value: float | None, signed: bool = False, decimals: int = 0) -> str:
    """'24 %', '+32 %', '0.4 %'."""
    if value is None:
        return ""
    if 0 < abs(value) < 0.01:
        decimals = max(decimals, 1)
    text = "%.*f" % (decimals, value * 100.0)
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    if signed and not text.startswith("-") and text.strip("0.") != "":
        text = "+" + text
    return text + " %"


def _cell(fig: Mapping[str, Any] | None, lang: str) -> str:
    if fig is None:
        return "-"
    if fig["value"] is None:
        return "%s (%s)" % (i18n.t(lang, "na"), fig["reason"])
    return _figure_text(fig["text"], lang)


def _figure_text(text: str, lang: str) -> str:
    """kpi_core writes a figure the English way ('+12 % (-3 to +20 %, n=230)', '0.4 %'); in
    Russian the interval of a signed figure reads 'от -3 до +20 %' and decimals take a comma."""
    if lang != "ru":
        return text
    text = re.sub(r"\(([-+]?[\d.]+) to ([-+]?[\d.]+ %)", r"(от \1 до \2", text)
    return re.sub(r"(\d)\.(\d)", r"\1,\2", text)


# --- the text table ----------------------------------------------------------------------------


def _k_text(k, lang):
    """The correction coefficient as the language writes it: 0,8 in Russian, 0.8 in English."""
    digits = len(("%g" % k).partition(".")[2])
    return i18n.number(k, digits, lang)


def _title(report: Report) -> str:
    lang = report["lang"]
    head = "%s (%s: %s; %s: %s; k = %s" % (
        i18n.t(lang, "report_title"),
        i18n.t(lang, "by"),
        i18n.t(lang, report["by"]),
        i18n.t(lang, "period"),
        i18n.t(lang, "period_" + report["period"]),
        _k_text(report["k"], lang),
    )
    if report.get("sort"):
        head += "; %s: %s" % (i18n.t(lang, "sorted_by"), i18n.t(lang, report["sort"]))
    return head + ")"


def render_table(report: Report) -> str:
    """The report as text: one block per row (figures with intervals, flags), the total, the
    bottleneck diagnosis per office."""
    buf = io.StringIO()
    write_table(report, buf)
    return buf.getvalue().rstrip() + "\n"


def write_table(report: Report, out: TextIO) -> None:
    """render_table written to `out` row by row as the rows come (report["rows"] may be an
    iterator: nothing but the current row is held)."""
    lang = report["lang"]
    out.write(_title(report) + "\n")
    n = 0
    for row in report["rows"]:
        n += 1
        _write_block(out, row, lang)
    if n == 0:
        out.write(i18n.t(lang, "no_rows") + "\n")
    if n > 1:
        _write_block(out, dict(report["total"], label="=" * 3), lang)
    first = True
    for b in report["bottleneck"]:
        if first:
            out.write("\n%s:\n" % i18n.t(lang, "bottleneck"))
            first = False
        period = "" if b["period"] == "all" else " [%s]" % b["period"]
        if b["verdict"] is None:
            out.write("  %s%s: %s\n" % (b["label"], period, b["verdict_text"]))
        else:
            out.write("  %s%s: %s. %s\n" % (b["label"], period, b["verdict_text"], b["reason"]))
    report_pos.write_text(report.get("pos"), out, lang)


def _write_block(out: TextIO, row: Mapping[str, Any], lang: str) -> None:
    title = row["label"] if row["key"] != "*" else i18n.t(lang, "total")
    if row.get("rank"):
        title = "%s. %s" % (row.get("rank_range") or row["rank"], title)
    elif row.get("rank_note"):
        title += "  (%s)" % i18n.t(lang, "too_few_to_rank")
    if row["period"] != "all":
        title += "  [%s]" % row["period"]
    lines = ["", "%s  (%s: %d)" % (title, i18n.t(lang, "polls"), row["polls"]["valid"])]
    for name in FIGURES:
        fig = row["kpi"][name]
        if fig is None:
            continue
        lines.append("  %-20s %s" % (i18n.t(lang, name), _cell(fig, lang)))
    for f in row["flags"]:
        lines.append("  ! %s" % f["message"])
    out.write("\n".join(lines) + "\n")


# --- CSV ---------------------------------------------------------------------------------------

CSV_FIELDS = [
    "key",
    "label",
    "period",
    "period_start",
    "period_end",
    "timezone",
    "rank",
    "rank_range",
    "polls_valid",
    "polls_invalid",
]
for _name in FIGURES:
    CSV_FIELDS += [_name, _name + "_low", _name + "_high", _name + "_n"]
CSV_FIELDS += [
    "transactions",
    "visitors",
    "fm_reports",
    "fm_confirmed",
    "fm_pending",
    "time_device",
    "time_repaired",
    "time_arrival",
    "lost_events",
    "flags",
]


def _dialect(lang: str) -> tuple[str, Callable[[Any], Any]]:
    """(delimiter, number formatter): Russian Excel expects `;` and decimal commas."""
    if lang != "ru":
        return ",", lambda v: v

    def number(v):
        return repr(v).replace(".", ",") if isinstance(v, float) else v

    return ";", number


def _csv_row(row: Mapping[str, Any], number: Callable[[Any], Any]) -> list[Any]:
    """The row's CSV cells in CSV_FIELDS order (a list: csv.DictWriter checks every row's keys
    against the field names, which cost more than the cells on a chain's 50,000 rows)."""
    flags = row["flags"]
    counts, fm, times = row["counts"], row["force_majeure"], row["time_sources"]
    out = [
        row["key"],
        row["label"],
        row["period"],
        local_text(row.get("period_start_local")),
        local_text(row.get("period_end_local")),
        row.get("timezone") or "",
        row.get("rank"),
        row.get("rank_range") or "",
        row["polls"]["valid"],
        row["polls"]["invalid"],
    ]
    kpi = row["kpi"]
    for name in FIGURES:
        fig = kpi[name]
        if fig is None:
            out += [None, None, None, None]
        else:
            out += [number(fig["value"]), number(fig["low"]), number(fig["high"]), fig["n"]]
    out += [
        counts["transactions"],
        counts["visitors"],
        fm["reports"],
        fm["confirmed"],
        fm["pending"],
        times["device"],
        times["repaired"],
        times["arrival"],
        row["lost_events"],
        " ".join(f["code"] for f in flags) if flags else "",
    ]
    return out


def render_csv(report: Report) -> str:
    """One line per row (the total is not a line: sum or read it from JSON). Empty cell = null."""
    buf = io.StringIO()
    write_csv(report, buf)
    return buf.getvalue()


def write_csv(report: Report, out: TextIO) -> None:
    """render_csv written to `out` line by line as the rows come."""
    delimiter, number = _dialect(report["lang"])
    w = csv.writer(out, lineterminator="\r\n", delimiter=delimiter)
    w.writerow(CSV_FIELDS)
    for row in report["rows"]:
        w.writerow(_csv_row(row, number))
    pos = report_pos.csv_lines(report.get("pos"), number)
    if pos:  # the POS section after a blank line, with its own header (docs/transactions.md)
        out.write("\r\n")
        csv.writer(out, lineterminator="\r\n", delimiter=delimiter).writerows(pos)


# --- JSON --------------------------------------------------------------------------------------


def _indented(value: Any, depth: int) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n" + "  " * depth)


def write_json(report: Report, out: TextIO) -> None:
    """json.dumps(report, ensure_ascii=False, indent=2) + newline, written key by key and the
    rows and bottleneck lists item by item as they come (iterators allowed there): the same
    bytes, with only the current row held."""
    out.write("{")
    sep = "\n"
    for key, value in report.items():
        out.write("%s  %s: " % (sep, json.dumps(key, ensure_ascii=False)))
        sep = ",\n"
        if key in ("rows", "bottleneck") and not isinstance(value, Mapping):
            first = True
            for item in value:
                out.write(("[\n    " if first else ",\n    ") + _indented(item, 2))
                first = False
            out.write("[]" if first else "\n  ]")
        else:
            out.write(_indented(value, 1))
    out.write("\n}\n" if sep != "\n" else "}\n")


@contextlib.contextmanager
def open_atomic(path: str, encoding: str = "utf-8") -> Iterator[TextIO]:
    """A text file written whole or not at all: a temporary file in the same folder, renamed to
    `path` when the block ends without an error, removed when it raises."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError("the folder %s does not exist" % folder)
    fd, tmp = tempfile.mkstemp(prefix=".rating-report-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- the pivot ---------------------------------------------------------------------------------


def pivot(report: Report, name: str) -> dict[str, Any]:
    """One figure as rows (the report's groups) x periods: {"kpi", "periods", "rows": [{"key",
    "label", "cells": {period: figure or None}}]}, rows in the report's order."""
    if name not in FIGURES:
        raise ValueError("pivot: must be one of %s, got %r" % (", ".join(FIGURES), name))
    periods = sorted({r["period"] for r in report["rows"]})
    rows: dict[str, dict[str, Any]] = {}
    for r in report["rows"]:
        item = rows.setdefault(r["key"], {"key": r["key"], "label": r["label"], "cells": {}})
        item["cells"][r["period"]] = r["kpi"][name]
    return {"kpi": name, "periods": periods, "rows": list(rows.values()), "min_n": report["thresholds"]["min_n"]}


def _pivot_cell(fig: Mapping[str, Any] | None, name: str, min_n: int, lang: str) -> str:
    if fig is None:
        return "-"
    if fig["value"] is None:
        return i18n.t(lang, "na")
    small = "*" if name in ("di_staff", "di_office", "eli") and fig["n"] < min_n else ""
    return pct_text(fig["value"], name in SIGNED) + small


def render_pivot_table(pv: Mapping[str, Any], lang: str) -> str:
    """A compact grid: one line per group, one column per period."""
    name, periods = pv["kpi"], pv["periods"]
    cells = [[_pivot_cell(r["cells"].get(p), name, pv["min_n"], lang) for p in periods] for r in pv["rows"]]
    first = max([len(i18n.t(lang, name))] + [len(r["label"]) for r in pv["rows"]])
    widths = [max([len(p)] + [len(c[i]) for c in cells]) for i, p in enumerate(periods)]
    lines = ["  ".join([i18n.t(lang, name).ljust(first)] + [p.rjust(w) for p, w in zip(periods, widths, strict=True)])]
    for r, row_cells in zip(pv["rows"], cells, strict=True):
        lines.append(
            "  ".join([r["label"].ljust(first)] + [c.rjust(w) for c, w in zip(row_cells, widths, strict=True)])
        )
    if not pv["rows"]:
        lines.append(i18n.t(lang, "no_rows"))
    lines.append("")
    lines.append(i18n.t(lang, "pivot_note") % {"min_n": pv["min_n"]})
    return "\n".join(lines) + "\n"


def render_pivot_csv(pv: Mapping[str, Any], lang: str) -> str:
    delimiter, number = _dialect(lang)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", delimiter=delimiter)
    w.writerow(["key", "label"] + list(pv["periods"]))
    for r in pv["rows"]:
        values = [(r["cells"].get(p) or {}).get("value") for p in pv["periods"]]
        w.writerow([r["key"], r["label"]] + [number(v) for v in values])
    return buf.getvalue()


# --- the workbook ------------------------------------------------------------------------------

_PCT = "0%"
_PCT_FINE = "0.0%"
_SIGNED_PCT = "+0%;-0%;0%"


def _pct_format(fig: Mapping[str, Any], name: str) -> str:
    if name in SIGNED:
        return _SIGNED_PCT
    fine = fig.get("low") is not None and fig.get("high") is not None and fig["high"] - fig["low"] < 0.02
    return _PCT_FINE if fine or 0 < abs(fig["value"]) < 0.01 else _PCT


def _columns(lang: str, ranked: bool) -> list[str]:
    t = lambda key: i18n.t(lang, key)  # noqa: E731
    cols = ([t("col_rank")] if ranked else []) + [
        t("col_label"),
        t("col_key"),
        t("period"),
        t("col_from"),
        t("col_to"),
        t("col_timezone"),
        t("polls"),
        t("col_invalid"),
    ]
    for name in FIGURES:
        cols += [t(name), t("col_low"), t("col_high"), "n"]
    cols += [t("col_transactions"), t("col_visitors"), t("col_fm_reports"), t("col_fm_pending")]
    cols += [t("col_lost"), t("flags")]
    return cols


def _sheet_row(row: Mapping[str, Any], lang: str, ranked: bool) -> list[tuple[Any, str | None]]:
    """(value, number format) per cell of one row."""
    label = row["label"] if row["key"] != "*" else i18n.t(lang, "total")
    out: list[tuple[Any, str | None]] = [(row.get("rank_range") or row.get("rank"), None)] if ranked else []
    start, end = _local(row.get("period_start_local")), _local(row.get("period_end_local"))
    date_format = (
        "yyyy-mm-dd" if all(x is None or x.time() == _dt.time(0) for x in (start, end)) else "yyyy-mm-dd hh:mm"
    )
    out += [
        (label, None),
        (row["key"], None),
        (row["period"], None),
        (start, date_format),
        (end, date_format),
        (row.get("timezone"), None),
        (row["polls"]["valid"], "0"),
        (row["polls"]["invalid"], "0"),
    ]
    for name in FIGURES:
        fig = row["kpi"][name]
        if fig is None or fig["value"] is None:
            out += [(None if fig is None else i18n.t(lang, "na"), None), (None, None), (None, None), (None, None)]
            continue
        fmt = _pct_format(fig, name)
        out += [(fig["value"], fmt), (fig["low"], fmt), (fig["high"], fmt), (fig["n"], "0")]
    out += [
        (row["counts"]["transactions"], "0"),
        (row["counts"]["visitors"], "0"),
        (row["force_majeure"]["reports"], "0"),
        (row["force_majeure"]["pending"], "0"),
        (row["lost_events"], "0"),
        ("\n".join(f["message"] for f in row["flags"]), None),
    ]
    return out


def _put(ws: Any, r: int, cells: Sequence[tuple[Any, str | None]], bold: bool = False) -> None:
    from openpyxl.styles import Font

    for c, (value, fmt) in enumerate(cells, 1):
        cell = ws.cell(row=r, column=c, value=value)
        if fmt and value is not None:
            cell.number_format = fmt
        if bold:
            cell.font = Font(bold=True)


def _header(ws: Any, names: Sequence[str]) -> None:
    _put(ws, 1, [(n, None) for n in names], bold=True)
    ws.freeze_panes = "A2"
    for i, n in enumerate(names, 1):
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = max(8, min(40, len(n) + 2))


def _grouping_sheet(wb: Any, report: Report) -> None:
    lang = report["lang"]
    ranked = bool(report.get("sort"))
    ws = wb.create_sheet(i18n.t(lang, "sheet_" + report["by"]))
    _header(ws, _columns(lang, ranked))
    r = 1
    for row in report["rows"]:
        r += 1
        _put(ws, r, _sheet_row(row, lang, ranked))
    _put(ws, r + 1, _sheet_row(report["total"], lang, ranked), bold=True)


def _bottleneck_sheet(wb: Any, report: Report) -> None:
    lang = report["lang"]
    ws = wb.create_sheet(i18n.t(lang, "bottleneck"))
    t = lambda key: i18n.t(lang, key)  # noqa: E731
    _header(ws, [t("site"), t("period"), t("di_staff"), "n", t("di_office"), "n", t("col_verdict"), t("col_reason")])
    for r, b in enumerate(report["bottleneck"], 2):
        cells: list[tuple[Any, str | None]] = [(b["label"], None), (b["period"], None)]
        for name in ("di_staff", "di_office"):
            fig = b[name]
            if fig is None or fig["value"] is None:
                cells += [(None, None), (None if fig is None else fig["n"], "0")]
            else:
                cells += [(fig["value"], _pct_format(fig, name)), (fig["n"], "0")]
        cells += [(b["verdict_text"], None), (b["reason"] if b["verdict"] is not None else None, None)]
        _put(ws, r, cells)
    ws.column_dimensions["H"].width = 100


def _pivot_sheet(wb: Any, pv: Mapping[str, Any], lang: str) -> None:
    ws = wb.create_sheet(i18n.t(lang, "sheet_pivot"))
    name = pv["kpi"]
    _header(ws, [i18n.t(lang, name), i18n.t(lang, "col_key")] + list(pv["periods"]))
    for r, row in enumerate(pv["rows"], 2):
        cells: list[tuple[Any, str | None]] = [(row["label"], None), (row["key"], None)]
        for p in pv["periods"]:
            fig = row["cells"].get(p)
            ok = fig is not None and fig["value"] is not None
            cells.append((fig["value"], _pct_format(fig, name)) if ok else (None, None))  # type: ignore[index]
        _put(ws, r, cells)


def workbook_bytes(reports: Sequence[Report], pv: Mapping[str, Any] | None = None) -> bytes:
    """An .xlsx: one sheet per grouping (rows, then the total in bold), the bottleneck sheet (from
    the first report: it is the same in every grouping), and the pivot sheet when given."""
    from openpyxl import Workbook

    wb = Workbook()
    default = wb.active
    if default is not None:
        wb.remove(default)
    lang = reports[0]["lang"]
    for report in sorted(reports, key=lambda r: BYS.index(r["by"]) if r["by"] in BYS else len(BYS)):
        _grouping_sheet(wb, report)
    _bottleneck_sheet(wb, reports[0])
    report_pos.sheet(wb, reports[0].get("pos"), lang, _put, _header)
    if pv is not None:
        _pivot_sheet(wb, pv, lang)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- writing files -----------------------------------------------------------------------------


def write_file(path: str, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (temporary file + rename in the same folder).
    Raises OSError with a message that names the path."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError("the folder %s does not exist" % folder)
    fd, tmp = tempfile.mkstemp(prefix=".rating-report-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def csv_bytes(text: str) -> bytes:
    """CSV text for a file: UTF-8 with a BOM, so Excel reads Cyrillic right."""
    return text.encode("utf-8-sig")
