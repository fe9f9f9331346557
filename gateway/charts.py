"""Charts drawn on the server (matplotlib, Agg backend): no script, no CDN, nothing from the
network. The one chart code of the project: the console's trends page (console/charts.py) and
the report documents (gateway/report_docs.py: HTML, PDF, e-mail) draw with it.
matplotlib is imported on the first chart only, so `rating` and the console start fast.

The colours are matplotlib's 'tableau-colorblind10' (readable by colour-blind people); the 95 %
interval is a band (trend) or a whisker (intervals) in the series' colour; a point that rests on
fewer polls than the small-sample bound is drawn hollow. Every series is a group with the id
`series-<n>` and its name in the legend as text (svg.fonttype "none").

Each chart function returns {format: data} for the formats asked: "svg" (text, for web pages and
the HTML report) and "png" (bytes: e-mail clients show no SVG, reportlab places raster images)."""

import io
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# matplotlib's rc and style contexts are global: one chart at a time
_LOCK = threading.Lock()
GREY = "#595959"
PNG_DPI = 110
_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "rating", "font.size": 10}


def _matplotlib():
    import matplotlib  # pyright: ignore[reportMissingImports]

    matplotlib.use("Agg")
    import matplotlib.style  # pyright: ignore[reportMissingImports]
    from matplotlib.figure import Figure  # pyright: ignore[reportMissingImports]

    return matplotlib, Figure


def _save(fig, formats: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fmt in formats:
        if fmt == "svg":
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
            out["svg"] = buf.getvalue()
        elif fmt == "png":
            raw = io.BytesIO()
            fig.savefig(raw, format="png", dpi=PNG_DPI, metadata={"Software": None})
            out["png"] = _palette_png(raw.getvalue())
        else:
            raise ValueError("chart format: svg or png, got %r" % fmt)
    return out


def _palette_png(png: bytes) -> bytes:
    """The PNG with a 64-colour palette: a chart has few colours, and an e-mail carries each
    chart twice (inline and in the PDF) in base64; ~4x smaller, the same to the eye."""
    from PIL import Image  # pyright: ignore[reportMissingImports]  (matplotlib's own Pillow)

    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def _legend_extras(ax, handles, small_label, band_label):
    from matplotlib.lines import Line2D  # pyright: ignore[reportMissingImports]
    from matplotlib.patches import Patch  # pyright: ignore[reportMissingImports]

    handles = list(handles)
    if band_label:
        handles.append(Patch(color=GREY, alpha=0.25, label=band_label))
    if small_label:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=9,
                markerfacecolor="white",
                markeredgecolor=GREY,
                label=small_label,
            )
        )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def _series_points(s, x_of):
    pts = [(x_of[p], v) for p, v in s["points"].items() if p in x_of and v.get("value") is not None]
    pts.sort(key=lambda xv: xv[0])
    return pts


def _draw_series(ax, n, colour, s, x_of, dodge=0.0):
    pts = [(x + dodge, v) for x, v in _series_points(s, x_of)]
    if not pts:
        return
    xs = [x for x, _ in pts]
    ys = [v["value"] * 100 for _, v in pts]
    band = [(x, v) for x, v in pts if v.get("low") is not None and v.get("high") is not None]
    if len(pts) == 1 and band:  # one period: a band has no width; the interval is a bar
        (x, v) = band[0]
        ax.plot([x, x], [v["low"] * 100, v["high"] * 100], color=colour, alpha=0.3, linewidth=8, gid="band-%d" % n)
    elif band:
        ax.fill_between(
            [x for x, _ in band],
            [v["low"] * 100 for _, v in band],
            [v["high"] * 100 for _, v in band],
            color=colour,
            alpha=0.18,
            linewidth=0,
            gid="band-%d" % n,
        )
    ax.plot(xs, ys, color=colour, marker="o", label=s["name"], gid="series-%d" % n)
    small = [(x, y) for (x, v), y in zip(pts, ys, strict=True) if v.get("small")]
    if small:
        ax.plot(
            [x for x, _ in small],
            [y for _, y in small],
            linestyle="none",
            marker="o",
            markersize=9,
            markerfacecolor="white",
            markeredgecolor=colour,
            gid="small-%d" % n,
        )


def trend(
    series: Sequence[Mapping[str, Any]],
    periods: Sequence[str],
    title: str,
    ylabel: str,
    signed: bool = False,
    small_label: str = "",
    band_label: str = "",
    xlabel: str = "",
    formats: Iterable[str] = ("svg",),
) -> dict[str, Any]:
    """A trend chart. periods: the x labels in order; series: [{"name", "points": {period:
    {"value", "low", "high", "small"}}}], values as fractions (shown as %)."""
    matplotlib, Figure = _matplotlib()
    with _LOCK, matplotlib.style.context("tableau-colorblind10"), matplotlib.rc_context(_SETTINGS):
        fig = Figure(figsize=(9, 4.2))
        ax = fig.subplots()
        colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        x_of = {p: i for i, p in enumerate(periods)}
        # one period: the series' points and interval bars side by side, not on top of each other
        step = 0.5 / max(len(series), 1) if len(periods) == 1 else 0.0
        for n, s in enumerate(series):
            _draw_series(ax, n, colours[n % len(colours)], s, x_of, (n - (len(series) - 1) / 2) * step)
        ax.set_xticks(range(len(periods)))
        tilt = len(periods) > 6
        ax.set_xticklabels(periods, rotation=45 if tilt else 0, ha="right" if tilt else "center")
        ax.set_xlim(-0.5, max(len(periods) - 0.5, 0.5))
        ax.set_ylabel(ylabel)
        if xlabel:
            ax.set_xlabel(xlabel)
        ax.set_title(title)
        if signed:
            ax.axhline(0, color=GREY, linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
        handles, _labels = ax.get_legend_handles_labels()
        if handles:
            _legend_extras(ax, handles, small_label, band_label)
        fig.tight_layout()
        return _save(fig, formats)


def intervals(
    labels: Sequence[str],
    panels: Sequence[tuple[str, Sequence[Mapping[str, Any] | None], bool]],
    title: str,
    small_label: str = "",
    band_label: str = "",
    note: str = "",
    formats: Iterable[str] = ("svg",),
) -> dict[str, Any]:
    """Figures side by side, one row per label (the first at the top): a dot with its 95 %
    interval as a whisker, hollow when small. panels: [(figure name, [figure or None per label],
    signed)], figures as {"value", "low", "high", "small"} fractions (shown as %)."""
    matplotlib, Figure = _matplotlib()
    with _LOCK, matplotlib.style.context("tableau-colorblind10"), matplotlib.rc_context(_SETTINGS):
        height = 1.6 + 0.32 * max(len(labels), 1)
        fig = Figure(figsize=(9, height))
        axes = fig.subplots(1, max(len(panels), 1), sharey=True, squeeze=False)[0]
        colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        ys = list(range(len(labels)))[::-1]  # the first label on top
        for n, (ax, (name, figs, signed)) in enumerate(zip(axes, panels, strict=False)):
            colour = colours[n % len(colours)]
            _draw_intervals(ax, n, colour, ys, figs)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("%")
            if signed:
                ax.axvline(0, color=GREY, linewidth=0.8)
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(ys)
        axes[0].set_yticklabels(labels)
        axes[0].set_ylim(-0.7, len(labels) - 0.3)
        fig.suptitle(title, fontsize=11)
        if small_label or band_label:
            _legend_extras(axes[-1], [], small_label, band_label)
        if note:
            fig.text(0.01, 0.01, note, fontsize=8, color=GREY)
        fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 1))
        return _save(fig, formats)


def _draw_intervals(ax, n, colour, ys, figs):
    for y, f in zip(ys, figs, strict=True):
        if f is None or f.get("value") is None:
            continue
        value = f["value"] * 100
        if f.get("low") is not None and f.get("high") is not None:
            ax.plot([f["low"] * 100, f["high"] * 100], [y, y], color=colour, linewidth=3, alpha=0.35, gid="band-%d" % n)
        hollow = bool(f.get("small"))
        ax.plot(
            [value],
            [y],
            linestyle="none",
            marker="o",
            markersize=8,
            color=colour,
            markerfacecolor="white" if hollow else colour,
            gid=("small-%d" if hollow else "series-%d") % n,
        )


def inline_svg(svg: str) -> str:
    """The SVG element alone, for putting inside an HTML page: no XML declaration, DOCTYPE or
    RDF metadata, no namespace declarations (HTML5 knows svg and xlink), so the page names no
    address at all."""
    at = svg.find("<svg")
    svg = svg[at:] if at >= 0 else svg
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, count=1, flags=re.S)
    return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
