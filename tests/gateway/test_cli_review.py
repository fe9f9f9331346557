"""The expert at the terminal: `review list` filters (--pending, --kind, --limit) and formats
(csv, json), corrected force-majeure periods in the list, several ids per verdict command and a
verdicts file (all or nothing), no verdict when nothing changes, --expert (--by refused)."""

import csv
import io
import json

import pytest
from gw_site_support import open_db, run_cli
from gw_site_support import review_scenario as scenario

from gateway import review
from rating import cli

# the scenario: desk-1 polls 1 (yes), 3 (no), 5 (silent), report 6, 7 (no), 9 (silent), 10 (yes);
# exit polls 1 (no), 3 (silent). With --share 0: the No answers and the report.
NOS = ["msk/desk-1/3", "msk/desk-1/7", "msk/exit/1"]


@pytest.fixture
def url(any_db_url):
    u = any_db_url
    db = open_db(u)
    scenario(db)
    db.close()
    return u


def trail(url, ident):
    db = open_db(url)
    try:
        return [(r["target"], r["verdict"], r["by_name"]) for r in review.history(db, ident)]
    finally:
        db.close()


def listed(capsys, url, *extra):
    code, out, err = run_cli(capsys, "review", "list", "--share", "0", "--format", "json", "--db", url, *extra)
    assert code == 0, err
    return json.loads(out)


def test_list_filters_by_kind_pending_and_limit(url, capsys):
    assert [it["id"] for it in listed(capsys, url)] == ["msk/desk-1/3", "msk/desk-1/6", "msk/desk-1/7", "msk/exit/1"]
    assert [it["id"] for it in listed(capsys, url, "--kind", "fm")] == ["msk/desk-1/6"]
    assert [it["id"] for it in listed(capsys, url, "--kind", "no")] == NOS
    assert [it["id"] for it in listed(capsys, url, "--limit", "2")] == ["msk/desk-1/3", "msk/desk-1/6"]
    run_cli(
        capsys, "review", "poll", "msk/desk-1/3", "--invalid", "--reason", "staged", "--expert", "anna", "--db", url
    )
    assert [it["id"] for it in listed(capsys, url, "--pending", "--kind", "no")] == ["msk/desk-1/7", "msk/exit/1"]
    code, out, _err = run_cli(capsys, "review", "list", "--share", "0", "--limit", "1", "--db", url)
    assert code == 0 and "(1 of 4 shown: --limit)" in out
    assert run_cli(capsys, "review", "list", "--limit", "0", "--db", url)[0] == 2


def test_list_as_csv_and_json_carries_ids_times_and_verdicts(url, capsys):
    code, out, _err = run_cli(capsys, "review", "list", "--share", "0", "--format", "csv", "--db", url)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["id"] for r in rows] == ["msk/desk-1/3", "msk/desk-1/6", "msk/desk-1/7", "msk/exit/1"]
    assert rows[0]["time"] == "2025-01-06T11:02:00+03:00" and rows[0]["answer"] == "no"
    assert rows[0]["video_url"].startswith("https://nvr.local/cam/3/archive?t=")
    code = cli.main(["--lang", "ru", "review", "list", "--share", "0", "--format", "csv", "--db", url])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[0].startswith("id;kind;time;")  # as Russian Excel reads it
    fm = listed(capsys, url, "--kind", "fm")[0]
    assert fm["pending"] is True and fm["verdict"] is None and fm["time"] == "2025-01-06T11:10:00+03:00"


def test_a_corrected_force_majeure_period_is_shown_in_the_list(url, capsys):
    code, out, err = run_cli(
        capsys,
        "review",
        "fm",
        "msk/desk-1/6",
        "--confirm",
        "--from",
        "2025-01-06T11:10",
        "--to",
        "2025-01-06T11:13",
        "--expert",
        "anna",
        "--db",
        url,
    )
    assert code == 0, err
    code, out, _err = run_cli(capsys, "review", "list", "--share", "0", "--kind", "fm", "--db", url)
    assert code == 0 and "corrected period: 2025-01-06 11:10:00-11:13:00 MSK" in out
    fm = listed(capsys, url, "--kind", "fm")[0]
    assert (fm["verdict"], fm["corrected_from"], fm["corrected_to"]) == (
        "confirmed",
        "2025-01-06T11:10:00+03:00",
        "2025-01-06T11:13:00+03:00",
    )


def test_several_ids_are_recorded_together_or_not_at_all(url, capsys):
    code, out, _err = run_cli(
        capsys, "review", "poll", *NOS, "--invalid", "--reason", "staged", "--expert", "anna", "--db", url
    )
    assert code == 0 and out.count("marked invalid by anna") == 3
    code, _out, err = run_cli(
        capsys,
        "review",
        "poll",
        "msk/desk-1/5",
        "msk/desk-1/4",
        "--invalid",
        "--reason",
        "x",
        "--expert",
        "b",
        "--db",
        url,
    )
    assert code == 2 and "msk/desk-1/4: no such poll" in err
    assert trail(url, "msk/desk-1/5") == []  # the good id was not recorded either


def test_no_verdict_is_recorded_when_nothing_changes(url, capsys):
    argv = ("review", "poll", "msk/desk-1/3", "--invalid", "--reason", "staged", "--expert", "anna", "--db", url)
    assert run_cli(capsys, *argv)[0] == 0
    code, out, _err = run_cli(capsys, *argv)
    assert code == 0 and out == "poll msk/desk-1/3 is already marked invalid: nothing recorded\n"
    assert trail(url, "msk/desk-1/3") == [("poll", "invalid", "anna")]
    fm = ("review", "fm", "msk/desk-1/6", "--confirm", "--expert", "anna", "--db", url)
    assert run_cli(capsys, *fm)[0] == 0
    assert (
        run_cli(capsys, *fm)[1]
        == "force-majeure report msk/desk-1/6 is already confirmed with this period: nothing recorded\n"
    )
    # another period is a change
    assert "confirmed by anna" in run_cli(capsys, *fm, "--from", "2025-01-06T11:10", "--to", "2025-01-06T11:12")[1]
    assert len(trail(url, "msk/desk-1/6")) == 2


def test_a_verdicts_file_is_recorded_all_or_nothing(url, tmp_path, capsys):
    path = tmp_path / "verdicts.csv"
    path.write_text(
        "\ufeffid;verdict;reason;from;to\n"
        "msk/desk-1/3;invalid;staged by the seller;;\n"
        "msk/desk-1/6;confirm;queue on video;2025-01-06T11:10;2025-01-06T11:13\n"
        "msk/desk-1/4;invalid;typo id;;\n"
        "msk/exit/1;reject;;;\n",
        encoding="utf-8",
    )
    code, _out, err = run_cli(capsys, "review", "batch", str(path), "--expert", "anna", "--db", url)
    assert code == 2
    assert "line 5: verdict: must be one of" in err or "line 5: reason: is required for reject" in err
    assert trail(url, "msk/desk-1/3") == [] and trail(url, "msk/desk-1/6") == []
    path.write_text(
        "id;verdict;reason;from;to\n"
        "msk/desk-1/3;invalid;staged by the seller;;\n"
        "msk/desk-1/6;confirm;queue on video;2025-01-06T11:10;2025-01-06T11:13\n"
        "msk/desk-1/4;invalid;typo id;;\n",
        encoding="utf-8",
    )
    code, _out, err = run_cli(capsys, "review", "batch", str(path), "--expert", "anna", "--db", url)
    assert code == 2 and "line 4: msk/desk-1/4: no such poll" in err and "nothing recorded" in err
    assert trail(url, "msk/desk-1/3") == []
    path.write_text(
        "id,verdict,reason,from,to\n"
        "msk/desk-1/3,invalid,staged by the seller,,\n"
        "msk/desk-1/6,confirm,queue on video,2025-01-06T11:10,2025-01-06T11:13\n",
        encoding="utf-8",
    )
    code, out, _err = run_cli(capsys, "review", "batch", str(path), "--expert", "anna", "--db", url)
    assert code == 0 and "2 verdicts recorded" in out
    db = open_db(url)
    (fm,) = [r for r in review.history(db, "msk/desk-1/6")]
    db.close()
    assert (fm["from_ms"], fm["to_ms"]) == (1736151000000, 1736151180000)  # 11:10-11:13 Moscow
    code, out, _err = run_cli(capsys, "review", "batch", str(path), "--expert", "anna", "--db", url)
    assert code == 0 and "0 verdicts recorded" in out and out.count("nothing recorded") == 2


def test_by_is_refused_with_the_new_name(url, capsys):
    code, _out, err = run_cli(
        capsys, "review", "poll", "msk/desk-1/3", "--invalid", "--reason", "x", "--by", "anna", "--db", url
    )
    assert code == 2 and err == "error: --by is now --expert (who gives the verdict): write --expert anna\n"
    assert trail(url, "msk/desk-1/3") == []
