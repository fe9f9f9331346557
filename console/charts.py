"""The console's charts: the drawing is gateway/charts.py (shared with the report documents and
the e-mailed reports); this module only puts the SVG into a page.

The SVG goes into the page as a data: image (the console's Content-Security-Policy allows no
inline style, and matplotlib's SVG styles every element inline)."""

import base64

from gateway import charts


def trend_svg(series, periods, title, ylabel, signed=False, small_label="", band_label="", xlabel=""):
    """SVG text of a trend chart (gateway.charts.trend)."""
    return charts.trend(
        series,
        periods,
        title,
        ylabel,
        signed=signed,
        small_label=small_label,
        band_label=band_label,
        xlabel=xlabel,
        formats=("svg",),
    )["svg"]


def data_uri(svg):
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
