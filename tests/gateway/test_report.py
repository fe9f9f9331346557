"""rating report: numbers equal hand-computed kpi_core figures; periods, groupings, languages,
counts import (idempotent, line-numbered errors), CSV/JSON output."""

import csv
import io
import json

import pytest
from gw_site_support import MIN, SITE_TOML, T0, T_OFFICES, Panel, apply_site, sqlite_db, store_events, two_offices

import kpi_core
from gateway import counts, derive, report, site, store
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
    # conversion and coverage count the staff panel's polls only (the exit and door panels poll
    # the same customers again), and only those opened while the counts ran: Monday's 4 (Tuesday's
    # 2 come after the second interval ends)
    assert row["polls"]["contact"] == 6 and row["polls"]["in_transactions_time"] == 4
    assert row["kpi"]["exact_conversion"]["value"] == kpi_core.exact_conversion(4, 45).value
    assert row["kpi"]["visitor_coverage"]["value"] == pytest.approx(0.04)
    assert row["kpi"]["fm_rate"]["value"] == 0.0
    codes = {f["code"] for f in row["flags"]}
    assert {"small_sample", "coverage_low", "conversion_low", "counts_partial_open_transactions"} <= codes
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
    db = sqlite_db(tmp_path)
    apply_site(db)
    assert cli.main(["counts", "import", str(path), "--db", url]) == 2
    assert "nothing imported" in capsys.readouterr().err
    assert store.counts(db) == []


def test_report_dates_are_each_offices_local_day(tmp_path, capsys):
    """Without --site, `--from 2025-01-06 --to 2025-01-06` is 6 January in each office's own
    timezone: Moscow's polls of that Moscow day, Los Angeles' of that LA day."""
    from gw_site_support import MIN

    from rating import cli

    hour = 60 * MIN
    t0 = T_OFFICES
    url = two_offices(
        tmp_path,
        [
            (-2, "no"),  # 09:00 Moscow on the 6th: in
            (-1, "yes"),  # 10:00 Moscow on the 6th: in
            (15, "no"),
        ],  # 02:00 Moscow on the 7th: out (still the 6th in LA)
        [
            (-1, "no"),  # 23:00 LA on the 5th: out (already the 6th in Moscow)
            (10, "yes"),
        ],
    )  # 10:00 LA on the 6th: in
    capsys.readouterr()
    assert cli.main(["report", "--db", url, "--from", "2025-01-06", "--to", "2025-01-06", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["key"]: r["polls"]["valid"] for r in data["rows"]} == {"aaa": 1, "msk": 2}
    assert data["total"]["polls"]["valid"] == 3
    assert (data["from_local"], data["to_local"]) == ("2025-01-06T00:00:00", "2025-01-07T00:00:00")
    assert data["from_ms"] is None and data["to_ms"] is None  # no single instant fits both offices
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["msk"]["period_start_ms"] == t0 - 11 * hour  # each row: its office's own day
    assert rows["aaa"]["period_start_ms"] == t0
    # one office chosen: its day, as absolute times, as before
    assert (
        cli.main(
            ["report", "--db", url, "--site", "msk", "--from", "2025-01-06", "--to", "2025-01-06", "--format", "json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert (data["from_ms"], data["to_ms"]) == (t0 - 11 * hour, t0 + 13 * hour)
    assert data["total"]["polls"]["valid"] == 2
    # an explicit offset is one instant for every office
    assert (
        cli.main(
            [
                "report",
                "--db",
                url,
                "--from",
                "2025-01-06T08:00:00+00:00",
                "--to",
                "2025-01-07T08:00:00+00:00",
                "--format",
                "json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["from_local"] is None and data["from_ms"] == t0
    assert {r["key"]: r["polls"]["valid"] for r in data["rows"]} == {"aaa": 1, "msk": 1}


def _fm_chain(db):
    apply_site(db)
    d, e, o = Panel(), Panel(device="exit"), Panel(device="door")
    fms = {}
    for p in (d, e, o):
        fms[p.device] = "msk/%s/%d" % (p.device, p.press(T0, "seller_long")["seq"])  # [T0, T0 + 15 min)
        p.poll(T0 + 1 * MIN, "no")
        p.poll(T0 + 3 * MIN)
    d.poll(T0 + 5 * MIN, "yes")
    late_no = d.poll(T0 + 20 * MIN, "no") or "msk/desk-1/%d" % (d.seq - 1)
    store_events(db, d.events + e.events + o.events)
    derive.rebuild(db, T0 + DAY)
    return fms, late_no


def test_shift_added_later_does_not_claim_earlier_polls(tmp_path):
    """A shift entry added by a later apply (no `from`) starts at that apply: polls opened before
    it stay with the employee who was on the roster at their open time."""
    db = sqlite_db(tmp_path)
    apply_site(db)  # ivanova all day from 2025-01-01
    # the file has no deployment `from`, so the new shift row is stamped with the apply time
    later = SITE_TOML.replace("k = 0.8\nfrom = 2025-01-01T00:00:00Z\n", "k = 0.8\n")
    assert later != SITE_TOML
    later += '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\nhours = "10:00-12:00"\n'
    apply_site(db, later, now_ms=T0 + DAY)  # applied Tuesday; T0 is Monday 11:00 Moscow
    h = site.load(db)
    assert h.employee_at("msk", "desk-1", T0) == "ivanova"
    assert h.employee_at("msk", "desk-1", T0 + 2 * DAY) == "petrov"  # Wednesday 11:00
    d = Panel()
    d.poll(T0, "no")
    store_events(db, d.events)
    derive.rebuild(db, T0 + 3 * DAY)
    r = report.build_report(db, by="employee", period="all", now_ms=T0 + 3 * DAY)
    assert [x["key"] for x in r["rows"]] == ["ivanova"]


def test_from_to_dates_use_the_chosen_sites_timezone(tmp_path, capsys):
    """`--site msk --from DATE` means midnight in Moscow, even when another office (in another
    timezone) sorts first in the site file."""
    import json

    from rating import cli

    db = sqlite_db(tmp_path)
    text = SITE_TOML.replace(
        "[[questions]]", '[[sites]]\nid = "aaa"\nname = "LA"\ntimezone = "America/Los_Angeles"\n\n[[questions]]', 1
    )
    apply_site(db, text)
    db.close()
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    capsys.readouterr()
    assert (
        cli.main(
            ["report", "--db", url, "--site", "msk", "--from", "2025-01-06", "--to", "2025-01-06", "--format", "json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["from_ms"] == T0 - 11 * 60 * MIN  # 2025-01-06 00:00 Moscow
    assert data["to_ms"] == T0 - 11 * 60 * MIN + DAY


def test_fm_corrected_period_is_read_in_the_reports_office_timezone(tmp_path):
    """`rating review fm msk/... --confirm --from 11:00 --to 12:00` means Moscow time for a Moscow
    panel; the No answer at 11:30 Moscow then leaves DI-staff."""
    from rating import cli

    db = sqlite_db(tmp_path)
    text = SITE_TOML.replace(
        "[[questions]]", '[[sites]]\nid = "aaa"\nname = "LA"\ntimezone = "America/Los_Angeles"\n\n[[questions]]', 1
    )
    apply_site(db, text)
    d = Panel()
    fm = d.press(T0 + 10 * MIN, "seller_long")  # period [11:10, 11:25) Moscow as reported
    d.poll(T0 + 30 * MIN, "no")  # 11:30 Moscow
    d.poll(T0 + 40 * MIN, "yes")
    store_events(db, d.events)
    derive.rebuild(db, T0 + DAY)
    db.close()
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert (
        cli.main(
            [
                "review",
                "fm",
                "msk/desk-1/%d" % fm["seq"],
                "--confirm",
                "--db",
                url,
                "--expert",
                "expert",
                "--from",
                "2025-01-06T11:00",
                "--to",
                "2025-01-06T12:00",
            ]
        )
        == 0
    )
    db = sqlite_db(tmp_path)
    r = report.build_report(db, by="site", period="all", now_ms=T0 + DAY, site="msk")
    (row,) = r["rows"]
    assert row["polls"]["by_kind"]["staff"]["fm_no"] == 1
    assert row["kpi"]["di_staff"]["value"] == 0.0 and row["kpi"]["di_staff"]["n"] == 1
    db.close()


def test_removing_the_all_day_entry_keeps_the_shifts_still_listed(tmp_path):
    """v1: ivanova all day + petrov 15:00-23:00; v2 drops ivanova. Petrov's afternoon shift is
    still in the file, so his afternoon polls stay his (not unassigned)."""
    db = sqlite_db(tmp_path)
    base = SITE_TOML.replace("k = 0.8\nfrom = 2025-01-01T00:00:00Z\n", "k = 0.8\n").split("[[roster]]")[0]
    shift = '[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\nhours = "15:00-23:00"\n'
    apply_site(db, base + '[[roster]]\npanel = "msk/desk-1"\nemployee = "ivanova"\n\n' + shift, now_ms=T0 - DAY)
    apply_site(db, base + shift, now_ms=T0)
    h = site.load(db)
    assert h.employee_at("msk", "desk-1", T0 - DAY + 6 * 60 * MIN) == "petrov"  # Sunday 17:00 Moscow
    assert h.employee_at("msk", "desk-1", T0 - DAY + 60 * MIN) == "ivanova"  # Sunday 12:00
    assert h.employee_at("msk", "desk-1", T0 + DAY + 6 * 60 * MIN) == "petrov"  # Tuesday 17:00
    assert h.employee_at("msk", "desk-1", T0 + DAY) is None  # Tuesday 11:00


def test_fm_and_invalid_verdicts_apply_per_kind_and_latest_wins(tmp_path, capsys):
    from gateway import review
    from rating import cli

    db = sqlite_db(tmp_path)
    fms, late_no = _fm_chain(db)

    def kpis(k=None):
        row = report.build_report(db, by="site", now_ms=T0 + DAY, k=k)["rows"][0]
        return {n: (row["kpi"][n]["value"], row["kpi"][n]["n"]) for n in ("di_staff", "di_office", "eli")}

    pending = kpis()  # nothing reviewed: nothing excluded
    assert pending["di_staff"] == (((2 + 0.8) / 4), 4)
    assert pending["di_office"] == ((1 + 0.8) / 2, 2)
    assert pending["eli"][1] == 2
    for ident in fms.values():
        review.record(db, review.FM, ident, "confirm", "", "expert", T0 + DAY)
    confirmed = kpis()
    assert confirmed["di_staff"] == (0.5, 2)  # No + silent under FM leave; Yes and the late No stay
    assert confirmed["di_office"] == pending["di_office"]  # FM never matters for DI-office
    assert confirmed["eli"] == pending["eli"]  # nor for ELI
    review.record(db, review.FM, fms["desk-1"], "reject", "video shows no queue", "expert", T0 + DAY + 1)
    assert kpis()["di_staff"] == pending["di_staff"]  # latest verdict wins
    review.record(db, review.FM, fms["desk-1"], "confirm", "", "expert", T0 + DAY + 2)
    review.record(db, review.POLL, late_no, "invalid", "seller pressed twice", "expert", T0 + DAY + 3)
    assert kpis()["di_staff"] == (0.0, 1)
    review.record(db, review.POLL, late_no, "valid", "", "expert", T0 + DAY + 4)
    assert kpis()["di_staff"] == (0.5, 2)
    # k from the report overrides the site file's 0.8
    assert kpis(k=0.5)["di_office"] == ((1 + 0.5) / 2, 2)
    db.close()
    capsys.readouterr()
    assert cli.main(["report", "--db", "sqlite:///%s" % (tmp_path / "rating.db"), "--k", "0", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["k"] == 0.0 and data["rows"][0]["kpi"]["di_office"]["value"] == 0.5


def test_a_counts_interval_starting_before_the_range_counts_in_no_row(tmp_path):
    """An interval belongs to the period containing its start: one that starts before --from is
    outside the report in the day rows as in the total (they used to disagree)."""
    db = sqlite_db(tmp_path)
    small_chain(db)
    with db.transaction():
        store.insert_counts(db, "msk", "", T0 - 30 * MIN, T0 + 30 * MIN, 9, 20, "test", T0)  # starts before
        store.insert_counts(db, "msk", "", T0 + 30 * MIN, T0 + 90 * MIN, 4, 10, "test", T0)
    r = report.build_report(db, by="site", period="day", start=T0, now_ms=T0 + 2 * DAY)
    monday = next(x for x in r["rows"] if x["period"] == "2025-01-06")
    assert monday["counts"] == {"transactions": 4, "visitors": 10}
    assert r["total"]["counts"] == {"transactions": 4, "visitors": 10}
