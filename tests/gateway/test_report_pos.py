"""The POS section (gateway/report_pos.py) in every form of `rating report`: table, JSON (the
streamed path and the whole one), CSV, xlsx, HTML and PDF carry the figures of `rating
report`'s JSON `pos` (per panel and per employee, with the Wilson interval and its counts),
and never a loyalty reference; a deployment without sales gets no section."""

import csv
import io
import json

import openpyxl
import pypdf
import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, open_db, run_cli, store_events

from gateway import derive, report_docs, report_export, report_pos, transactions

TILL_SITE = SITE_TOML.replace('device = "desk-1"\n', 'device = "desk-1"\ntill = "till-1"\n', 1)


def sale(tx_id, at_ms, loyalty=None):
    return {"id": tx_id, "till": "till-1", "t": at_ms, "loyalty": loyalty}


def put(db, sales):
    with db.transaction():
        rows = [("msk", transactions.check("msk", {k: v for k, v in s.items() if v is not None})) for s in sales]
        transactions.store_many(db, rows, "test", T0 + 3 * 3600000)


def polls_at(db, minutes):
    p = Panel()
    for m in minutes:
        p.poll(T0 + m * MIN, "yes")
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], T0 + 3 * 3600000)


@pytest.fixture
def url(any_db_url):
    u = any_db_url
    db = open_db(u)
    try:
        apply_site(db, TILL_SITE)
        polls_at(db, [0, 1])  # desk-1: the first poll follows R-1, the second has no sale
        put(db, [sale("R-1", T0 - 20_000, loyalty="crm-secret"), sale("R-9", T0 + 30 * MIN, loyalty="crm-other")])
    finally:
        db.close()
    return u


def _json_pos(capsys, url, *extra):
    code, out, err = run_cli(capsys, "report", "--format", "json", "--db", url, *extra)
    assert code == 0, err
    return json.loads(out)["pos"]


def test_the_streamed_and_the_whole_json_carry_the_same_pos_section(url, capsys):
    streamed = _json_pos(capsys, url)
    pivoted = _json_pos(capsys, url, "--pivot", "di_staff")  # not streamed
    assert streamed == pivoted
    (row,) = streamed["by_device"]
    assert (row["key"], row["transactions"], row["polls"], row["matched"]) == ("desk-1", 2, 2, 1)
    assert (row["unmatched_polls"], row["unmatched_sales"], row["conversion"]["value"]) == (1, 1, 0.5)
    assert streamed["rules"] == {"before_ms": 10 * MIN, "skew_ms": 2 * MIN}


def test_the_table_and_csv_carry_the_pos_figures(url, capsys, tmp_path):
    code, out, err = run_cli(capsys, "report", "--by", "device", "--db", url)
    assert code == 0, err
    assert "Per panel:" in out and "Per employee:" in out and "crm-" not in out
    line = next(x for x in out.splitlines() if x.startswith("msk ") and " desk-1 " in x)
    assert line.split()[2:7] == ["2", "2", "1", "1", "1"], line
    pos = _json_pos(capsys, url)
    path = tmp_path / "r.csv"
    code, _out, err = run_cli(capsys, "report", "--format", "csv", "-o", str(path), "--db", url)
    assert code == 0, err
    text = path.read_bytes().decode("utf-8-sig")
    assert "crm-" not in text
    block = text.split("\r\n\r\n", 1)[1]  # after the report's rows, a blank line, then the POS lines
    rows = list(csv.DictReader(io.StringIO(block)))
    got = {(r["by"], r["key"]): r for r in rows}
    for by in ("device", "employee"):
        for r in pos["by_" + by]:
            line = got[(by, r["key"])]
            assert int(line["sales"]) == r["transactions"] and int(line["matched"]) == r["matched"]
            assert int(line["polls_without_sale"]) == r["unmatched_polls"]
            assert int(line["sales_without_poll"]) == r["unmatched_sales"]
            assert float(line["exact_conversion"]) == r["conversion"]["value"]
            assert float(line["exact_conversion_low"]) == r["conversion"]["low"]
            assert int(line["exact_conversion_n"]) == r["conversion"]["n"]


def test_the_workbook_has_a_pos_sheet_with_the_json_figures(url, capsys, tmp_path):
    pos = _json_pos(capsys, url)
    path = tmp_path / "r.xlsx"
    code, _out, err = run_cli(capsys, "report", "-o", str(path), "--db", url)
    assert code == 0, err
    wb = openpyxl.load_workbook(path)
    ws = wb["POS"]
    rows = [r for r in ws.iter_rows(min_row=2, values_only=True) if r[0]]
    want = [("Panel", r) for r in pos["by_device"]] + [("Employee", r) for r in pos["by_employee"]]
    assert len(rows) == len(want)
    for got, (by, r) in zip(rows, want, strict=True):
        fig = r["conversion"]
        assert got == (by, r["site"], r["key"], r["transactions"], r["polls"], r["matched"], r["unmatched_polls"],
                       r["unmatched_sales"], fig["value"], fig["low"], fig["high"], fig["n"])  # fmt: skip
    for sheet in wb.worksheets:
        for row in sheet.iter_rows(values_only=True):
            assert not any(isinstance(v, str) and "crm-" in v for v in row)


def test_the_html_and_pdf_show_the_pos_section(url, capsys, tmp_path):
    pos = _json_pos(capsys, url)
    desk = pos["by_device"][0]
    want = report_pos.conversion_text(desk["conversion"], "en")
    for fmt in ("html", "pdf"):
        path = tmp_path / ("r." + fmt)
        code, _out, err = run_cli(capsys, "report", "--format", fmt, "-o", str(path), "--db", url)
        assert code == 0, err
        if fmt == "html":
            text = path.read_text(encoding="utf-8")
            assert 'class="rows pos" data-by="device"' in text
        else:
            text = "\n".join(p.extract_text() for p in pypdf.PdfReader(str(path)).pages)
        assert "Sales matched to polls" in text and "Polls with no sale" in text, fmt
        assert want in text and "desk-1" in text and "crm-" not in text, fmt


def test_a_report_without_sales_has_no_pos_section(tmp_path, capsys):
    u = "sqlite:///%s" % (tmp_path / "none.db")
    db = open_db(u)
    try:
        apply_site(db, TILL_SITE)
        polls_at(db, [0])
    finally:
        db.close()
    code, out, err = run_cli(capsys, "report", "--format", "json", "--db", u)
    assert code == 0 and "pos" not in json.loads(out), err
    code, out, _err = run_cli(capsys, "report", "--format", "csv", "--db", u)
    assert "\r\n\r\n" not in out and "polls_without_sale" not in out


def test_the_russian_documents_speak_russian(url):
    db = open_db(url)
    try:
        from gateway import report, site

        history = site.load(db)
        rep = report.build_report(db, lang="ru")
        report_pos.attach([rep], report_pos.section(db, history, None, None))
    finally:
        db.close()
    html = report_docs.render_html(rep, [])
    assert "Продажи с кассы и опросы" in html and "Опросы без продажи" in html and "50\xa0%" in html
    wb = openpyxl.load_workbook(io.BytesIO(report_export.workbook_bytes([rep])))
    assert "Касса" in wb.sheetnames
