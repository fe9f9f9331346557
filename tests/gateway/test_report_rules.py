"""Report rules that keep numbers from misleading: conversion and coverage from the panels that
are customer contacts and from the time the counts cover, people rows with people's figures,
lost-event warnings in the windows that contain the gap, a bottleneck text that says what to do."""

import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events

from gateway import derive, report, site, store
from rating import cli

DAY = 24 * 60 * MIN
HOUR = 60 * MIN
PANELS = [("msk", "desk-1"), ("msk", "exit"), ("msk", "door")]


def desk_and_exit(db, text=SITE_TOML, n=10):
    """Each customer is polled at the desk (staff question) and again at the exit (office)."""
    apply_site(db, text)
    d, e = Panel(), Panel(device="exit")
    for i in range(n):
        d.poll(T0 + i * 5 * MIN, "yes")
        e.poll(T0 + i * 5 * MIN + 2 * MIN, "yes" if i % 2 else "no")
    store_events(db, d.events + e.events)
    derive.update(db, PANELS[:2], T0 + DAY)
    with db.transaction():
        store.insert_counts(db, "msk", "", T0 - HOUR, T0 + 2 * HOUR, 10, 20, "test", T0)


def test_conversion_and_coverage_count_only_the_contact_panels_polls(tmp_path):
    """10 customers, each polled at the desk and at the exit, 10 sales: conversion is 100 %, not
    200 % ("check the counter") as when every panel's polls were added up."""
    db = sqlite_db(tmp_path)
    desk_and_exit(db)
    (row,) = report.build_report(db, by="site", now_ms=T0 + DAY)["rows"]
    assert row["polls"]["valid"] == 20 and row["polls"]["contact"] == 10
    assert row["kpi"]["exact_conversion"]["value"] == 1.0
    assert row["kpi"]["visitor_coverage"]["value"] == 0.5
    assert "polls_exceed_base" not in {f["code"] for f in row["flags"]}
    rows = {r["key"]: r for r in report.build_report(db, by="device", now_ms=T0 + DAY)["rows"]}
    assert rows["msk/exit"]["polls"]["contact"] == 0  # the exit panel asks the office question


def test_the_site_file_says_which_panels_count_toward_conversion(tmp_path):
    text = SITE_TOML.replace(
        'device = "exit"\nquestion = "office"\n', 'device = "exit"\nquestion = "office"\nconversion = true\n'
    )
    text = text.replace('question = "staff"\ncamera', 'question = "staff"\nconversion = false\ncamera')
    db = sqlite_db(tmp_path)
    desk_and_exit(db, text)
    (row,) = report.build_report(db, by="site", now_ms=T0 + DAY)["rows"]
    assert row["polls"]["contact"] == 10 and row["kpi"]["exact_conversion"]["value"] == 1.0
    assert site.load(db).panel("msk", "exit", T0)["conversion"] is True
    with pytest.raises(site.SiteFileError, match=r"panels\[1\]\.conversion: must be true or false, got 'yes'"):
        site.parse(SITE_TOML.replace('device = "exit"\n', 'device = "exit"\nconversion = "yes"\n'))
    # the key is kept only when given: a file without it, applied again, changes nothing
    other = sqlite_db(tmp_path, "other.db")
    apply_site(other)
    assert site.plan(site._history_rows(other), site.parse(SITE_TOML), T0 + DAY) == []


def test_counts_for_one_hour_against_a_day_of_polls_give_conversion_over_that_hour(tmp_path):
    """One imported hour against a whole day of polls gave 8300 %: conversion and coverage are
    computed over the hour the counts cover, and the row says how much of the period that is."""
    db = sqlite_db(tmp_path)
    apply_site(db)
    d = Panel(booted_at=T0 - DAY)
    start = T0 - 2 * HOUR  # 09:00 Moscow
    for i in range(83):  # every 6 minutes from 09:00 to 17:18
        d.poll(start + i * 6 * MIN, "yes")
    store_events(db, d.events)
    derive.update(db, [("msk", "desk-1")], T0 + DAY)
    with db.transaction():
        store.insert_counts(db, "msk", "", start, start + HOUR, 20, 40, "test", T0)  # 09:00-10:00 only
    r = report.build_report(db, by="site", period="day", now_ms=T0 + DAY, lang="en")
    (row,) = r["rows"]
    assert row["polls"]["contact"] == 83 and row["polls"]["in_transactions_time"] == 10
    assert row["kpi"]["exact_conversion"]["value"] == pytest.approx(10 / 20)
    assert row["kpi"]["visitor_coverage"]["value"] == pytest.approx(10 / 40)
    assert row["counted_time"]["transactions_hours"] == 1.0
    assert row["counted_time"]["transactions_share"] == pytest.approx(1 / 24)
    flags = {f["code"]: f for f in row["flags"]}
    assert "polls_exceed_base" not in flags
    text = flags["counts_partial_transactions"]["message"]
    assert "1 h, 4 %" in text and "the 10 polls" in text and "the 73 outside" in text
    assert "1 ч, 4 %" in flags["counts_partial_transactions"]["message_ru"]
    assert "counts_partial_visitors" in flags


def test_people_rows_show_staff_figures_only(tmp_path):
    """A seller rostered on the exit panel (office question): their row shows DI-staff, not
    DI-office; the office's row still shows both."""
    text = SITE_TOML + '\n[[roster]]\npanel = "msk/exit"\nemployee = "ivanova"\nfrom = 2025-01-01T00:00:00Z\n'
    db = sqlite_db(tmp_path)
    desk_and_exit(db, text)
    r = report.build_report(db, by="employee", now_ms=T0 + DAY)
    (row,) = r["rows"]
    assert row["key"] == "ivanova" and row["polls"]["valid"] == 20
    assert row["kpi"]["di_office"] is None and row["kpi"]["eli"] is None
    assert set(row["polls"]["by_kind"]) == {"staff"} and row["kpi"]["di_staff"]["n"] == 10
    (office,) = report.build_report(db, by="site", now_ms=T0 + DAY)["rows"]
    assert office["kpi"]["di_office"]["n"] == 10


def test_unassigned_polls_say_why(tmp_path):
    db = sqlite_db(tmp_path)
    desk_and_exit(db)  # nobody on the exit panel's roster
    rows = {r["key"]: r for r in report.build_report(db, by="employee", now_ms=T0 + DAY, lang="en")["rows"]}
    (note,) = [f for f in rows[""]["flags"] if f["code"] == "no_roster"]
    assert note["message"].startswith("10 poll(s) on msk/exit were opened while no one was on the panel's roster")
    assert "[[roster]]" in note["message_ru"]
    assert all(f["code"] != "no_roster" for f in rows["ivanova"]["flags"])


def test_lost_events_warn_only_in_windows_that_contain_the_gap(tmp_path):
    """One event lost on Monday (between two stored Monday events): Monday's row warns, Tuesday's
    does not. (A gap is placed between the stored events around it: when those are on two days,
    both days warn, since the lost event may lie in either.)"""
    db = sqlite_db(tmp_path)
    apply_site(db)
    p = Panel()
    p.poll(T0, "yes")
    p.poll(T0 + MIN, "no")  # seqs 3, 4: the answer (4) is lost
    p.poll(T0 + 10 * MIN, "yes")  # the gap lies between 11:01 and 11:10 on Monday
    p.poll(T0 + DAY, "yes")
    p.poll(T0 + DAY + MIN, "yes")
    store_events(db, [e for e in p.events if e["seq"] != 4])
    derive.update(db, [("msk", "desk-1")], T0 + 2 * DAY)
    r = report.build_report(db, by="device", period="day", now_ms=T0 + 2 * DAY, lang="en")
    rows = {x["period"]: x for x in r["rows"]}
    assert rows["2025-01-06"]["lost_events"] == 1
    assert "lost_events" in {f["code"] for f in rows["2025-01-06"]["flags"]}
    assert rows["2025-01-07"]["lost_events"] == 0
    assert "lost_events" not in {f["code"] for f in rows["2025-01-07"]["flags"]}
    assert r["total"]["lost_events"] == 1
    # a report of Tuesday alone does not warn either
    r = report.build_report(db, by="site", start=T0 + DAY - 11 * HOUR, now_ms=T0 + 2 * DAY)
    assert r["rows"][0]["lost_events"] == 0 and r["total"]["lost_events"] == 0


def test_a_gap_at_the_end_warns_from_the_last_stored_event_on(tmp_path):
    """Events the panel dropped after the last stored one (its journal floor moved past them)
    may lie anywhere after that event: every later window warns, earlier ones do not."""
    from gateway import store as st

    db = sqlite_db(tmp_path)
    apply_site(db)
    p = Panel()
    p.poll(T0, "yes")
    p.poll(T0 + DAY, "yes")
    store_events(db, p.events)
    state = {"v": 1, "seq": 10, "pending": 2, "online": True, "boot": 1, "up": 1, "t": T0 + DAY}
    with db.transaction():
        st.upsert_state(db, "msk", "desk-1", state, T0 + DAY, "{}")
    derive.update(db, [("msk", "desk-1")], T0 + 2 * DAY)
    r = report.build_report(db, by="device", period="day", now_ms=T0 + 2 * DAY)
    lost = {x["period"]: x["lost_events"] for x in r["rows"]}
    assert lost["2025-01-06"] == 0 and lost["2025-01-07"] == 4  # seqs 5-8 below the floor 9


def test_bottleneck_says_what_is_missing_and_what_to_do(tmp_path, capsys):
    db = sqlite_db(tmp_path)
    apply_site(db, SITE_TOML.replace('lang = "en"', 'lang = "ru"'))
    d = Panel()
    for i in range(40):
        d.poll(T0 + i * MIN, "no" if i % 3 == 0 else "yes")  # DI-staff 35 % vs reference 10 %
    store_events(db, d.events)
    derive.update(db, [("msk", "desk-1")], T0 + DAY)
    (b,) = report.build_report(db, now_ms=T0 + DAY, lang="en")["bottleneck"]
    assert b["verdict"] == "not enough data"
    assert b["reason"] == "Cannot tell: there are no polls of the office question (add a panel asking it)."
    db.close()
    capsys.readouterr()
    assert cli.main(["report", "--db", "sqlite:///%s" % (tmp_path / "rating.db")]) == 0
    out = capsys.readouterr().out
    assert "недостаточно данных. Нельзя определить: нет опросов с вопросом об офисе" in out


def test_staff_much_worse_than_office_and_reference_is_looked_at_first(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    d, e = Panel(), Panel(device="exit")
    for i in range(40):  # DI-staff 30 %, DI-office 10 %, references 10 % / 12 %
        d.poll(T0 + i * MIN, "no" if i % 10 < 3 else "yes")
        e.poll(T0 + i * MIN, "no" if i % 10 == 0 else "yes")
    store_events(db, d.events + e.events)
    derive.update(db, PANELS[:2], T0 + DAY)
    (b,) = report.build_report(db, now_ms=T0 + DAY, lang="en")["bottleneck"]
    assert b["verdict"] == "staff first"
    assert "look at the staff first" in b["reason"].lower()
