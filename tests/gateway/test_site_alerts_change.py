"""`site.apply_alerts`: an [alerts] table changed outside a site file (the web console) is
checked by the site file's checker and recorded as a new settings revision naming its author,
on SQLite and PostgreSQL; `site.changes_of` tells who changed it when; a site file applied
later is compared with it."""

import pytest
from gw_site_support import MIN, SITE_TOML, T0, apply_site

from gateway import site


def test_a_change_is_a_new_revision_with_its_author(any_db):
    apply_site(any_db, SITE_TOML + '\n[alerts]\nhours = "09:00-21:00"\n')
    rev = site.revision(any_db)
    rows = site.apply_alerts(any_db, {"hours": "09:00-21:00", "rules": {"di_high": {"max": 0.4}}}, T0 + MIN, "olga")
    assert [r[:2] for r in rows] == [("alerts", "alerts")]
    assert site.revision(any_db) == rev + 1
    history = site.load(any_db)
    assert history.alerts(T0) == {
        "hours": "09:00-21:00",
        "rules": {},
        "offices": {},
        "channels": [],
    }  # before: as it was
    assert history.alerts(T0 + MIN)["rules"] == {"di_high": {"max": 0.4}}
    changes = site.changes_of(any_db, "alerts", "alerts")
    assert [(c["rev"], c["by"], c["source"]) for c in changes] == [
        (rev + 1, "olga", "console:olga"),
        (rev, "", "test.toml"),
    ]
    assert changes[0]["applied_ms"] == T0 + MIN
    # the same table again: nothing recorded
    assert (
        site.apply_alerts(any_db, {"hours": "09:00-21:00", "rules": {"di_high": {"max": 0.4}}}, T0 + 2 * MIN, "olga")
        == []
    )
    assert site.revision(any_db) == rev + 1
    # a site file applied later is compared with the console's revision
    planned = site.preview(any_db, site.parse(SITE_TOML + '\n[alerts]\nhours = "09:00-21:00"\n'), T0 + 3 * MIN)
    assert [r[:2] for r in planned] == [("alerts", "alerts")]


def test_a_bad_table_is_refused_whole_with_every_problem(any_db):
    apply_site(any_db, SITE_TOML)
    rev = site.revision(any_db)
    table = {"rules": {"negative_run": {"h": 0.1, "severity": "loud"}}, "offices": {"nowhere": {}}}
    with pytest.raises(site.SiteFileError) as caught:
        site.apply_alerts(any_db, table, T0 + MIN, "olga")
    problems = caught.value.errors
    assert any(p.startswith("alerts.rules.negative_run.h: must be between 0.5 and 100") for p in problems)
    assert any(p.startswith("alerts.rules.negative_run.severity: must be one of") for p in problems)
    assert any(p.startswith("alerts.offices.nowhere: ") for p in problems)
    assert site.revision(any_db) == rev and site.load(any_db).alerts() is None
    with pytest.raises(site.SiteFileError):
        site.apply_alerts(
            any_db, {"webhook": {"url": "https://x.example", "secret": "s3"}, "channels": ["webhook"]}, T0, "olga"
        )
    assert site.revision(any_db) == rev
