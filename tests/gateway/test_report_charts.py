"""The report documents' charts (gateway/report_docs.figures, drawn by gateway/charts.py): a
report of several periods shows the trend of DI-staff / DI-office / ELI per row with bands, a
report of one period each row's figures with their intervals; labels in the report's language,
the offices' timezone under the chart, the colour-blind palette.

The PDF is looked at as a reader sees it: pypdf (independent of reportlab) finds the chart
images, and PDFium (pypdfium2, its own wheel: no system package, same result on every machine)
renders the page to pixels, where the chart's area must hold ink in the palette's colours."""

import io
import json

import pypdf
import pypdfium2
import pytest
from report_support import chain_db

from gateway import report_docs
from rating import cli

TABLEAU_BLUE = (0x00, 0x6B, 0xA4)  # tableau-colorblind10's first colour


@pytest.fixture
def chain(tmp_path):
    return chain_db(tmp_path)


def report_json(capsys, chain, *extra):
    code = cli.main(["report", "--db", chain, "--format", "json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_a_report_of_several_days_has_a_trend_per_figure_with_a_band_per_row(chain, capsys):
    data = report_json(capsys, chain, "--by", "employee", "--period", "day", "--lang", "en")
    figs = report_docs.figures(data)
    present = [
        n
        for n in ("di_staff", "di_office", "eli")
        if any((r["kpi"][n] or {}).get("value") is not None for r in data["rows"])
    ]
    assert len(figs) == len(present) >= 1
    assert figs[0].title == "DI-staff, by day"
    keys = {r["key"] for r in data["rows"] if (r["kpi"]["di_staff"] or {}).get("value") is not None}
    svg = figs[0].svg
    for n in range(len(keys)):
        assert 'id="series-%d"' % n in svg and 'id="band-%d"' % n in svg
    for r in data["rows"]:
        assert r["label"] in svg and r["period"] in svg
    assert "Europe/Moscow" in svg and "95 % interval" in svg
    assert all(f.png and f.png.startswith(b"\x89PNG") for f in figs)


def test_a_report_of_one_period_has_each_rows_figures_with_intervals_in_russian(chain, capsys):
    data = report_json(capsys, chain, "--by", "employee", "--lang", "ru")
    (fig,) = report_docs.figures(data)
    assert fig.title == "Сотрудник: показатели и их 95 % интервалы"
    for r in data["rows"]:
        assert r["label"] in fig.svg
    assert "Итого" in fig.svg and "ИНК" in fig.svg and "Europe/Moscow" in fig.svg
    assert "#006ba4" in fig.svg  # the colour-blind palette


def test_no_rows_no_chart(chain, capsys):
    data = report_json(capsys, chain, "--from", "2030-01-01", "--to", "2030-01-02", "--lang", "en")
    assert data["rows"] == [] and report_docs.figures(data) == []


def test_the_html_report_shows_the_charts_inline_and_names_no_address(chain, tmp_path, capsys):
    path = tmp_path / "r.html"
    assert cli.main(["report", "--db", chain, "--period", "day", "-o", str(path)]) == 0
    capsys.readouterr()
    page = path.read_text("utf-8")
    figs = report_docs.figures(report_json(capsys, chain, "--period", "day"), ("svg",))
    assert len(figs) >= 2  # the office report: DI-staff and DI-office at least
    assert page.count("<svg") == len(figs) and page.count("<figure>") == len(figs) and "<?xml" not in page
    assert "http" not in page  # no namespace, no metadata link: nothing a mail client would fetch


def _chart_pixels(pdf, page_no):
    """(the rendered page, the boxes of its images in pixels) for page page_no."""
    scale = 2
    page = pdf[page_no]
    height = page.get_height()
    bitmap = page.render(scale=scale).to_pil().convert("RGB")
    boxes = []
    for obj in page.get_objects(filter=[pypdfium2.raw.FPDF_PAGEOBJ_IMAGE]):  # pyright: ignore[reportAttributeAccessIssue]
        left, bottom, right, top = obj.get_bounds()
        boxes.append(tuple(int(v * scale) for v in (left, height - top, right, height - bottom)))
    return bitmap, boxes


@pytest.mark.parametrize("by, period", [("site", "day"), ("employee", "all")])
def test_the_pdf_rendered_to_pixels_shows_the_charts(chain, tmp_path, capsys, by, period):
    charts = len(report_docs.figures(report_json(capsys, chain, "--by", by, "--period", period), ("svg",)))
    assert charts >= 1
    path = tmp_path / "r.pdf"
    code = cli.main(["report", "--db", chain, "--by", by, "--period", period, "-o", str(path)])
    assert code == 0, capsys.readouterr().err
    reader = pypdf.PdfReader(str(path))
    images = [img for p in reader.pages for img in p.images]
    assert len(images) == charts  # pypdf finds the charts as images, independently of the renderer
    pdf = pypdfium2.PdfDocument(str(path))
    assert len(pdf) == len(reader.pages) >= 1
    found = 0
    for n in range(len(pdf)):
        page, boxes = _chart_pixels(pdf, n)
        for box in boxes:
            found += 1
            area = page.crop(box)
            assert area.width > 400 and area.height > 100
            grey = area.convert("L")
            assert sum(grey.histogram()[:200]) > area.width * area.height * 0.01  # ink, not a blank box
            colours = area.getcolors(maxcolors=area.width * area.height) or []
            near_blue = sum(
                c for c, rgb in colours if all(abs(a - b) < 40 for a, b in zip(rgb, TABLEAU_BLUE, strict=True))
            )
            assert near_blue > 20  # the palette's colour is drawn
        # outside the charts, the page is not blank either: the table is text
        assert sum(page.convert("L").histogram()[:128]) > 1000
    assert found == charts
    pdf.close()


def test_the_pdf_and_the_pixels_check_would_see_a_missing_chart(chain, capsys):
    """The checks above can fail: a PDF made without figures has no image box to look at."""
    data = report_json(capsys, chain, "--by", "employee", "--lang", "en")
    raw = report_docs.pdf_bytes(data, [])
    assert sum(len(p.images) for p in pypdf.PdfReader(io.BytesIO(raw)).pages) == 0
    pdf = pypdfium2.PdfDocument(raw)
    assert _chart_pixels(pdf, 0)[1] == []
    pdf.close()
