"""`rating report --format html|pdf`: one document with the report's rows, their intervals and
flags, the total and the bottleneck diagnosis, in the report's language, the offices' timezone
shown; the PDF is read back with pypdf (independent of reportlab, which wrote it)."""

import io
import json

import pypdf
import pytest
from report_support import chain_db

from gateway import report_docs
from rating import cli


@pytest.fixture
def chain(tmp_path):
    return chain_db(tmp_path)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def report_json(capsys, chain, *extra):
    code, out, _ = run(capsys, "report", "--db", chain, "--format", "json", *extra)
    assert code == 0
    return json.loads(out)


def pdf_text(path):
    reader = pypdf.PdfReader(str(path))
    return len(reader.pages), "\n".join(p.extract_text() for p in reader.pages)


def test_html_holds_every_row_with_its_figures_flags_and_bottleneck(chain, tmp_path, capsys):
    data = report_json(capsys, chain, "--by", "employee")
    path = tmp_path / "r.html"
    code, out, err = run(capsys, "report", "--db", chain, "--by", "employee", "-o", str(path))
    assert code == 0, err
    page = path.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="ru">' in page
    assert "Отчёт" in page or "отчёт" in page.lower()
    for row in data["rows"]:
        assert row["label"] in page
        assert row["kpi"]["di_staff"]["text"].split(" ")[0] in page  # e.g. 33 %
        for flag in row["flags"]:
            assert flag["message"] in page
    for b in data["bottleneck"]:
        assert b["verdict_text"] in page
    assert "Europe/Moscow" in page and "MSK" in page  # the office's timezone, shown
    # self-contained: nothing fetched from elsewhere
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_html_to_stdout_and_escaped(chain, capsys):
    code, out, _ = run(capsys, "report", "--db", chain, "--format", "html", "--lang", "en")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and '<html lang="en">' in out
    assert "KPI report" in out


def test_pdf_has_its_pages_and_the_rows_labels(chain, tmp_path, capsys):
    data = report_json(capsys, chain, "--by", "employee", "--lang", "en")
    path = tmp_path / "r.pdf"
    code, out, err = run(capsys, "report", "--db", chain, "--by", "employee", "--lang", "en", "-o", str(path))
    assert code == 0, err
    assert path.read_bytes().startswith(b"%PDF-")
    pages, text = pdf_text(path)
    assert pages == 1
    flat = " ".join(text.split())
    for row in data["rows"]:
        assert row["label"] in flat
    assert "Total" in flat and "Europe/Moscow" in flat
    assert data["bottleneck"][0]["verdict_text"].split(" ")[0] in flat


def test_pdf_in_russian_keeps_the_cyrillic(chain, tmp_path, capsys):
    path = tmp_path / "r.pdf"
    assert run(capsys, "report", "--db", chain, "--by", "employee", "-o", str(path))[0] == 0
    _, text = pdf_text(path)
    assert "Итого" in text or "Всего" in text


def test_a_long_report_runs_over_pages(chain, capsys):
    data = report_json(capsys, chain, "--by", "employee", "--period", "day", "--lang", "en")
    data = dict(data, rows=data["rows"] * 40)
    reader = pypdf.PdfReader(io.BytesIO(report_docs.pdf_bytes(data)))
    assert len(reader.pages) > 1


def test_pdf_needs_a_file(chain, capsys):
    code, _, err = run(capsys, "report", "--db", chain, "--format", "pdf")
    assert code == 2 and "-o FILE.pdf" in err


def test_given_figures_are_the_ones_both_documents_show(chain, capsys):
    data = report_json(capsys, chain, "--lang", "en")
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    fig = report_docs.Figure("DI-staff by week", svg)
    page = report_docs.render_html(data, [fig])
    assert "DI-staff by week" in page and "<rect" in page
