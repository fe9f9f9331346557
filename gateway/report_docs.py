"""The report as a document people read: one HTML page (a Jinja2 template, inline CSS, no
external resource: it opens the same in a mail client with remote content blocked) and one PDF
(reportlab). Pure bytes/text out of the report dict of gateway/report.py; the same summary as
`rating report` prints: every row with its figures and 95 % intervals, its flags, the total and
the bottleneck diagnosis per office, in the report's language, the offices' timezone shown.

Charts: `figures(report)` is the one place a document's charts come from, a list of
`Figure(title, svg, png)` drawn by gateway/charts.py (the console's trend chart code): a report
split into several periods gets the trend of DI-staff, DI-office and ELI per row (the ten rows
with the most polls) with the 95 % interval as a band; a report of one period gets each row's
figures as a dot with its interval (the first 25 rows in the report's order, then the total).
Small samples are hollow, labels in the report's language, the offices' timezone under the
chart. The HTML shows the SVG inline (or, in the e-mail, `<img src="cid:...">` of the PNG: mail
clients show no SVG); the PDF places the PNG.
"""

import datetime as _dt
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from gateway import charts, i18n, report_pos, times
from gateway.report_core import FIGURES
from gateway.report_export import _figure_text, local_text

Report = Mapping[str, Any]


CHART_FIGURES = ("di_staff", "di_office", "eli")
SIGNED = ("eli",)
MAX_SERIES = 10  # the colour-blind palette's colours
MAX_BARS = 25


@dataclass(frozen=True)
class Figure:
    """A chart of a document: its title, the SVG (for HTML; "" when not drawn) and a PNG (for
    the PDF and the e-mail; None: they leave it out)."""

    title: str
    svg: str = ""
    png: bytes | None = None


def _chart_fig(fig: Mapping[str, Any] | None, min_n: int) -> dict[str, Any] | None:
    if fig is None or fig.get("value") is None:
        return None
    return dict(fig, small=(fig.get("n") or 0) < min_n)


def _present(report: Report) -> list[str]:
    rows = list(report["rows"])
    return [n for n in CHART_FIGURES if any((r["kpi"].get(n) or {}).get("value") is not None for r in rows)]


def _zone_note(report: Report) -> str:
    return "%s: %s" % (i18n.t(report["lang"], "doc_timezones"), ", ".join(_zones(report)) or "UTC")


def _trend_figures(report: Report, periods: list[str], formats: Sequence[str]) -> list[Figure]:
    lang, min_n = report["lang"], report["thresholds"]["min_n"]
    polls: dict[str, int] = {}
    for r in report["rows"]:
        polls[r["key"]] = polls.get(r["key"], 0) + r["polls"]["valid"]
    keys = sorted(polls, key=lambda k: (-polls[k], k or ""))[:MAX_SERIES]
    out = []
    for name in _present(report):
        series = {k: {"name": "", "points": {}} for k in keys}
        for r in report["rows"]:
            if r["key"] in series:
                series[r["key"]]["name"] = r["label"] or r["key"] or "—"
                point = _chart_fig(r["kpi"].get(name), min_n)
                if point is not None:
                    series[r["key"]]["points"][r["period"]] = point
        title = "%s, %s" % (i18n.t(lang, name), i18n.t(lang, "period_" + report["period"]))
        if len(polls) > len(keys):
            title += " (%s)" % (i18n.t(lang, "chart_first") % {"n": len(keys), "total": len(polls)})
        drawn = charts.trend(
            [series[k] for k in keys],
            periods,
            title,
            "%",
            signed=name in SIGNED,
            small_label=i18n.t(lang, "chart_small") % {"n": min_n},
            band_label=i18n.t(lang, "chart_band"),
            xlabel=_zone_note(report),
            formats=formats,
        )
        out.append(Figure(title, drawn.get("svg", ""), drawn.get("png")))
    return out


def _interval_figure(report: Report, formats: Sequence[str]) -> list[Figure]:
    lang, min_n = report["lang"], report["thresholds"]["min_n"]
    names = _present(report)
    if not names:
        return []
    rows = list(report["rows"])[:MAX_BARS]
    shown = rows + ([report["total"]] if len(report["rows"]) > 1 else [])
    labels = [(r["label"] or r["key"] or "—") for r in rows]
    labels += [i18n.t(lang, "total")] if len(shown) > len(rows) else []
    panels = [(i18n.t(lang, n), [_chart_fig(r["kpi"].get(n), min_n) for r in shown], n in SIGNED) for n in names]
    title = i18n.t(lang, "chart_intervals") % {"by": i18n.t(lang, report["by"])}
    if len(report["rows"]) > len(rows):
        title += " (%s)" % (i18n.t(lang, "chart_first") % {"n": len(rows), "total": len(report["rows"])})
    drawn = charts.intervals(
        labels,
        panels,
        title,
        small_label=i18n.t(lang, "chart_small") % {"n": min_n},
        band_label=i18n.t(lang, "chart_band"),
        note="%s; %s" % (_range(report), _zone_note(report)),
        formats=formats,
    )
    return [Figure(title, drawn.get("svg", ""), drawn.get("png"))]


def figures(report: Report, formats: Sequence[str] = ("svg", "png")) -> list[Figure]:
    """The charts of the report's document, in order: the trends when the report is split into
    several periods, else each row's figures with their intervals; none without rows."""
    if not report["rows"]:
        return []
    periods = sorted({r["period"] for r in report["rows"] if r["period"] != "all"})
    if len(periods) > 1:
        return _trend_figures(report, periods, formats)
    return _interval_figure(report, formats)


# --- the summary both documents show -----------------------------------------------------------


def _zones(report: Report) -> list[str]:
    zones = {r.get("timezone") for r in list(report["rows"]) + [report["total"]]}
    return sorted(z for z in zones if z)


def _generated(report: Report) -> str:
    """When the report was made, in the offices' timezone when they share one, else UTC."""
    zones = _zones(report)
    tz = times.zone(zones[0]) if len(zones) == 1 else _dt.UTC
    return times.format_time(report["generated_ms"], tz, seconds=False)


def _range(report: Report) -> str:
    lang = report["lang"]
    start = local_text(report.get("from_local")) or i18n.t(lang, "doc_open")
    end = local_text(report.get("to_local")) or i18n.t(lang, "doc_open")
    return "%s — %s" % (start, end)


def _fig_text(fig: Mapping[str, Any] | None, lang: str) -> str:
    if fig is None:
        return "–"
    if fig["value"] is None:
        return "%s (%s)" % (i18n.t(lang, "na"), fig["reason"])
    return _figure_text(fig["text"], lang)


def summary(report: Report) -> dict[str, Any]:
    """What the documents show, as text in the report's language."""
    lang = report["lang"]
    t = lambda key: i18n.t(lang, key)  # noqa: E731
    names = [n for n in FIGURES if any(r["kpi"][n] is not None for r in list(report["rows"]) + [report["total"]])]

    def row(r: Mapping[str, Any], total: bool = False) -> dict[str, Any]:
        label = t("total") if total else r["label"]
        if r.get("rank"):
            label = "%s. %s" % (r.get("rank_range") or r["rank"], label)
        return {
            "label": label,
            "period": "" if r["period"] == "all" else r["period"],
            "polls": r["polls"]["valid"],
            "cells": [_fig_text(r["kpi"][n], lang) for n in names],
            "flags": [f["message"] for f in r["flags"]],
        }

    head = "%s: %s; %s: %s; k = %s" % (
        t("by"),
        t(report["by"]),
        t("period"),
        t("period_" + report["period"]),
        i18n.number(report["k"], len(("%g" % report["k"]).partition(".")[2]), lang),
    )
    return {
        "lang": lang,
        "title": t("report_title"),
        "head": head,
        "facts": [
            (t("doc_range"), _range(report)),
            (t("doc_timezones"), ", ".join(_zones(report)) or "UTC"),
            (t("doc_generated"), _generated(report)),
        ],
        "columns": [t("col_label"), t("period"), t("polls")] + [t(n) for n in names],
        "rows": [row(r) for r in report["rows"]],
        "total": row(report["total"], total=True) if report["rows"] else None,
        "no_rows": t("no_rows"),
        "flags_title": t("flags"),
        "bottleneck_title": t("bottleneck"),
        "bottleneck": [
            {
                "label": b["label"] + ("" if b["period"] == "all" else " [%s]" % b["period"]),
                "verdict": b["verdict_text"],
                "reason": b["reason"] if b["verdict"] is not None else "",
            }
            for b in report["bottleneck"]
        ],
        "interval_note": t("doc_interval"),
        "pos": report_pos.for_documents(report.get("pos"), lang),
    }


# --- HTML ----------------------------------------------------------------------------------------

_TEMPLATE = """<!DOCTYPE html>
<html lang="{{ s.lang }}"><head><meta charset="utf-8"><title>{{ s.title }}</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; color: #1a1a1a; margin: 16px; font-size: 14px; }
h1 { font-size: 20px; margin: 0 0 4px 0; } h2 { font-size: 16px; margin: 20px 0 6px 0; }
.head { color: #444; margin-bottom: 8px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0 0 12px 0; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; }
table.rows { border-collapse: collapse; width: 100%; }
table.rows th, table.rows td { border: 1px solid #bbb; padding: 4px 6px; text-align: left; vertical-align: top; }
table.rows th { background: #e8eef5; }
table.rows tr.total td { font-weight: bold; background: #f4f4f4; }
td.num { text-align: right; }
tr.flags td { border-top: none; padding-top: 0; }
ul.flags { margin: 2px 0 0 0; padding-left: 18px; color: #8a4b00; font-size: 12px; }
.note { color: #555; font-size: 12px; }
figure { margin: 12px 0; } figcaption { font-weight: bold; }
</style></head>
<body>
<h1>{{ s.title }}</h1>
<div class="head">{{ s.head }}</div>
<dl class="facts">{% for k, v in s.facts %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
{% for f in figs %}<figure><figcaption>{{ f.title }}</figcaption>{% if cids %}<img src="cid:{{ cids[loop.index0] }}" alt="{{ f.title }}" style="max-width: 100%; height: auto;">{% else %}{{ f.svg | safe }}{% endif %}</figure>{% endfor %}
{% if s.rows %}
<table class="rows">
<thead><tr>{% for c in s.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for r in s.rows %}<tr><td>{{ r.label }}</td>
<td>{{ r.period }}</td><td class="num">{{ r.polls }}</td>{% for c in r.cells %}<td class="num">{{ c }}</td>{% endfor %}</tr>
{% if r.flags %}<tr class="flags"><td colspan="{{ s.columns | length }}"><ul class="flags">{% for f in r.flags %}<li>{{ f }}</li>{% endfor %}</ul></td></tr>{% endif %}
{% endfor %}
{% if s.total %}<tr class="total"><td>{{ s.total.label }}</td><td>{{ s.total.period }}</td><td class="num">{{ s.total.polls }}</td>{% for c in s.total.cells %}<td class="num">{{ c }}</td>{% endfor %}</tr>
{% if s.total.flags %}<tr class="flags"><td colspan="{{ s.columns | length }}"><ul class="flags">{% for f in s.total.flags %}<li>{{ f }}</li>{% endfor %}</ul></td></tr>{% endif %}{% endif %}
</tbody></table>
<p class="note">{{ s.interval_note }}</p>
{% else %}<p>{{ s.no_rows }}</p>{% endif %}
{% if s.bottleneck %}<h2>{{ s.bottleneck_title }}</h2>
<ul>{% for b in s.bottleneck %}<li><b>{{ b.label }}</b>: {{ b.verdict }}{% if b.reason %}. {{ b.reason }}{% endif %}</li>{% endfor %}</ul>{% endif %}
{% if s.pos %}<h2>{{ s.pos.title }}</h2>
{% for g in s.pos.groups %}<table class="rows pos" data-by="{{ g.by }}"><caption>{{ g.title }}</caption>
<thead><tr>{% for c in g.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in g.rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td>{% for c in r[2:] %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
{% endfor %}<p class="note">{{ s.pos.note }}</p>{% endif %}
{{ extra | safe }}
</body></html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def render_html(
    report: Report, figs: Sequence[Figure] | None = None, extra_html: str = "", cids: Sequence[str] = ()
) -> str:
    """The report as one self-contained HTML page, the charts as inline SVG. extra_html: trusted
    markup added at the end (the e-mail's note on its attachments). cids: the Content-IDs
    (without <>) of the charts' PNG parts, one per figure: the page shows those instead of the
    SVG (an e-mail's HTML part)."""
    figs = figures(report, ("svg",)) if figs is None else figs
    figs = [Figure(f.title, charts.inline_svg(f.svg), f.png) for f in figs]
    if cids and len(cids) != len(figs):
        raise ValueError("one Content-ID per figure: %d figures, %d ids" % (len(figs), len(cids)))
    return _ENV.from_string(_TEMPLATE).render(s=summary(report), figs=figs, extra=extra_html, cids=list(cids))


# --- PDF -----------------------------------------------------------------------------------------

_FONT = "Helvetica"
_BOLD = "Helvetica-Bold"


def _fonts() -> tuple[str, str]:
    """A font with Cyrillic: DejaVu Sans where the machine has it (Debian's fonts-dejavu-core,
    also shipped by matplotlib), else reportlab's Helvetica (Latin only)."""
    import os

    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "DejaVuSans" in pdfmetrics.getRegisteredFontNames():
        return "DejaVuSans", "DejaVuSans-Bold"
    folders = ["/usr/share/fonts/truetype/dejavu"]
    try:
        import matplotlib  # pyright: ignore[reportMissingImports]

        folders.append(os.path.join(os.path.dirname(matplotlib.__file__ or ""), "mpl-data", "fonts", "ttf"))
    except ImportError:
        pass
    for folder in folders:
        regular, bold = os.path.join(folder, "DejaVuSans.ttf"), os.path.join(folder, "DejaVuSans-Bold.ttf")
        if os.path.exists(regular) and os.path.exists(bold):
            pdfmetrics.registerFont(TTFont("DejaVuSans", regular))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", bold))
            return "DejaVuSans", "DejaVuSans-Bold"
    return _FONT, _BOLD


def _pdf_pos(pos: Mapping[str, Any], esc: Any, body: Any, head: Any, h2: Any, width: float) -> list[Any]:
    """The PDF's POS section: the title, a table per grouping, the note on the interval."""
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    story: list[Any] = [Paragraph(esc(pos["title"]), h2)]
    for g in pos["groups"]:
        data = [[Paragraph(esc(c), head) for c in g["columns"]]]
        data += [[Paragraph(esc(c), body) for c in row] for row in g["rows"]]
        n = len(g["columns"])
        table = Table(data, colWidths=[width * 0.14, width * 0.16] + [width * 0.7 / (n - 2)] * (n - 2), repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story += [Paragraph(esc(g["title"]), head), table]
    story.append(Paragraph(esc(pos["note"]), body))
    return story


def pdf_bytes(report: Report, figs: Sequence[Figure] | None = None) -> bytes:
    """The report as a PDF (A4 landscape): the same summary as the HTML page."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    figs = figures(report, ("png",)) if figs is None else figs
    s = summary(report)
    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=8, leading=10)
    flag = ParagraphStyle("flag", parent=body, fontSize=7, leading=8.5, textColor=colors.HexColor("#8a4b00"))
    head = ParagraphStyle("head", parent=body, fontName=bold, fontSize=8)
    title = ParagraphStyle("title", parent=body, fontName=bold, fontSize=14, leading=18)
    h2 = ParagraphStyle("h2", parent=body, fontName=bold, fontSize=11, leading=14, spaceBefore=8)
    esc = html.escape

    story: list[Any] = [Paragraph(esc(s["title"]), title), Paragraph(esc(s["head"]), body)]
    for k, v in s["facts"]:
        story.append(Paragraph("%s: %s" % (esc(k), esc(v)), body))
    story.append(Spacer(1, 4 * mm))
    for f in figs:
        if f.png:
            story.append(Paragraph(esc(f.title), head))
            story.append(Image(io.BytesIO(f.png), width=240 * mm, height=85 * mm, kind="proportional"))
    if s["rows"]:
        data: list[list[Any]] = [[Paragraph(esc(c), head) for c in s["columns"]]]
        for r in s["rows"] + ([s["total"]] if s["total"] else []):
            label: list[Any] = [Paragraph(esc(r["label"]), head if r is s["total"] else body)]
            label += [Paragraph("! " + esc(m), flag) for m in r["flags"]]
            data.append(
                [label, Paragraph(esc(r["period"]), body), Paragraph(str(r["polls"]), body)]
                + [Paragraph(esc(c), body) for c in r["cells"]]
            )
        width = landscape(A4)[0] - 20 * mm
        rest = len(s["columns"]) - 3
        cols = [width * 0.2, width * 0.09, width * 0.06] + [width * 0.65 / max(rest, 1)] * rest
        table = Table(data, colWidths=cols, repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story += [table, Paragraph(esc(s["interval_note"]), body)]
    else:
        story.append(Paragraph(esc(s["no_rows"]), body))
    if s["bottleneck"]:
        story.append(Paragraph(esc(s["bottleneck_title"]), h2))
        for b in s["bottleneck"]:
            text = "<b>%s</b>: %s" % (esc(b["label"]), esc(b["verdict"]))
            story.append(Paragraph(text + (". " + esc(b["reason"]) if b["reason"] else ""), body))
    if s["pos"]:
        story += _pdf_pos(s["pos"], esc, body, head, h2, landscape(A4)[0] - 20 * mm)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=10 * mm,
        rightMargin=10 * mm,
        topMargin=10 * mm,
        bottomMargin=10 * mm,
        title=s["title"],
        invariant=1,
    )
    doc.build(story)
    return buf.getvalue()
