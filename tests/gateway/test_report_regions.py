"""`rating report --by region`: office rows rolled up through the site file's location tree."""

import json

from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events

import kpi_core
from gateway import derive, report, report_regions
from rating import cli

REGIONS = """
[[regions]]
id = "russia"
name = "Russia"

[[regions]]
id = "central"
name = "Central"
parent = "russia"

[[regions]]
id = "north"
name = "North-West"
parent = "russia"

[[sites]]
id = "spb"
name = "SPb"
timezone = "Europe/Moscow"
region = "north"

[[sites]]
id = "far"
name = "Far away"
timezone = "Asia/Vladivostok"
"""

PANELS = """
[[panels]]
site = "spb"
device = "desk-1"
question = "staff"

[[panels]]
site = "far"
device = "desk-1"
question = "staff"
"""


def chain(tmp_path):
    """msk (central), spb (north), far (no region), each a staff panel with its own answers."""
    db = sqlite_db(tmp_path)
    text = SITE_TOML.replace('timezone = "Europe/Moscow"', 'timezone = "Europe/Moscow"\nregion = "central"', 1)
    text = text.replace("[[questions]]", REGIONS + "\n[[questions]]", 1) + PANELS
    apply_site(db, text)
    answers = {"msk": ["yes", "no", "yes", None], "spb": ["no", "no", "yes"], "far": ["yes", "unsure"]}
    events = []
    for site_id, these in answers.items():
        p = Panel(site_id, "desk-1")
        for i, a in enumerate(these):
            p.poll(T0 + i * 3 * MIN, a)
        events += p.events
    store_events(db, events)
    derive.update(db, [(s, "desk-1") for s in answers], T0 + 3600 * 1000)
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    return db, url


def test_gw_region_rows_are_their_offices_sums_nested_regions_included(tmp_path):
    db, _url = chain(tmp_path)
    by_site = report.build_report(db, by="site", lang="en")
    rep = report_regions.build(db, lang="en")
    rows = {r["key"]: r for r in rep["rows"]}
    assert [r["key"] for r in rep["rows"]] == ["russia", "central", "north", "-"]  # the tree's order
    site_rows = {r["key"]: r for r in by_site["rows"]}
    # a region of one office says what the office says
    assert rows["central"]["kpi"] == site_rows["msk"]["kpi"] and rows["central"]["offices"] == ["msk"]
    # the parent region sums both offices: the figure of the summed counts, not an average
    staff = kpi_core.PollCounts(**site_rows["msk"]["polls"]["by_kind"]["staff"]) + kpi_core.PollCounts(
        **site_rows["spb"]["polls"]["by_kind"]["staff"]
    )
    assert rows["russia"]["polls"]["valid"] == 7 and rows["russia"]["offices"] == ["msk", "spb"]
    assert rows["russia"]["kpi"]["di_staff"]["value"] == kpi_core.di_staff(staff, rep["k"]).value
    assert rows["russia"]["kpi"]["di_staff"]["n"] == staff.valid
    # offices outside every region keep the rows adding up to the total
    assert rows["-"]["offices"] == ["far"] and rows["-"]["label"] == "offices outside every region"
    assert rep["total"] == by_site["total"] and rep["by"] == "region"
    db.close()


def test_gw_region_rows_for_a_scope_show_only_whole_regions_and_its_total(tmp_path):
    db, _url = chain(tmp_path)
    rep = report_regions.build(db, lang="en", sites={"spb"})
    assert [r["key"] for r in rep["rows"]] == ["north"]  # russia also holds msk: not shown
    assert rep["total"]["polls"]["valid"] == 3
    assert {b["site"] for b in rep["bottleneck"]} <= {"spb"}
    db.close()


def test_gw_report_by_region_on_the_command_line(tmp_path, capsys):
    db, url = chain(tmp_path)
    db.close()
    assert cli.main(["report", "--db", url, "--by", "region", "--format", "json", "--lang", "en"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["by"] == "region" and [r["label"] for r in data["rows"]] == [
        "Russia",
        "Central",
        "North-West",
        "offices outside every region",
    ]
    assert cli.main(["report", "--db", url, "--by", "region", "--lang", "en"]) == 0
    assert "North-West" in capsys.readouterr().out
    args = ["report", "--db", url, "--by", "region", "--sort", "di_staff", "--format", "json"]
    assert cli.main(args) == 0
    ranked = json.loads(capsys.readouterr().out)["rows"]
    assert {r["key"] for r in ranked} == {"russia", "central", "north", "-"} and all("rank" in r for r in ranked)


def test_gw_report_by_region_without_regions_says_what_to_do(tmp_path, capsys):
    db = sqlite_db(tmp_path)
    apply_site(db)
    db.close()
    assert cli.main(["report", "--db", "sqlite:///%s" % (tmp_path / "rating.db"), "--by", "region"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --by region: the site file has no [[regions]]; add them (docs/site-file.md) or use --by site"
    ]


def test_gw_region_total_adds_tallies_as_tally_addition_does():
    import random

    from gateway.report_core import Tally
    from kpi_core import PollCounts, ScopeCounts

    rng = random.Random(3)

    def some():
        pc = PollCounts(*(rng.randint(0, 9) for _ in range(4)))
        staff = pc if rng.random() < 0.7 else None
        return Tally(
            scope=ScopeCounts(
                staff=staff,
                loyalty=PollCounts(1, 2, 3, 4, 1, 2) if rng.random() < 0.5 else None,
                polls=rng.randint(0, 50),
                fm_reports=rng.randint(0, 3),
                transactions=rng.choice([None, rng.randint(0, 99)]),
            ),
            invalid=rng.randint(0, 3),
            fm_pending=rng.randint(0, 2),
            time_arrival=rng.randint(0, 4),
        )

    for n in (0, 1, 5):
        tallies = [some() for _ in range(n)]
        expected = Tally()
        for t in tallies:
            expected = expected + t
        assert report_regions.total(tallies) == expected


def test_gw_report_workbook_has_a_regions_sheet_when_the_site_file_has_regions(tmp_path, capsys):
    import openpyxl

    db, url = chain(tmp_path)
    db.close()
    out = tmp_path / "kpi.xlsx"
    assert cli.main(["report", "--db", url, "--lang", "en", "-o", str(out)]) == 0
    names = openpyxl.load_workbook(out).sheetnames
    assert "Regions" in names and "Offices" in names
