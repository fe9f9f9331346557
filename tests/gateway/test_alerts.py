"""Alerts raised by the gateway's worker (gateway/alerts.py) on a real database: an offline
panel during opening hours alerts once (not at night, not twice), acknowledge and resolve,
cooldown, a service alert raised as polls are derived, and the site file's [alerts] table."""

import json
import os

import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, open_db, store_events

from gateway import alerts, site, store
from gateway.worker import Worker
from protocol import messages
from rating import cli

HOUR = 60 * MIN
ALERTS_TOML = """
[alerts]
hours = "09:00-21:00"
channels = ["webhook"]

[alerts.webhook]
url = "http://127.0.0.1:9/hook"

[alerts.rules.panel_offline]
after_min = 10
cooldown_min = 60
"""


def _online(db, device, at_ms):
    state = messages.decode_state(
        messages.encode_state(
            {
                "online": True,
                "boot": 1,
                "up": 1000,
                "t": at_ms,
                "fw": "1",
                "seq": 0,
                "pending": 0,
                "dropped": 0,
                "heap": 1,
                "rssi": -50,
                "faults": [],
                "cfg": None,
                "cfg_err": None,
            }
        )
    )
    with db.transaction():
        store.upsert_state(db, "msk", device, state, at_ms, "{}")


def _offline(db, device, at_ms):
    with db.transaction():
        store.upsert_state(db, "msk", device, {"online": False}, at_ms, "{}")


def _round(db, now_ms, quiet=("exit",)):
    """One worker round at now_ms, the panels other than `quiet` heard from just before."""
    for device in ("desk-1", "exit", "door"):
        if device not in quiet:
            _online(db, device, now_ms - 1000)
    worker = Worker(db.url, "rating/v1", alerts_every_s=0)
    worker.run_round(db, now_ms)
    return worker


def _all_online(db, at_ms):
    for device in ("desk-1", "exit", "door"):
        _online(db, device, at_ms)


def test_alerts_offline_panel_during_opening_hours_alerts_once_not_at_night_not_twice(any_db):
    db = any_db
    apply_site(db, SITE_TOML + ALERTS_TOML)
    _all_online(db, T0 - 2 * MIN)  # T0 is 11:00 in Moscow, a Monday
    _offline(db, "exit", T0)
    assert _round(db, T0 + 5 * MIN).stats["alerts"] == 0  # within the grace
    assert _round(db, T0 + 11 * MIN).stats["alerts"] == 1
    for later in (12, 30, 90):
        assert _round(db, T0 + later * MIN).stats["alerts"] == 0  # deduplicated: still the same alert
    rows = alerts.listing(db)
    assert [(r["rule"], r["subject"], r["site"], r["severity"], r["state"]) for r in rows] == [
        ("panel_offline", "msk/exit", "msk", "critical", "open")
    ]
    assert rows[0]["fired"] == 4
    # the outbox holds one message for the one channel, with the idempotency key
    due = alerts.outbox_due(db, T0 + 100 * MIN)
    assert [(r["channel"], json.loads(r["payload"])["id"]) for r in due] == [("webhook", "alert-%d" % rows[0]["id"])]


def test_alerts_no_alert_while_the_office_is_closed(any_db):
    db = any_db
    apply_site(db, SITE_TOML + ALERTS_TOML)
    night = T0 + 11 * HOUR  # 22:00 in Moscow
    _all_online(db, night - 30 * MIN)
    _offline(db, "door", night - 20 * MIN)
    assert _round(db, night, ("door",)).stats["alerts"] == 0
    assert _round(db, night + 2 * HOUR, ("door",)).stats["alerts"] == 0  # midnight
    assert _round(db, night + 11 * HOUR, ("door",)).stats["alerts"] == 1  # 09:00 the next morning: open


def test_alerts_ack_resolve_and_cooldown(any_db):
    db = any_db
    apply_site(db, SITE_TOML + ALERTS_TOML)
    _all_online(db, T0)
    _offline(db, "exit", T0)
    _round(db, T0 + 15 * MIN)
    (row,) = alerts.listing(db)
    assert alerts.ack(db, row["id"], "olga", T0 + 16 * MIN)["acked_by"] == "olga"
    assert [r["id"] for r in alerts.listing(db, "acked")] == [row["id"]]
    assert alerts.resolve(db, row["id"], "olga", T0 + 20 * MIN)["resolved_by"] == "olga"
    with pytest.raises(alerts.AlertError):
        alerts.resolve(db, row["id"], "olga", T0 + 21 * MIN)
    with pytest.raises(alerts.AlertError):
        alerts.ack(db, 999, "olga", T0 + 21 * MIN)
    assert _round(db, T0 + 50 * MIN).stats["alerts"] == 0  # still offline, but cooling down
    assert _round(db, T0 + 81 * MIN).stats["alerts"] == 1  # the cooldown (60 min) is over
    assert [r["state"] for r in alerts.listing(db)] == ["open", "resolved"]


def test_alerts_a_panel_back_online_clears_its_alert_but_leaves_it_for_a_person(any_db):
    db = any_db
    apply_site(db, SITE_TOML + ALERTS_TOML)
    _all_online(db, T0)
    _offline(db, "exit", T0)
    _round(db, T0 + 15 * MIN)
    _round(db, T0 + 20 * MIN, quiet=())
    (row,) = alerts.listing(db, "open")
    assert row["cleared_ms"] == T0 + 20 * MIN


def test_alerts_service_rule_is_evaluated_as_polls_are_derived(any_db):
    """Polls stored then derived by the worker raise a DI alert in the same round."""
    db = any_db
    apply_site(db, SITE_TOML + ALERTS_TOML + "\n[alerts.rules.di_high]\nmax = 0.3\nwindow_h = 24\n")
    panel = Panel("msk", "desk-1")
    for i in range(60):
        panel.poll(T0 + i * 2 * MIN, "no" if i % 2 else "yes")
    store_events(db, panel.events)
    _all_online(db, T0 + 3 * HOUR)
    worker = Worker(db.url, "rating/v1", alerts_every_s=0)
    worker.changed({("msk", "desk-1")})
    worker.run_round(db, T0 + 3 * HOUR)
    subjects = {(r["rule"], r["subject"]) for r in alerts.listing(db)}
    assert ("di_high", "employee:ivanova") in subjects
    assert ("di_high", "office:msk") in subjects


def test_alerts_site_file_table_is_checked_and_stored():
    sf = site.parse(SITE_TOML + ALERTS_TOML)
    (entry,) = sf.of("alerts")
    assert entry[3]["rules"]["panel_offline"] == {"after_min": 10, "cooldown_min": 60}
    assert entry[3]["channels"] == ["webhook"]
    bad = (
        ALERTS_TOML.replace('hours = "09:00-21:00"', 'hours = "9-5"').replace(
            "after_min = 10", "after_min = 10\nwhen = 3"
        )
        + '\n[alerts.email]\nhost = "smtp.example.com"\nto = ["a@example.com"]\nfrom = "r@example.com"\npassword = "x"\n'
    )
    with pytest.raises(site.SiteFileError) as info:
        site.parse(SITE_TOML + bad)
    text = str(info.value)
    assert "alerts.hours:" in text
    assert "alerts.rules.panel_offline.when: unknown field" in text
    assert "alerts.email.password: secrets go in the file named by alerts.secrets" in text
    with pytest.raises(site.SiteFileError) as info:
        site.parse(SITE_TOML + ALERTS_TOML.replace("http://127.0.0.1:9/hook", "http://u:pw@127.0.0.1:9/hook"))
    assert "alerts.webhook.url: secrets go in" in str(info.value)
    with pytest.raises(site.SiteFileError) as info:
        site.parse(SITE_TOML + ALERTS_TOML.replace("http://127.0.0.1:9/hook", "http://ops.example.com/hook"))
    assert "alerts.webhook.url: must be an https:// URL (http:// only to this machine)" in str(info.value)
    site.parse(SITE_TOML + ALERTS_TOML.replace("http://127.0.0.1:9/hook", "https://ops.example.com/hook"))


def _cli_db(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    db = open_db(url)
    apply_site(db, SITE_TOML + ALERTS_TOML)
    _all_online(db, T0)
    _offline(db, "exit", T0)
    _round(db, T0 + 15 * MIN)
    db.close()
    return url


def test_alerts_cli_lists_acknowledges_and_resolves(tmp_path, capsys):
    url = _cli_db(tmp_path)
    assert cli.main(["alerts", "list", "--db", url, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "#1" in out and "panel offline during opening hours: msk/exit" in out
    assert "raised 2025-01-06 11:15:00 MSK" in out
    assert cli.main(["alerts", "ack", "1", "--db", url, "--by", "olga", "--lang", "en"]) == 0
    assert "alert #1 acknowledged by olga" in capsys.readouterr().out
    assert cli.main(["alerts", "list", "--db", url, "--state", "acked", "--format", "json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["id"], item["state"], item["acked_by"], item["detail"]["connection"]) == (
        1,
        "acked",
        "olga",
        "offline",
    )
    assert cli.main(["alerts", "resolve", "1", "--db", url, "--by", "olga", "--lang", "ru"]) == 0
    assert "olga" in capsys.readouterr().out
    assert cli.main(["alerts", "list", "--db", url, "--lang", "en"]) == 0
    assert "no alerts" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["alerts", "resolve", "7"], "error: no alert #7; see rating alerts list"),
        (["alerts", "list", "--site", "nope"], "error: no office 'nope' in the site file"),
    ],
)
def test_alerts_cli_bad_input_is_one_line_and_changes_nothing(tmp_path, capsys, argv, message):
    url = _cli_db(tmp_path)
    assert cli.main([*argv, "--db", url, "--lang", "en"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_alerts_cli_resolving_twice_says_so(tmp_path, capsys):
    url = _cli_db(tmp_path)
    assert cli.main(["alerts", "resolve", "1", "--db", url, "--by", "olga"]) == 0
    assert cli.main(["alerts", "resolve", "1", "--db", url, "--by", "olga", "--lang", "en"]) == 2
    assert "error: alert #1 is already resolved; nothing to do" in capsys.readouterr().err


def test_alerts_cli_list_never_creates_a_database(tmp_path, capsys):
    missing = tmp_path / "typo.db"
    assert cli.main(["alerts", "list", "--db", "sqlite:///%s" % missing, "--lang", "en"]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not missing.exists()


def test_alerts_site_apply_with_an_alerts_table_and_the_example_file(tmp_path, capsys):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples", "two-offices.toml")
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert cli.main(["site", "apply", example, "--db", url, "--lang", "en"]) == 0
    assert "alerts" in capsys.readouterr().out
    db = open_db(url)
    config = site.load(db).alerts()
    assert config["channels"] == ["email", "webhook"]
    assert config["offices"] == {"spb-nevsky": {"hours": "10:00-22:00"}}
    db.close()


def test_alerts_carry_the_region_of_their_office_once_the_site_file_has_regions(any_db):
    db = any_db
    apply_site(db, SITE_TOML + ALERTS_TOML)
    history = site.load(db)
    history.regions = lambda t: {"north-west": ["spb"], "central": ["msk"]}  # as [[regions]] will give
    _all_online(db, T0)
    _offline(db, "exit", T0)
    _online(db, "desk-1", T0 + 14 * MIN)
    _online(db, "door", T0 + 14 * MIN)
    (row,) = alerts.evaluate(db, T0 + 15 * MIN, history=history)
    assert (row["site"], row["region"]) == ("msk", "central")
    assert json.loads(alerts.outbox_due(db, T0 + 15 * MIN)[0]["payload"])["region"] == "central"


def test_alerts_force_majeure_rate_follows_the_deployment_threshold(any_db):
    """The fm_rate rule takes [deployment.thresholds] fm_rate_max (the reports' flag) unless
    [alerts.rules.fm_rate] sets its own max."""
    db = any_db
    lenient = SITE_TOML.replace(
        "[deployment.reference]", "[deployment.thresholds]\nfm_rate_max = 0.5\n\n[deployment.reference]"
    )
    panel = Panel("msk", "desk-1")
    for i in range(40):
        panel.poll(T0 + i * 2 * MIN, "yes")
    for i in range(9):
        panel.press(T0 + 2 * HOUR + i * 20 * MIN, "seller_long")
    store_events(db, panel.events)
    now = T0 + 6 * HOUR
    from gateway import derive

    derive.rebuild(db, now)
    _all_online(db, now)
    apply_site(db, lenient + ALERTS_TOML)
    assert not [r for r in alerts.evaluate(db, now) if r["rule"] == "fm_rate"]
    apply_site(db, lenient + ALERTS_TOML + "\n[alerts.rules.fm_rate]\nmax = 0.1\n", now_ms=now)
    assert [r["subject"] for r in alerts.evaluate(db, now + 1) if r["rule"] == "fm_rate"] == ["msk"]


def test_alerts_employee_alerts_leave_out_no_answers_under_a_confirmed_force_majeure(any_db):
    from gateway import derive, review

    db = any_db
    apply_site(db, SITE_TOML + ALERTS_TOML + "\n[alerts.rules.di_high]\nmax = 0.3\n")
    panel = Panel("msk", "desk-1")
    for i in range(40):  # a power cut: the seller reports force majeure every 10 minutes
        if i % 10 == 0:
            panel.press(T0 + i * MIN, "seller_long")
        panel.poll(T0 + i * MIN + 20000, "no")
    for i in range(30):
        panel.poll(T0 + 2 * HOUR + i * 2 * MIN, "yes")
    store_events(db, panel.events)
    now = T0 + 5 * HOUR
    derive.rebuild(db, now)
    _all_online(db, now)

    def employee_alerts():
        return [r for r in alerts.evaluate(db, now) if r["subject"] == "employee:ivanova"]

    assert employee_alerts()  # unconfirmed: the No answers count
    for r in alerts.listing(db):
        alerts.resolve(db, r["id"], "olga", now)
    fms = derive.force_majeure_reports(db)
    for fm in fms:
        review.record(db, review.FM, review.format_id("msk", "desk-1", fm["seq"]), "confirm", "power cut", "olga", now)
    now += 25 * HOUR  # past the cooldown
    _all_online(db, now)
    assert not employee_alerts()
