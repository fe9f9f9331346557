"""rating report: numbers equal hand-computed kpi_core figures; periods, groupings, languages,
counts import (idempotent, line-numbered errors), CSV/JSON output."""

import csv
import io
import json

import pytest
from gw_part2_support import MIN, SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events  # noqa: F401

import kpi_core
from gateway import counts, derive, report, store
from rating import cli

DAY = 24 * 60 * MIN


def small_chain(db):
    """Monday: desk-1 (staff, Иванова) yes, no, unsure, silent; exit (office) yes, no;
    door (loyalty) yes, yes, no, silent. Tuesday: desk-1 no, silent."""
    apply_site(db)
    d, e, o = Panel(), Panel(device="exit"), Panel(device="door")
    d.poll(T0, "yes")
    d.poll(T0 + 2 * MIN, "no")
    d.poll(T0 + 4 * MIN, "unsure")
    d.poll(T0 + 6 * MIN)
    e.poll(T0, "yes")
    e.poll(T0 + 3 * MIN, "no")
    for i, a in enumerate(["yes", "yes", "no", None]):
        o.poll(T0 + i * 2 * MIN, a)
    d.poll(T0 + DAY, "no")
    d.poll(T0 + DAY + 2 * MIN)
    store_events(db, d.events + e.events + o.events)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit"), ("msk", "door")], T0 + 2 * DAY)


def test_gw_report_numbers_equal_kpi_core(any_db):
    small_chain(any_db)
    with any_db.transaction():
        store.insert_counts(any_db, "msk", "", T0 - 60 * MIN, T0 + 10 * 60 * MIN, 40, 100, "test", T0)
        store.insert_counts(any_db, "msk", "", T0 + DAY - 60 * MIN, T0 + DAY, 5, None, "test", T0)
    r = report.build_report(any_db, by="site", period="all", now_ms=T0 + 2 * DAY)
    (row,) = r["rows"]
    staff = kpi_core.PollCounts(yes=1, no=2, unsure=1, silent=2)
    office = kpi_core.PollCounts(yes=1, no=1, unsure=0, silent=0)
    loyalty = kpi_core.PollCounts(yes=2, no=1, unsure=0, silent=1)
    for name, fig in (
        ("di_staff", kpi_core.di_staff(staff, 0.8)),
        ("di_office", kpi_core.di_office(office, 0.8)),
        ("eli", kpi_core.eli(loyalty, 0.8)),
    ):
        got = row["kpi"][name]
        assert (got["value"], got["low"], got["high"], got["n"]) == (fig.value, fig.low, fig.high, fig.n), name
    assert row["kpi"]["di_staff"]["value"] == pytest.approx((2 + 0.8 * 2) / 6)
    assert row["kpi"]["eli"]["value"] == pytest.approx(2 / 4 - (1 + 0.8) / 4)
    assert row["polls"]["valid"] == 12
    assert row["counts"] == {"transactions": 45, "visitors": 100}
    assert row["kpi"]["exact_conversion"]["value"] == kpi_core.exact_conversion(12, 45).value
    assert row["kpi"]["visitor_coverage"]["value"] == pytest.approx(0.12)
    assert row["kpi"]["fm_rate"]["value"] == 0.0
    codes = {f["code"] for f in row["flags"]}
    assert {"small_sample", "coverage_low", "conversion_low"} <= codes
    assert r["total"]["polls"]["valid"] == 12
    (b,) = r["bottleneck"]
    assert b["verdict"] == "not enough data"  # 6 staff polls < min_n 30
    # JSON round trip: plain data only
    assert json.loads(json.dumps(r)) == r


def test_gw_report_periods_and_groupings(tmp_path):
    db = sqlite_db(tmp_path)
    small_chain(db)
    r = report.build_report(db, by="employee", period="day", now_ms=T0 + 2 * DAY)
    rows = {(x["key"], x["period"]): x for x in r["rows"]}
    assert set(rows) == {("", "2025-01-06"), ("ivanova", "2025-01-06"), ("ivanova", "2025-01-07")}
    mon = rows[("ivanova", "2025-01-06")]
    assert mon["label"] == "Елена Иванова" and mon["polls"]["valid"] == 4
    assert mon["period_start_ms"] == T0 - 11 * 60 * MIN  # Moscow midnight
    assert mon["period_end_ms"] - mon["period_start_ms"] == DAY
    assert rows[("ivanova", "2025-01-07")]["kpi"]["di_staff"]["value"] == pytest.approx((1 + 0.8) / 2)
    assert rows[("", "2025-01-06")]["label"] == "(unassigned)"  # the exit and door panels
    assert rows[("", "2025-01-06")]["counts"] == {"transactions": None, "visitors": None}
    # per-panel counts belong to the employee on that panel's roster when the interval starts
    with db.transaction():
        store.insert_counts(db, "msk", "desk-1", T0, T0 + 60 * MIN, 8, None, "test", T0)
        store.insert_counts(db, "msk", "desk-1", T0 + DAY, T0 + DAY + 60 * MIN, 3, None, "test", T0)
        store.insert_counts(db, "msk", "", T0, T0 + 60 * MIN, 30, 50, "test", T0)
    r = report.build_report(db, by="employee", now_ms=T0 + 2 * DAY)
    rows = {x["key"]: x for x in r["rows"]}
    assert rows["ivanova"]["counts"] == {"transactions": 11, "visitors": None}
    assert rows["ivanova"]["kpi"]["exact_conversion"]["value"] == pytest.approx(6 / 11)
    assert rows[""]["counts"] == {"transactions": None, "visitors": None}
    r = report.build_report(db, by="question", period="week", now_ms=T0 + 2 * DAY)
    assert [(x["key"], x["period"]) for x in r["rows"]] == [
        ("loyalty", "2025-W02"),
        ("office", "2025-W02"),
        ("staff", "2025-W02"),
    ]
    assert r["rows"][2]["label"] == "Are you satisfied with the work of {employee}?"
    r = report.build_report(db, by="device", period="month", now_ms=T0 + 2 * DAY, start=T0 + DAY)
    assert [(x["key"], x["period"], x["polls"]["valid"]) for x in r["rows"]] == [("msk/desk-1", "2025-01", 2)]


def test_gw_report_lost_events_and_time_flags(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    p = Panel()
    p.poll(T0, "yes")
    p.press(T0 + MIN, "seller_short", clock=False)
    p.press(T0 + 2 * MIN, "no")  # seq 4: will be "lost"
    p.poll(T0 + 3 * MIN, "yes")
    events = [e for e in p.events if e["seq"] != 4]
    store_events(db, events)
    derive.update(db, [("msk", "desk-1")], T0 + 60 * MIN)
    r = report.build_report(db, by="device", now_ms=T0 + 60 * MIN, lang="en")
    (row,) = r["rows"]
    assert row["lost_events"] == 1
    assert row["time_sources"] == {"device": 2, "repaired": 0, "arrival": 1}
    flags = {f["code"]: f for f in row["flags"]}
    assert "1 panel event(s) lost (msk/desk-1: 4)" in flags["lost_events"]["message"]
    assert flags["time_not_device"]["message_ru"].startswith("У 33 % опросов")


def test_gw_report_table_in_russian_and_english(tmp_path, capsys):
    db = sqlite_db(tmp_path)
    small_chain(db)
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert cli.main(["report", "--db", url, "--lang", "ru", "--by", "site"]) == 0
    ru = capsys.readouterr().out
    for word in ("ИНК@Персонал", "ИНК@Офис", "ИЭЛ", "Офис на Тверской", "Узкое место", "недостаточно данных"):
        assert word in ru, word
    assert cli.main(["report", "--db", url, "--lang", "en", "--by", "employee", "--period", "day"]) == 0
    en = capsys.readouterr().out
    for word in ("DI-staff", "Елена Иванова", "[2025-01-07]", "Bottleneck", "not enough data"):
        assert word in en, word
    assert "ИНК" not in en
    # default language comes from the site file (lang = "en" there)
    assert cli.main(["report", "--db", url]) == 0
    assert "DI-staff" in capsys.readouterr().out
    assert cli.main(["report", "--db", url, "--format", "csv", "--by", "device"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["key"] for r in rows] == ["msk/desk-1", "msk/door", "msk/exit"]
    assert float(rows[0]["di_staff"]) == pytest.approx((2 + 0.8 * 2) / 6)
    assert cli.main(["report", "--db", url, "--from", "2025-01-07", "--to", "2025-01-07", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["polls"]["valid"] == 2


def test_gw_report_bottleneck_with_enough_polls(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    d, e = Panel(), Panel(device="exit")
    for i in range(40):  # DI-staff 10 %, DI-office 40 %: the office organisation
        d.poll(T0 + i * MIN, "no" if i % 10 == 0 else "yes")
        e.poll(T0 + i * MIN, "no" if i % 10 < 4 else "yes")
    store_events(db, d.events + e.events)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], T0 + DAY)
    (b,) = report.build_report(db, now_ms=T0 + DAY)["bottleneck"]
    assert b["verdict"] == "office organisation"
    (b,) = report.build_report(db, now_ms=T0 + DAY, lang="ru")["bottleneck"]
    assert b["verdict_text"] == "организация работы офиса"


COUNTS_CSV = """site,device,from,to,transactions,visitors
msk,,2025-01-06T09:00:00+03:00,2025-01-06T10:00:00+03:00,12,30
msk,desk-1,1736143200000,1736146800000,7,
"""


def test_gw_report_counts_import_idempotent(any_db, tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text(COUNTS_CSV, encoding="utf-8")
    assert counts.import_file(any_db, str(path), T0) == 2
    first = store.counts(any_db)
    assert counts.import_file(any_db, str(path), T0 + 1000) == 2
    again = store.counts(any_db)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "received_ms"} for r in rows]  # noqa: E731
    assert strip(again) == strip(first) and len(again) == 2
    assert (again[0]["transactions"], again[0]["visitors"], again[0]["from_ms"]) == (12, 30, 1736143200000)
    assert again[1]["device"] == "desk-1" and again[1]["visitors"] is None
    path.write_text(COUNTS_CSV.replace(",12,30", ",13,30"), encoding="utf-8")  # a corrected file
    counts.import_file(any_db, str(path), T0 + 2000)
    assert [r["transactions"] for r in store.counts(any_db)] == [13, 7]


def test_gw_report_counts_import_errors_name_lines(tmp_path, capsys):
    bad = (
        "site,from,to,transactions,visitors\n"
        "msk,2025-01-06T09:00:00+03:00,2025-01-06T10:00:00+03:00,12,30\n"
        "MSK,2025-01-06T09:00:00,2025-01-06T08:00:00+03:00,-1,\n"
        "msk,1736143200000,1736143100000,,\n"
    )
    with pytest.raises(counts.CountsError) as info:
        counts.parse(bad, "bad.csv")
    errs = info.value.errors
    assert errs[0] == "line 3: site: 'MSK' is not a valid id ([a-z0-9-], 1-32 chars)"
    assert any(e.startswith("line 3: from: ") and "no UTC offset" in e for e in errs)
    assert "line 3: transactions: must be a whole number >= 0 or empty, got '-1'" in errs
    assert "line 4: to: must be after from" in errs
    assert "line 4: give transactions, visitors or both" in errs
    with pytest.raises(counts.CountsError, match="line 1: missing column\\(s\\) to"):
        counts.parse("site,from,visitors\n")
    path = tmp_path / "bad.csv"
    path.write_text(bad, encoding="utf-8")
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert cli.main(["counts", "import", str(path), "--db", url]) == 2
    assert "nothing imported" in capsys.readouterr().err
    db = sqlite_db(tmp_path)
    assert store.counts(db) == []
