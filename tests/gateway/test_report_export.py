"""`rating report` output a director can open: CSV as Russian Excel reads it, a real .xlsx, the
format from -o's extension, rankings and filters, a pivot of one KPI, one-line errors."""

import csv
import datetime as dt
import io
import json
import os

import pytest
from gw_site_support import MIN
from report_support import chain_db

from rating import cli

DAY = 24 * 60 * MIN
HOUR = 60 * MIN


@pytest.fixture
def chain(tmp_path):
    return chain_db(tmp_path)


def run(capsys, *argv):
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_csv_file_is_what_russian_excel_reads(chain, tmp_path, capsys):
    path = tmp_path / "r.csv"
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--period", "day", "-o", str(path))
    assert code == 0 and "report written to" in out
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the Cyrillic right
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    first = rows[0]
    assert first["key"] == "ivanova" and first["label"] == "Елена Иванова"
    assert first["period_start"] == "2025-01-06" and first["period_end"] == "2025-01-07"
    assert first["timezone"] == "Europe/Moscow"
    assert "period_start_ms" not in first  # no epoch ms for people
    assert "," in first["di_staff"] and "." not in first["di_staff"]  # decimal comma
    assert float(first["di_staff"].replace(",", ".")) == pytest.approx((2 + 0) / 6)
    # English: commas between fields, decimal points
    code, out, _ = run(capsys, "report", "--db", chain, "--lang", "en", "--format", "csv")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert not out.startswith("\ufeff") and float(row["di_staff"]) > 0


def test_xlsx_has_a_sheet_per_grouping_totals_bottleneck_and_real_numbers(chain, tmp_path, capsys):
    from openpyxl import load_workbook

    path = tmp_path / "r.xlsx"
    code, out, _ = run(capsys, "report", "--db", chain, "--period", "day", "-o", str(path))
    assert code == 0, out
    wb = load_workbook(path)
    assert wb.sheetnames == ["Сотрудники", "Панели", "Офисы", "Вопросы", "Узкое место"]
    ws = wb["Офисы"]
    header = [c.value for c in ws[1]]
    assert header[:3] == ["Название", "Код", "период"] and "ИНК@Персонал" in header
    col = {name: i for i, name in enumerate(header)}
    rows = list(ws.iter_rows(min_row=2, values_only=False))
    assert [r[col["период"]].value for r in rows] == ["2025-01-06", "2025-01-07", "2025-01-08", "all"]
    monday, total = rows[0], rows[-1]
    assert total[0].value == "Итого" and total[0].font.b
    di = monday[col["ИНК@Персонал"]]
    assert isinstance(di.value, float) and di.number_format.endswith("%")
    assert di.value == pytest.approx(2 / 6)
    start = monday[col["С"]]
    assert start.value == dt.datetime(2025, 1, 6) and start.number_format == "yyyy-mm-dd"
    assert isinstance(monday[col["Опросы"]].value, int)
    b = wb["Узкое место"]
    assert b.cell(row=2, column=1).value == "Офис на Тверской" and b.cell(row=2, column=7).value
    people = wb["Сотрудники"]
    assert {r[0] for r in people.iter_rows(min_row=2, values_only=True)} == {"Елена Иванова", "Сергей Петров", "Итого"}
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".rating-report-")]  # no temporary file left


def test_the_format_follows_the_output_extension(chain, tmp_path, capsys):
    path = tmp_path / "r.json"
    assert run(capsys, "report", "--db", chain, "-o", str(path))[0] == 0
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1
    code, _, err = run(capsys, "report", "--db", chain, "--format", "csv", "-o", str(tmp_path / "r.xlsx"))
    assert code == 2 and err.startswith("error: --format csv does not match") and err.count("\n") == 1
    code, _, err = run(capsys, "report", "--db", chain, "-o", str(tmp_path / "r.docx"))
    assert code == 2 and ".csv, .xlsx, .pdf, .html, .json or .txt" in err
    code, _, err = run(capsys, "report", "--db", chain, "--format", "xlsx")
    assert code == 2 and "-o FILE.xlsx" in err
    # nothing written for the refused ones (rating.db-wal/-shm come and go with SQLite)
    assert {f for f in os.listdir(tmp_path) if not f.startswith("rating.db")} == {"r.json"}


def test_output_into_a_missing_folder_is_a_one_line_error(chain, tmp_path, capsys):
    target = tmp_path / "missing" / "dir" / "r.csv"
    code, out, err = run(capsys, "report", "--db", chain, "-o", str(target))
    assert code == 2 and out == ""
    assert err == "error: cannot write %s: the folder %s does not exist; create it or write elsewhere\n" % (
        target,
        target.parent,
    )
    assert not (tmp_path / "missing").exists()


def test_sort_ranks_rows_best_first_within_each_period(chain, capsys):
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--sort", "di_staff", "--format", "json")
    rows = json.loads(out)["rows"]
    # a handful of polls each: listed by their shrunk DI, but not ranked (docs/kpi.md)
    assert [(r["key"], r["rank"], r["rank_note"]) for r in rows] == [
        ("petrov", None, "too few polls to rank (n < 30)"),
        ("ivanova", None, "too few polls to rank (n < 30)"),
    ]
    assert rows[0]["fair"]["value"] <= rows[1]["fair"]["value"]
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--sort", "di_staff", "--lang", "en")
    assert "ranked by: DI-staff" in out and "Сергей Петров  (too few polls to rank)" in out
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--sort", "di_staff", "--lang", "ru")
    assert "Сергей Петров  (слишком мало опросов для рейтинга)" in out
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--sort", "fm_rate", "--format", "json")
    assert [r["rank"] for r in json.loads(out)["rows"]] == [1, 2]  # not a DI: plain order
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "device", "--sort", "eli", "--format", "json")
    assert {r["rank"] for r in json.loads(out)["rows"]} == {None}  # no loyalty panel: nothing to rank


def test_employee_and_site_filters_and_unknown_ids(chain, capsys):
    code, out, _ = run(capsys, "report", "--db", chain, "--employee", "petrov", "--by", "device", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["employee"] == "petrov" and data["bottleneck"] == []
    assert [r["key"] for r in data["rows"]] == ["msk/desk-1"] and data["rows"][0]["polls"]["valid"] == 12
    code, _, err = run(capsys, "report", "--db", chain, "--employee", "sidorov", "--lang", "en")
    assert code == 2
    assert err == ("error: no employee 'sidorov'; the employees are: ivanova (Елена Иванова), petrov (Сергей Петров)\n")
    code, _, err = run(capsys, "report", "--db", chain, "--site", "spb")  # the deployment's language
    assert code == 2 and err == "ошибка: нет офиса 'spb'; офисы: msk (Офис на Тверской)\n"


def test_pivot_one_kpi_rows_by_periods(chain, tmp_path, capsys):
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--pivot", "di_staff", "--period", "day")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["ИНК@Персонал", "2025-01-06", "2025-01-07", "2025-01-08"]
    assert lines[1].split()[:3] == ["Елена", "Иванова", "33"] and lines[1].split()[-1] == "-"
    assert "*" in lines[1]  # 6 polls: fewer than 30
    code, out, _ = run(
        capsys, "report", "--db", chain, "--by", "site", "--pivot", "exact_conversion", "--format", "csv"
    )
    header, row = out.splitlines()
    assert header == "key;label;2025-01"  # --pivot: by month unless --period says otherwise
    assert row.startswith("msk;Офис на Тверской;0,666")  # 18 desk polls in counted time / 27 sales


def test_the_workbook_gets_the_pivot_as_a_sheet(chain, tmp_path, capsys):
    from openpyxl import load_workbook

    path = tmp_path / "p.xlsx"
    args = ("report", "--db", chain, "--by", "site", "--period", "day", "--pivot", "di_staff", "-o", str(path))
    assert run(capsys, *args)[0] == 0
    wb = load_workbook(path)
    assert wb.sheetnames == ["Офисы", "Узкое место", "Сводная"]
    ws = wb["Сводная"]
    assert [c.value for c in ws[1]] == ["ИНК@Персонал", "Код", "2025-01-06", "2025-01-07", "2025-01-08"]
    assert ws.cell(row=2, column=3).value == pytest.approx(2 / 6) and ws.cell(row=2, column=3).number_format == "0%"


def _row(key, no, n, period="all"):
    counts = {"yes": n - no, "no": no, "unsure": 0, "silent": 0, "fm_no": 0, "fm_silent": 0}
    return {"key": key, "period": period, "polls": {"by_kind": {"staff": counts}}, "kpi": {}}


def test_di_ranks_are_ranges_where_rows_cannot_be_told_apart():
    from gateway.report_core import rank

    rows = rank([_row("a", 12, 300), _row("b", 13, 300), _row("far", 150, 300), _row("new", 0, 8)], "di_staff")
    assert [(r["key"], r["rank"], r["rank_range"]) for r in rows] == [
        ("a", 1, "1-2"),
        ("b", 2, "1-2"),
        ("far", 3, "3"),
        ("new", None, None),
    ]
    assert rows[0]["fair"]["low"] < rows[0]["fair"]["value"] < rows[0]["fair"]["high"]
    assert rows[3]["rank_note"] == "too few polls to rank (n < 30)"
    # each period on its own
    two = rank(
        [_row("a", 5, 300, "w1"), _row("b", 90, 300, "w1"), _row("a", 90, 300, "w2"), _row("b", 5, 300, "w2")],
        "di_staff",
    )
    assert [(r["period"], r["key"], r["rank_range"]) for r in two] == [
        ("w1", "a", "1"),
        ("w1", "b", "2"),
        ("w2", "b", "1"),
        ("w2", "a", "2"),
    ]


def test_streamed_json_and_text_are_the_whole_reports_bytes_and_rows_are_made_as_written(chain, tmp_path, capsys):
    from gateway import db as dbmod
    from gateway import report, report_export

    path = tmp_path / "r.json"
    code, out, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--period", "day", "-o", str(path))
    assert code == 0 and "report written to" in out
    db = dbmod.connect(chain)
    try:
        whole = report.build_report(db, by="employee", period="day")
        streamed = report.build_report(db, by="employee", period="day", stream=True)
        assert not isinstance(streamed["rows"], list)  # made when read, not held
        first = next(iter(streamed["rows"]))
        assert first == whole["rows"][0]
    finally:
        db.close()
    on_file = json.loads(path.read_text(encoding="utf-8"))
    assert on_file["rows"] == json.loads(json.dumps(whole["rows"])) and on_file["total"] == whole["total"]
    code, text, _ = run(capsys, "report", "--db", chain, "--by", "employee", "--period", "day")
    assert text == report_export.render_table(whole)


def test_a_streamed_report_cut_short_leaves_no_file(tmp_path):
    from gateway import report_export

    path = tmp_path / "r.csv"

    def rows():
        yield {"key": "x"}
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError), report_export.open_atomic(str(path)) as f:
        f.write("half a report\n")
        list(rows())
    assert not path.exists() and os.listdir(tmp_path) == []
