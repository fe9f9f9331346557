"""Charts drawn on the server as SVG (matplotlib, Agg backend): no script, no CDN, nothing from
the network. matplotlib is imported on the first chart only, so `rating` starts fast.

The colours are matplotlib's 'tableau-colorblind10' (readable by colour-blind people); the 95 %
interval is a band in the series' colour; a point that rests on fewer polls than the
small-sample bound is drawn hollow. Every series is an SVG group with the id
`series-<n>` and its name in the legend as text (svg.fonttype "none").

The SVG goes into the page as a data: image (the console's Content-Security-Policy allows no
inline style, and matplotlib's SVG styles every element inline)."""

import base64
import io
import threading

# matplotlib's pyplot state is global: one chart at a time
_LOCK = threading.Lock()


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.style
    from matplotlib.figure import Figure

    return matplotlib, Figure


def trend_svg(series, periods, title, ylabel, signed=False, small_label="", band_label=""):
    """SVG text of a trend chart. periods: the x labels in order; series: [{"name", "points":
    {period: {"value", "low", "high", "small"}}}], values as fractions (shown as %)."""
    matplotlib, Figure = _matplotlib()
    settings = {"svg.fonttype": "none", "svg.hashsalt": "rating", "font.size": 10}
    with _LOCK, matplotlib.style.context("tableau-colorblind10"), matplotlib.rc_context(settings):
        fig = Figure(figsize=(9, 4.2))
        ax = fig.subplots()
        colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        x_of = {p: i for i, p in enumerate(periods)}
        for n, s in enumerate(series):
            colour = colours[n % len(colours)]
            pts = [(x_of[p], v) for p, v in s["points"].items() if p in x_of and v.get("value") is not None]
            pts.sort()
            if not pts:
                continue
            xs = [x for x, _ in pts]
            ys = [v["value"] * 100 for _, v in pts]
            band = [(x, v) for x, v in pts if v.get("low") is not None and v.get("high") is not None]
            if band:
                ax.fill_between(
                    [x for x, _ in band],
                    [v["low"] * 100 for _, v in band],
                    [v["high"] * 100 for _, v in band],
                    color=colour,
                    alpha=0.18,
                    linewidth=0,
                    gid="band-%d" % n,
                )
            (line,) = ax.plot(xs, ys, color=colour, marker="o", label=s["name"], gid="series-%d" % n)
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
        ax.set_xticks(range(len(periods)))
        ax.set_xticklabels(
            periods, rotation=45 if len(periods) > 6 else 0, ha="right" if len(periods) > 6 else "center"
        )
        ax.set_xlim(-0.5, max(len(periods) - 0.5, 0.5))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if signed:
            ax.axhline(0, color="#595959", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            from matplotlib.lines import Line2D
            from matplotlib.patches import Patch

            handles += [
                Patch(color="#595959", alpha=0.25, label=band_label),
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="o",
                    markersize=9,
                    markerfacecolor="white",
                    markeredgecolor="#595959",
                    label=small_label,
                ),
            ]
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
        return out.getvalue()


def data_uri(svg):
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
