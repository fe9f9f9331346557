"""`rating --lang ru demo` speaks Russian: its own lines with correct plurals and both reports,
although the demo's site file is English."""

import re

import pytest


@pytest.mark.e2e
def test_the_demo_in_russian(tmp_path, capsys):
    from rating.cli import main

    assert main(["--lang", "ru", "demo", "--out", str(tmp_path), "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"rating demo: 3 офиса, 6 панелей на настоящей прошивке, 1 смоделированный день", out)
    assert "Отчёт по KPI (разрез: Сотрудник" in out and "Отчёт по KPI (разрез: Офис" in out
    assert "k = 0,8" in out and "KPI report" not in out and " to " not in out
    assert "сверка с истинной картиной: каждое событие сохранено ровно один раз" in out
    assert "Что посмотреть дальше" in out
