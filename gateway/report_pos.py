"""The POS section of a report (docs/transactions.md): exact conversion from the matches per
panel and per employee, with its 95 % Wilson interval and the counts it rests on, in every
form a report takes: table text, CSV lines, an .xlsx sheet, and the rows the HTML/PDF
documents and the e-mailed report show (gateway/report_export.py, gateway/report_docs.py).

`section()` builds it once for a report (`report["pos"]`); the writers only read it, so the
streamed report (build_report(stream=True)) carries it as well: it is small (one row per panel
and employee) and made before the rows are written. Loyalty references are never in it."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from gateway import i18n, times

# (the key of the count in a conversion row, its column word in gateway.i18n.TEXT)
COUNTS = (
    ("transactions", "pos_sales"),
    ("polls", "pos_polls"),
    ("matched", "pos_matched"),
    ("unmatched_polls", "pos_no_sale"),
    ("unmatched_sales", "pos_no_poll"),
)
LATEST = 2**62  # "the settings in force now" for history lookups
CSV_FIELDS = [
    "section",
    "site",
    "by",
    "key",
    "sales",
    "polls",
    "matched",
    "polls_without_sale",
    "sales_without_poll",
    "exact_conversion",
    "exact_conversion_low",
    "exact_conversion_high",
    "exact_conversion_n",
]


def section(
    db: Any, history: Any, start: Any, end: Any, sites: Iterable[str] | None = None, employee: str | None = None
) -> dict[str, Any] | None:
    """{"rules" (the matching window in force at the range's end), "by_device", "by_employee"} over [start, end) (datetimes, local ones in each
    office's timezone; None: open) for `sites` (None: every office), or None when no sale is
    stored (a deployment without a POS feed: the report stays as it was)."""
    from gateway import cli_transactions, transactions

    sites = sorted(sites) if sites is not None else [k for _kind, k in history.keys("site")]
    if not any(transactions.count(db, s) for s in sites):
        return None
    by_device: list[dict[str, Any]] = []
    by_employee: list[dict[str, Any]] = []
    last = LATEST
    for site in sites:
        tz = history.tz(site)
        lo, hi = times.at(start, tz), times.at(end, tz)
        last = LATEST if hi is None else hi - 1
        by_device += cli_transactions.conversion_table(db, history, [site], lo, hi, "device")
        by_employee += cli_transactions.conversion_table(db, history, [site], lo, hi, "employee", employee)
    return {
        "rules": transactions.rules_of(history, last),
        "by_device": by_device,
        "by_employee": by_employee,
    }


def office(db: Any, history: Any, site: str, lo: int | None, hi: int | None) -> dict[str, Any]:
    """One office's matches over [lo, hi) (epoch ms): the conversion rows and the unmatched
    polls and sales, as GET /api/v1/pos and the console's office page show them."""
    from gateway import cli_transactions, transactions

    polls, sales = transactions.unmatched(db, history, site, lo, hi)
    return {
        "site": site,
        "rules": transactions.rules_of(history, LATEST if hi is None else hi - 1),
        "by_device": cli_transactions.conversion_table(db, history, [site], lo, hi, "device"),
        "by_employee": cli_transactions.conversion_table(db, history, [site], lo, hi, "employee"),
        "polls_without_sale": [
            {
                "id": "%s/%s/%s" % (site, p["device"], p["open_seq"]),
                "device": p["device"],
                "opened_ms": p["opened_ms"],
                "till": p["till"],
                "employee": p["employee"],
            }
            for p in polls
        ],
        "sales_without_poll": [
            {"id": s["tx_id"], "at_ms": s["at_ms"], "till": s["till"], "employee": s["employee"]} for s in sales
        ],
    }


def conversion_text(fig: Mapping[str, Any] | None, lang: str) -> str:
    """'50 % (9-91 %)' in the report's language; '-' when it cannot be computed."""
    if not fig or fig.get("value") is None:
        return "-"
    return "%s (%s)" % (
        i18n.percent(fig["value"], 0, lang),
        i18n.range_text(fig["low"], fig["high"], 0, lang, sign=False),
    )


def _groups(pos: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [("device", pos["by_device"]), ("employee", pos["by_employee"])]


def columns(lang: str, by: str) -> list[str]:
    return (
        [i18n.t(lang, "site"), i18n.t(lang, by)]
        + [i18n.t(lang, w) for _k, w in COUNTS]
        + [i18n.t(lang, "exact_conversion")]
    )


def text_rows(pos: Mapping[str, Any], lang: str) -> list[dict[str, Any]]:
    """Per grouping: {"by", "title", "columns", "rows": [[cells as text]]}, for the table text
    and the HTML/PDF documents."""
    out = []
    for by, rows in _groups(pos):
        out.append(
            {
                "by": by,
                "title": i18n.t(lang, "pos_by_" + by),
                "columns": columns(lang, by),
                "rows": [
                    [r["site"], r["key"] or "-"]
                    + [i18n.number(r[k], 0, lang) for k, _w in COUNTS]
                    + [conversion_text(r["conversion"], lang)]
                    for r in rows
                ],
            }
        )
    return out


def write_text(pos: Mapping[str, Any] | None, out: TextIO, lang: str) -> None:
    """The section under a report's table: two aligned tables (per panel, per employee)."""
    if not pos:
        return
    out.write("\n%s\n" % i18n.t(lang, "pos_title"))
    for group in text_rows(pos, lang):
        table = [group["columns"]] + group["rows"]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        out.write("\n%s:\n" % group["title"])
        last = len(widths) - 1
        for row in table:
            cells = [c.ljust(widths[i]) if i < 2 or i == last else c.rjust(widths[i]) for i, c in enumerate(row)]
            out.write("  ".join(cells).rstrip() + "\n")


def csv_lines(pos: Mapping[str, Any] | None, number: Any) -> list[list[Any]]:
    """The section's CSV lines (header first; `number` formats a float for the dialect); [] without one."""
    if not pos:
        return []
    lines: list[list[Any]] = [list(CSV_FIELDS)]
    for by, rows in _groups(pos):
        for r in rows:
            fig = r["conversion"] or {}
            lines.append(
                ["pos", r["site"], by, r["key"]]
                + [r[k] for k, _w in COUNTS]
                + [number(fig.get(x)) for x in ("value", "low", "high")]
                + [fig.get("n")]
            )
    return lines


def sheet(wb: Any, pos: Mapping[str, Any] | None, lang: str, put: Any, header: Any) -> None:
    """The workbook's POS sheet (per panel, then per employee, a blank line between): numbers as
    numbers, the conversion and its bounds as percentages."""
    if not pos:
        return
    ws = wb.create_sheet(i18n.t(lang, "pos_sheet"))
    names = [i18n.t(lang, "col_grouping"), i18n.t(lang, "site"), i18n.t(lang, "col_key")]
    names += [i18n.t(lang, w) for _k, w in COUNTS]
    names += [i18n.t(lang, "exact_conversion"), i18n.t(lang, "col_low"), i18n.t(lang, "col_high"), "n"]
    header(ws, names)
    r = 1
    for by, rows in _groups(pos):
        for row in rows:
            r += 1
            fig = row["conversion"] or {}
            cells: list[tuple[Any, str | None]] = [(i18n.t(lang, by), None), (row["site"], None), (row["key"], None)]
            cells += [(row[k], "0") for k, _w in COUNTS]
            cells += [(fig.get(x), "0%" if fig.get(x) is not None else None) for x in ("value", "low", "high")]
            cells.append((fig.get("n"), "0"))
            put(ws, r, cells)
        r += 1


def for_documents(pos: Mapping[str, Any] | None, lang: str) -> dict[str, Any] | None:
    """What the HTML/PDF documents show of the section (None without one)."""
    if not pos:
        return None
    return {"title": i18n.t(lang, "pos_title"), "groups": text_rows(pos, lang), "note": i18n.t(lang, "pos_note")}


def attach(reports: Sequence[dict[str, Any]], pos: Mapping[str, Any] | None) -> None:
    """Put the section into each report dict (last key: the JSON's `pos`); nothing without one."""
    if pos is None:
        return
    for r in reports:
        r["pos"] = pos
