"""An unknown office, panel, employee or poll id, and a --from after --to, are errors that list
what exists (not an empty answer with exit 0)."""

import pytest
from gw_site_support import open_db, run_cli
from gw_site_support import review_scenario as scenario


@pytest.fixture
def url(any_db_url):
    """A database with the review scenario (office msk: desk-1, exit, door)."""
    u = any_db_url
    db = open_db(u)
    scenario(db)
    db.close()
    return u


@pytest.mark.parametrize(
    "argv",
    [("report", "--site", "mks"), ("review", "list", "--site", "mks"), ("counts", "list", "--site", "mks")],
    ids=["report", "review list", "counts list"],
)
def test_an_unknown_office_lists_the_offices(argv, url, capsys):
    code, out, err = run_cli(capsys, *argv, "--db", url)
    assert (code, out) == (2, "")
    assert err == "error: no office 'mks'; the offices are: msk (Офис на Тверской)\n"


def test_an_unknown_employee_lists_the_employees(url, capsys):
    code, _out, err = run_cli(capsys, "report", "--employee", "ivanov", "--db", url)
    assert (
        code == 2
        and err == "error: no employee 'ivanov'; the employees are: ivanova (Елена Иванова), petrov (Сергей Петров)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("report", "--from", "2025-01-07", "--to", "2025-01-06"),
        ("report", "--site", "msk", "--from", "2025-01-06T12:00", "--to", "2025-01-06T11:00"),
        ("review", "list", "--from", "2025-01-07", "--to", "2025-01-06"),
        ("counts", "list", "--from", "2025-01-07", "--to", "2025-01-06"),
    ],
)
def test_from_after_to_is_an_error(argv, url, capsys):
    code, _out, err = run_cli(capsys, *argv, "--db", url)
    assert code == 2 and err.startswith("error: --from is not before --to") and err.count("\n") == 1


def test_review_history_of_an_unknown_id_says_what_exists(url, capsys):
    code, _out, err = run_cli(capsys, "review", "history", "mks/desk-1/3", "--db", url)
    assert code == 2 and err == "error: mks/desk-1/3: no office 'mks'; the offices are: msk\n"
    code, _out, err = run_cli(capsys, "review", "history", "msk/desk-7/3", "--db", url)
    assert (
        code == 2
        and err == "error: msk/desk-7/3: office msk has no panel 'desk-7'; its panels are: desk-1, door, exit\n"
    )
    code, _out, err = run_cli(capsys, "review", "history", "msk/desk-1/4", "--db", url)
    assert code == 2 and "msk/desk-1/4: no poll or force-majeure report" in err
    assert "rating review list --site msk" in err
    # a poll that exists but has no verdict yet is not an error
    code, out, _err = run_cli(capsys, "review", "history", "msk/desk-1/3", "--db", url)
    assert code == 0 and out == "msk/desk-1/3: no verdicts yet\n"


def test_a_verdict_on_an_unknown_panel_lists_its_panels(url, capsys):
    code, _out, err = run_cli(
        capsys, "review", "poll", "msk/desk1/3", "--invalid", "--reason", "x", "--expert", "anna", "--db", url
    )
    assert code == 2 and "office msk has no panel 'desk1'; its panels are: desk-1, door, exit" in err


def test_a_known_site_and_a_right_range_still_answer(url, capsys):
    code, out, _err = run_cli(
        capsys, "report", "--site", "msk", "--from", "2025-01-06", "--to", "2025-01-06", "--db", url
    )
    assert code == 0 and "(Polls: 8)" in out
