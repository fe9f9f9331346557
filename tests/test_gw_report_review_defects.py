"""Reviewer's regression tests: the events -> KPI report path against METHOD.md."""

import json

from gw_part2_support import MIN, SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events

from gateway import derive, report, site

DAY = 24 * 60 * MIN


def test_gw_report_shift_added_later_does_not_claim_earlier_polls(tmp_path):
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


def test_gw_report_from_to_dates_use_the_chosen_sites_timezone(tmp_path, capsys):
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


def test_gw_report_fm_corrected_period_is_read_in_the_reports_office_timezone(tmp_path):
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
                "--by",
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


def test_gw_report_removing_the_all_day_entry_keeps_the_shifts_still_listed(tmp_path):
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


def test_gw_report_fm_and_invalid_verdicts_apply_per_kind_and_latest_wins(tmp_path, capsys):
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
    for dev, ident in fms.items():
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
