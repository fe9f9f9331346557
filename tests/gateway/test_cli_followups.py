"""`rating followups list|status`: the records with their state and why, the webhook outbox per
integration; a database that does not exist is refused and nothing is created."""

import json

from gw_site_support import MIN, SITE_TOML, T0, apply_site, review_scenario, sqlite_db

from gateway import followups
from rating import cli


def _db(tmp_path):
    db = sqlite_db(tmp_path)
    review_scenario(db)
    apply_site(
        db,
        SITE_TOML + '\n[followups]\nhold_min = 30\n\n[followups.webhooks.crm]\nurl = "http://127.0.0.1:9/hook"\n',
        T0 + 1,
    )
    followups.update(db, T0 + 60 * MIN)
    db.close()
    return "sqlite:///%s" % (tmp_path / "rating.db")


def test_cli_followups_list_shows_state_and_reason(tmp_path, capsys):
    url = _db(tmp_path)
    assert cli.main(["--lang", "en", "followups", "list", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "msk/desk-1/3" in out and "sent" in out
    assert "msk/desk-1/7" in out and "a force-majeure report covers it, not yet judged" in out
    assert cli.main(["followups", "list", "--db", url, "--state", "held", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["msk/desk-1/9", "msk/desk-1/7"]
    assert rows[0]["opened_local"].endswith("+03:00")


def test_cli_followups_status_counts_and_outbox(tmp_path, capsys):
    url = _db(tmp_path)
    assert cli.main(["--lang", "en", "followups", "status", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "4 sent, 2 held, 0 retracted, 0 excluded" in out
    assert "webhook crm: 4 queued, 4 waiting" in out
    assert cli.main(["--lang", "ru", "followups", "status", "--db", url]) == 0
    assert "webhook crm" not in capsys.readouterr().out  # in Russian


def test_cli_followups_refuses_a_database_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nope.db"
    assert cli.main(["followups", "status", "--db", "sqlite:///%s" % missing]) == 2
    assert not missing.exists()
