"""Expert verdicts: append-only audit trail, latest wins, survive rebuild; FM rule; CLI."""

import json

import pytest
from gw_site_support import MIN, T0, review_scenario, sqlite_db, two_offices

import kpi_core
from gateway import derive, report, review
from rating import cli

scenario = review_scenario


def kpis(db, k=0.8):
    r = report.build_report(db, by="site", now_ms=T0 + 60 * MIN, k=k)
    (row,) = r["rows"]
    return row


def test_gw_review_fm_confirm_excludes_no_and_silent_from_di_staff_only(any_db):
    scenario(any_db)
    before = kpis(any_db)
    assert before["polls"]["by_kind"]["staff"] == {
        "yes": 2,
        "no": 2,
        "unsure": 0,
        "silent": 2,
        "fm_no": 0,
        "fm_silent": 0,
    }
    assert before["kpi"]["di_staff"]["value"] == pytest.approx((2 + 0.8 * 2) / 6)
    assert before["force_majeure"] == {"reports": 1, "confirmed": 0, "rejected": 0, "pending": 1}
    assert "fm_pending" in [f["code"] for f in before["flags"]]
    review.record(
        any_db, review.FM, "msk/desk-1/6", "confirm", "queue of 30 people, video 11:10", "expert", T0 + 61 * MIN
    )
    after = kpis(any_db)
    staff = after["polls"]["by_kind"]["staff"]
    assert (staff["fm_no"], staff["fm_silent"]) == (1, 1)
    assert after["kpi"]["di_staff"]["value"] == pytest.approx((1 + 0.8 * 1) / 4)
    assert after["kpi"]["di_staff"]["n"] == 4
    # DI-office (the exit panel's polls in the same minutes) is untouched
    assert after["kpi"]["di_office"] == before["kpi"]["di_office"]
    assert after["kpi"]["di_office"]["value"] == pytest.approx((1 + 0.8) / 2)
    assert "fm_pending" not in [f["code"] for f in after["flags"]]
    # a narrower confirmed period (the expert watched the video) covers only the No at 12 min
    review.record(
        any_db,
        review.FM,
        "msk/desk-1/6",
        "confirm",
        "only until 11:13",
        "expert",
        T0 + 62 * MIN,
        from_ms=T0 + 10 * MIN,
        to_ms=T0 + 13 * MIN,
    )
    assert kpis(any_db)["polls"]["by_kind"]["staff"]["fm_silent"] == 0
    review.record(any_db, review.FM, "msk/desk-1/6", "reject", "no queue on video", "chief", T0 + 63 * MIN)
    assert kpis(any_db)["kpi"]["di_staff"] == before["kpi"]["di_staff"]


def test_gw_review_poll_verdicts_audit_trail_and_rebuild(any_db):
    scenario(any_db)
    with pytest.raises(review.ReviewError, match="--reason is required"):
        review.record(any_db, review.POLL, "msk/desk-1/3", "invalid", "", "expert", T0)
    with pytest.raises(review.ReviewError, match="no poll msk/desk-1/4"):
        review.record(any_db, review.POLL, "msk/desk-1/4", "invalid", "x", "expert", T0)
    with pytest.raises(review.ReviewError, match="not an id like"):
        review.parse_id("msk/desk-1")
    review.record(any_db, review.POLL, "msk/desk-1/3", "invalid", "seller pressed Yes himself", "anna", T0 + 70 * MIN)
    assert kpis(any_db)["polls"]["invalid"] == 1
    derive.rebuild(any_db, T0 + 80 * MIN)  # verdicts refer to ids, not rows
    row = kpis(any_db)
    assert row["polls"]["invalid"] == 1 and row["polls"]["by_kind"]["staff"]["no"] == 1
    review.record(
        any_db, review.POLL, "msk/desk-1/3", "valid", "video re-checked: customer pressed", "boris", T0 + 90 * MIN
    )
    assert kpis(any_db)["polls"]["invalid"] == 0
    trail = review.history(any_db, "msk/desk-1/3")
    assert [(r["verdict"], r["by_name"], r["at_ms"]) for r in trail] == [
        ("invalid", "anna", T0 + 70 * MIN),
        ("valid", "boris", T0 + 90 * MIN),
    ]
    assert trail[0]["reason"] == "seller pressed Yes himself"


def test_gw_review_sample_is_stratified_and_stable(tmp_path):
    db = sqlite_db(tmp_path)
    scenario(db)
    polls, fms = derive.polls_and_reports(db)
    s1 = review.sample(polls, fms, 0.0)
    assert {x[0] for x in s1} == {"no", "fm"}
    assert len([x for x in s1 if x[0] == "no"]) == 3 and len([x for x in s1 if x[0] == "fm"]) == 1
    everything = review.sample(polls, fms, 1.0)
    assert len(everything) == len(polls) + len(fms)
    half = review.sample(polls, fms, 0.5, seed="x")
    assert half == review.sample(polls, fms, 0.5, seed="x")  # stable for a seed
    # adding polls does not reshuffle the sample of the old ones
    assert [x for x in review.sample(polls[:5], fms, 0.5, seed="x")] == [
        x for x in half if x[0] == "fm" or x[1] in polls[:5]
    ]


def test_gw_review_cli(tmp_path, capsys):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    db = sqlite_db(tmp_path)
    scenario(db)
    assert cli.main(["review", "list", "--db", url, "--share", "0", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "msk/desk-1/3" in out and "No answer" in out and "https://nvr.local/cam/3/archive?t=" in out
    assert "msk/desk-1/6" in out and "force majeure" in out and "pending review" in out
    assert cli.main(["review", "poll", "msk/desk-1/3", "--invalid", "--db", url]) == 2
    assert "--reason is required" in capsys.readouterr().err
    assert (
        cli.main(["review", "poll", "msk/desk-1/3", "--invalid", "--reason", "staged", "--expert", "anna", "--db", url])
        == 0
    )
    assert (
        cli.main(
            [
                "review",
                "fm",
                "msk/desk-1/6",
                "--confirm",
                "--from",
                "2025-01-06T11:10:00+03:00",
                "--to",
                "2025-01-06T11:20:00+03:00",
                "--expert",
                "anna",
                "--db",
                url,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert cli.main(["review", "history", "msk/desk-1/3", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "invalid" in out and "anna" in out and "staged" in out
    assert cli.main(["report", "--db", url, "--format", "json", "--lang", "ru"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["polls"]["invalid"] == 1
    assert data["rows"][0]["force_majeure"]["confirmed"] == 1


def test_gw_review_counts_match_kpi_core(tmp_path):
    db = sqlite_db(tmp_path)
    scenario(db)
    row = kpis(db, k=0.5)
    c = kpi_core.PollCounts(**row["polls"]["by_kind"]["staff"])
    assert row["kpi"]["di_staff"]["value"] == kpi_core.di_staff(c, 0.5).value


def test_review_list_dates_are_each_offices_local_day(tmp_path, capsys):
    """`rating review list` without --site reads a date like `rating report` does: each office's
    own day (it used the first office's timezone for all)."""
    from rating import cli

    url = two_offices(
        tmp_path,
        [
            (-2, "no"),  # 09:00 Moscow on the 6th: in
            (15, "no"),
        ],  # 02:00 Moscow on the 7th: out (still the 6th in LA)
        [
            (-1, "no"),  # 23:00 LA on the 5th: out (already the 6th in Moscow)
            (10, "no"),
        ],
    )  # 10:00 LA on the 6th: in
    capsys.readouterr()
    # every No answer is in the review sample: the listed ones are the polls in range
    assert cli.main(["review", "list", "--db", url, "--from", "2025-01-06", "--to", "2025-01-06", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith(("msk/", "aaa/"))]
    assert sorted(x.split("/")[0] for x in listed) == ["aaa", "msk"], out
    assert "2025-01-06 09:00" in out and "2025-01-06 10:00" in out, out  # each in its local time
    assert "2025-01-07 02:00" not in out and "2025-01-05 23:00" not in out, out


def test_gw_review_undo_records_the_verdict_before_or_reopens(any_db):
    scenario(any_db)
    with pytest.raises(review.ReviewError, match="no verdict to undo"):
        review.undo(any_db, review.POLL, "msk/desk-1/3", "anna", T0 + 70 * MIN)
    review.record(any_db, review.POLL, "msk/desk-1/3", "invalid", "staff test", "anna", T0 + 61 * MIN)
    review.undo(any_db, review.POLL, "msk/desk-1/3", "boris", T0 + 62 * MIN)
    verdicts = review.latest(any_db)
    assert verdicts[(review.POLL, "msk", "desk-1", 3)]["verdict"] == review.REOPEN
    assert "msk/desk-1/3" not in review.invalid_poll_ids(verdicts)
    review.record(any_db, review.FM, "msk/desk-1/6", "confirm", "", "anna", T0 + 63 * MIN, T0 + 9 * MIN, T0 + 20 * MIN)
    review.record(any_db, review.FM, "msk/desk-1/6", "reject", "no queue on video", "anna", T0 + 64 * MIN)
    row = review.undo(any_db, review.FM, "msk/desk-1/6", "boris", T0 + 65 * MIN)
    assert (row["verdict"], row["from_ms"], row["to_ms"]) == ("confirm", T0 + 9 * MIN, T0 + 20 * MIN)
    assert review.fm_status(review.latest(any_db), "msk", "desk-1", 6) == "confirmed"
    # the trail only grows: five rows, none edited
    assert [r["verdict"] for r in review.history(any_db, "msk/desk-1/3")] == ["invalid", "reopen"]
    assert len(review.history(any_db, "msk/desk-1/6")) == 3


def test_gw_review_latest_for_reads_only_the_asked_targets(any_db):
    scenario(any_db)
    review.record(any_db, review.POLL, "msk/desk-1/3", "invalid", "x", "anna", T0 + 61 * MIN)
    review.record(any_db, review.POLL, "msk/exit/1", "invalid", "y", "anna", T0 + 61 * MIN)
    review.record(any_db, review.POLL, "msk/desk-1/3", "valid", "", "anna", T0 + 62 * MIN)
    keys = [(review.POLL, "msk", "desk-1", 3), (review.POLL, "msk", "desk-1", 1)]
    got = review.latest_for(any_db, keys)
    assert list(got) == [keys[0]] and got[keys[0]]["verdict"] == "valid"
    assert got == {k: v for k, v in review.latest(any_db).items() if k in keys}
