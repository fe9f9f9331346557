"""The trend chart (console/charts.py): an SVG of its own (no link to the network), a line, a
band and hollow small-sample points per series in colour-blind-safe colours, names as text;
matplotlib is imported on the first chart only (`rating` starts without it)."""

import subprocess
import sys

from console import charts

TABLEAU_CB10 = ("#006ba4", "#ff800e")


def _chart():
    series = [
        {"name": "Елена <Иванова>", "points": {"W1": {"value": 0.2, "low": 0.1, "high": 0.3, "small": True}}},
        {"name": "Berlin", "points": {"W1": {"value": 0.3, "low": 0.2, "high": 0.4}, "W2": {"value": 0.1}}},
    ]
    return charts.trend_svg(series, ["W1", "W2"], "ИНК@Персонал", "%", small_label="мало", band_label="95 %")


def test_a_series_is_a_line_a_band_and_hollow_points_where_samples_are_small():
    svg = _chart()
    for gid in ("series-0", "band-0", "small-0", "series-1", "band-1"):
        assert 'id="%s"' % gid in svg, gid
    assert 'id="small-1"' not in svg
    assert "Елена &lt;Иванова&gt;" in svg and "ИНК@Персонал" in svg and "мало" in svg  # text, escaped
    for colour in TABLEAU_CB10:
        assert colour in svg
    assert 'xlink:href="http' not in svg and "<script" not in svg


def test_the_chart_is_the_same_for_the_same_figures():
    assert _chart() == _chart()


def test_the_console_starts_without_matplotlib():
    code = "import sys; from console import web, dashboards; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_names_in_the_csv_downloads_never_become_spreadsheet_formulas():
    from console.dashboards import _text

    assert _text('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert _text("@sum") == "'@sum" and _text("Елена Иванова") == "Елена Иванова" and _text(None) == ""
