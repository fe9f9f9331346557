"""The alert rules page (console/alert_rules_page.py) on the real server: every rule in force,
an admin's change checked by the site file's own checker and recorded as a new settings
revision under the admin's name, which `rating site show` / `site export` show, a later `rating
site apply` is compared with, and the worker's evaluation uses; read-only for other roles,
403 for their changes, CSRF required; no secret ever on the page."""

import re
import time

import pytest
from console_support import CHAIN_TOML
from gw_site_support import open_db

from gateway import alerts
from gateway import site as site_mod
from rating import cli


def _csrf(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _form(client, rule):
    status, _h, html = client.get("/alerts/rules/%s" % rule)
    assert status == 200
    fields = dict(re.findall(r'<input id="r-[a-z_]+" name="([a-z_]+)" value="([^"]*)"', html))
    fields["csrf"] = _csrf(html)
    fields["rev"] = re.search(r'name="rev" value="(\d+)"', html).group(1)
    if 'name="enabled" id="r-enabled" checked' in html:
        fields["enabled"] = "on"
    fields["severity"] = re.search(r'<option value="([a-z]+)" selected>', html).group(1)
    return fields


def _alert_rules(db_url):
    db = open_db(db_url)
    try:
        return site_mod.load(db).alerts(2**62), site_mod.revision(db), site_mod.changes_of(db, "alerts", "alerts")
    finally:
        db.close()


def _run(capsys, *argv):
    code = cli.main(["--lang", "en", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_rule_is_listed_with_its_knobs_and_the_alerts_page_links_there(console, client):
    admin = client("admin")
    _s, _h, html = admin.get("/alerts")
    assert '<a href="/alerts/rules" id="rules-link">Alert rules</a>' in html
    status, _h, html = admin.get("/alerts/rules")
    assert status == 200
    for rule in ("panel_offline", "negative_run", "di_high", "fm_rate", "dead_letters"):
        assert 'id="rule-%s"' % rule in html and 'href="/alerts/rules/%s#rule-form"' % rule in html
    assert "CUSUM threshold h (h) = 9" in html and "Window, h (window_h) = 168" in html
    assert "No [alerts] table yet" in html and "Secrets file" in html and "not set" in html
    assert "Офис на Тверской" in html and "Berlin Mitte" in html  # opening hours per office
    assert "MSK" in html  # the office's zone is shown


def test_an_admin_change_is_a_new_revision_by_the_admin(console, client, capsys):
    _config, rev_before, _ = _alert_rules(console.db_url)
    admin = client("admin")
    fields = _form(admin, "negative_run")
    assert fields["h"] == "9" and fields["enabled"] == "on"
    fields["h"] = "12,5"  # the Russian decimal comma is understood too
    status, headers, _ = admin.post("/alerts/rules/negative_run", fields)
    assert status == 303 and headers["location"].startswith("/alerts/rules?saved=%d" % (rev_before + 1))
    config, rev, changes = _alert_rules(console.db_url)
    assert rev == rev_before + 1
    assert config["rules"] == {"negative_run": {"h": 12.5}}  # only what changed: no defaults written
    assert changes[0]["rev"] == rev and changes[0]["by"] == "admin" and changes[0]["source"] == "console:admin"
    _s, _h, html = admin.get(headers["location"].split("#")[0])
    assert "Saved: settings revision %d." % rev in html
    assert "CUSUM threshold h (h) = 12.5" in html and "admin, in the console" in html
    assert "new: channels=[], rules.negative_run.h=12.5" in html  # what changed, knob by knob
    # the same form again changes nothing: no empty revision
    status, headers, _ = admin.post("/alerts/rules/negative_run", _form(admin, "negative_run"))
    assert status == 303 and "saved=none" in headers["location"]
    assert _alert_rules(console.db_url)[1] == rev
    # `rating site show` and `rating site export` show it
    code, out, _err = _run(capsys, "site", "show", "--db", console.db_url)
    assert code == 0 and "negative_run  h=12.5" in out and "(revision %d)" % rev in out
    code, out, _err = _run(capsys, "site", "export", "--db", console.db_url)
    assert code == 0 and "[alerts.rules.negative_run]\nh = 12.5" in out


def test_a_later_site_apply_is_compared_with_the_console_change(console, client, capsys, tmp_path):
    admin = client("admin")
    fields = _form(admin, "fm_unreviewed")
    fields.pop("enabled")  # unticked
    assert admin.post("/alerts/rules/fm_unreviewed", fields)[0] == 303
    path = tmp_path / "site.toml"
    path.write_text(CHAIN_TOML + "\n[alerts.rules.fm_unreviewed]\nenabled = false\n", encoding="utf-8")
    code, out, _err = _run(capsys, "site", "apply", str(path), "--db", console.db_url)
    assert code == 0 and "alerts" not in out  # the file says what the console recorded: no change
    path.write_text(CHAIN_TOML + "\n[alerts.rules.fm_unreviewed]\nenabled = true\n", encoding="utf-8")
    code, out, _err = _run(capsys, "site", "apply", str(path), "--db", console.db_url)
    assert code == 0 and "rules: {fm_unreviewed={enabled=false}} -> {fm_unreviewed={enabled=true}}" in out
    # the file's value is in force now (the chain's file has a deployment.from in the past: the
    # alert settings are never dated back to it, or the console's later row would still win)
    db = open_db(console.db_url)
    try:
        assert site_mod.load(db).alerts(int(time.time() * 1000))["rules"] == {"fm_unreviewed": {"enabled": True}}
    finally:
        db.close()
    _s, _h, html = admin.get("/alerts/rules")
    assert 'data-rule="fm_unreviewed" data-enabled="true"' in html and "file site.toml" in html


def test_bad_values_are_refused_field_by_field_and_nothing_is_recorded(console, client):
    _config, rev_before, _ = _alert_rules(console.db_url)
    admin = client("admin")
    fields = _form(admin, "negative_run")
    fields.update(h="0.1", odds_ratio="lots", cooldown_min="60")
    status, _h, html = admin.post("/alerts/rules/negative_run", fields)
    assert status == 400
    assert "Nothing was saved" in html
    assert '<p class="error" id="r-h-error">must be between 0.5 and 100, got 0.1</p>' in html
    assert '<p class="error" id="r-odds_ratio-error">must be between 1.1 and 100, got lots</p>' in html
    assert 'id="r-cooldown_min-error"' not in html
    assert 'value="lots"' in html  # what was typed stays in the form
    fields = _form(admin, "panel_offline")
    fields["severity"] = "apocalyptic"
    status, _h, html = admin.post("/alerts/rules/panel_offline", fields)
    assert status == 400 and 'id="r-severity-error"' in html
    assert _alert_rules(console.db_url)[1] == rev_before  # nothing half-applied


def test_the_checker_speaks_the_admins_language(console, client):
    admin = client("admin")
    token = admin.csrf("/alerts/rules")
    admin.post("/account/lang", {"csrf": token, "lang": "ru", "next": "/alerts/rules"})
    _s, _h, html = admin.get("/alerts/rules")
    assert "Правила оповещений" in html and "Порог CUSUM h (h) = 9" in html
    fields = _form(admin, "negative_run")
    fields["h"] = "1000"
    status, _h, html = admin.post("/alerts/rules/negative_run", fields)
    assert status == 400 and "Ничего не сохранено" in html
    error = re.search(r'id="r-h-error">([^<]+)<', html).group(1)
    assert re.search("[а-я]", error), error


def test_other_roles_read_the_rules_but_cannot_change_them(console, client):
    _config, rev_before, _ = _alert_rules(console.db_url)
    for name in ("expert", "manager", "analyst", "tech"):
        reader = client(name)
        status, _h, html = reader.get("/alerts/rules")
        assert status == 200 and 'id="rule-negative_run"' in html
        assert "Only an admin can change the rules." in html and "/alerts/rules/negative_run" not in html
        assert reader.get("/alerts/rules/negative_run")[0] == 403
        token = reader.csrf("/alerts/rules")
        status, _h, _ = reader.post("/alerts/rules/negative_run", {"csrf": token, "h": "12", "severity": "warning"})
        assert status == 403
    manager_html = client("manager").get("/alerts/rules")[2]
    assert "Офис на Тверской" in manager_html and "Berlin Mitte" not in manager_html  # offices in scope only
    status, headers, _ = client().get("/alerts/rules")
    assert status == 303 and headers["location"].startswith("/login")
    assert _alert_rules(console.db_url)[1] == rev_before


def test_a_change_needs_the_csrf_token(console, client):
    admin = client("admin")
    fields = _form(admin, "negative_run")
    fields["h"] = "12"
    for token in ("", "wrong"):
        status, _h, _ = admin.post("/alerts/rules/negative_run", dict(fields, csrf=token))
        assert status == 403
    status, _h, _ = admin.post("/alerts/rules/negative_run", fields, headers={"Origin": "https://evil.example"})
    assert status == 403
    assert _alert_rules(console.db_url)[0] is None
    assert admin.get("/alerts/rules/no_such_rule")[0] == 404


def test_channels_show_where_they_deliver_to_admins_and_never_a_secret(console, client, tmp_path, capsys):
    path = tmp_path / "site.toml"
    path.write_text(
        CHAIN_TOML + '\n[alerts]\nchannels = ["webhook", "email"]\nsecrets = "/etc/rating/alert-secrets.toml"\n'
        '[alerts.webhook]\nurl = "https://ops.example.com/hooks/rating?team=ops"\n'
        '[alerts.email]\nhost = "smtp.example.com"\nfrom = "rating@example.com"\nto = ["duty@example.com"]\n',
        encoding="utf-8",
    )
    assert _run(capsys, "site", "apply", str(path), "--db", console.db_url)[0] == 0
    admin = client("admin")
    _s, _h, html = admin.get("/alerts/rules")
    assert "https://ops.example.com/hooks/rating" in html and "team=ops" not in html
    assert "smtp.example.com → duty@example.com" in html
    assert 'id="secrets-state">set<' in html and "/etc/rating" not in html
    assert "file site.toml" in html  # who changed it: the file's name
    _s, _h, html = client("expert").get("/alerts/rules")
    assert "ops.example.com" not in html and "duty@example.com" not in html and "shown to admins" in html
    assert "/etc/rating" not in html and "smtp.example.com" not in html
    # a console change keeps the channels as they were
    fields = _form(admin, "dead_letters")
    fields["cooldown_min"] = "5"
    assert admin.post("/alerts/rules/dead_letters", fields)[0] == 303
    config, _rev, _ = _alert_rules(console.db_url)
    assert config["channels"] == ["webhook", "email"] and config["webhook"]["url"].endswith("?team=ops")
    assert config["rules"] == {"dead_letters": {"cooldown_min": 5}}
    _s, _h, html = admin.get("/alerts/rules")
    assert "rules.dead_letters.cooldown_min: - -&gt; 5" in html


def test_the_worker_evaluation_uses_the_rules_changed_in_the_console(console, client):
    """The chain's msk/exit reports a stuck button: the worker's evaluation (site.load +
    alerts.compute, as gateway/worker.py does it) fires stuck_button until an admin disables the
    rule in the console."""
    now = int(time.time() * 1000)
    db = open_db(console.db_url)
    try:
        before = alerts.compute(db, now, None, site_mod.load(db))
        assert "stuck_button" in {f.rule for f in before.firings}
        admin = client("admin")
        fields = _form(admin, "stuck_button")
        fields.pop("enabled")
        assert admin.post("/alerts/rules/stuck_button", fields)[0] == 303
        after = alerts.compute(db, now + 1000, None, site_mod.load(db))
        assert "stuck_button" not in {f.rule for f in after.firings}
        assert {f.rule for f in before.firings} - {"stuck_button"} <= {f.rule for f in after.firings}
    finally:
        db.close()


@pytest.mark.e2e
def test_an_admin_edits_a_rule_in_chromium_and_sees_it_in_force(console):
    """In Chromium: from /alerts to the rules, a bad value refused next to its field (and the
    page passes axe), then a good one saved and shown in the table; screenshots of each step."""
    from console_browser import (
        axe_source,
        axe_violations,
        chromium_or_skip,
        navigating,
        shot,
        start_browser,
        stop_browser,
    )
    from console_support import PASSWORD

    chromium_or_skip()
    d = start_browser()
    try:
        d.get(console.url + "/login")
        d.find_element("id", "username").send_keys("admin")
        navigating(d, lambda: d.find_element("id", "password").send_keys(PASSWORD + "\n"))
        d.get(console.url + "/alerts")
        navigating(d, lambda: d.find_element("id", "rules-link").click())
        shot(d, "alert-rules")
        problems = axe_violations(d, axe_source())
        assert not problems, problems
        row = d.find_element("id", "rule-panel_offline")
        navigating(d, lambda: row.find_element("css selector", "a").click())
        field = d.find_element("id", "r-after_min")
        field.clear()
        field.send_keys("0")
        navigating(d, lambda: d.find_element("css selector", "#rule-form button[type=submit]").click())
        assert "must be between 1 and 100000, got 0" in d.find_element("id", "r-after_min-error").text
        assert d.find_element("id", "r-after_min").get_attribute("aria-invalid") == "true"
        shot(d, "alert-rules-error")
        problems = axe_violations(d, axe_source())
        assert not problems, problems
        field = d.find_element("id", "r-after_min")
        field.clear()
        field.send_keys("25")
        d.find_element("id", "r-enabled").click()  # off
        navigating(d, lambda: d.find_element("css selector", "#rule-form button[type=submit]").click())
        assert "Saved: settings revision" in d.find_element("css selector", "p.ok").text
        row = d.find_element("id", "rule-panel_offline")
        assert row.get_attribute("data-enabled") == "false"
        assert "(after_min) = 25" in row.find_element("css selector", "[data-knob=after_min]").text
        assert "admin, in the console" in d.find_element("id", "rule-changes").text
        shot(d, "alert-rules-saved")
    finally:
        stop_browser(d)
    config, _rev, _ = _alert_rules(console.db_url)
    assert config["rules"] == {"panel_offline": {"enabled": False, "after_min": 25}}


def test_fm_rate_shows_the_deployments_threshold_and_leaving_it_records_nothing(console, client, tmp_path, capsys):
    """fm_rate's max is the deployment's fm_rate_max unless the rule sets its own (what the
    worker uses, alerts.with_thresholds): the page shows that value, and a form left as it is
    writes no default into the history."""
    path = tmp_path / "site.toml"
    path.write_text(
        CHAIN_TOML.replace("[deployment]\n", "[deployment.thresholds]\nfm_rate_max = 0.2\n\n[deployment]\n", 1)
    )
    code, out, err = _run(capsys, "site", "apply", str(path), "--db", console.db_url)
    assert code == 0, err
    admin = client("admin")
    _s, _h, html = admin.get("/alerts/rules")
    assert "Threshold (max) = 0.2" in html
    fields = _form(admin, "fm_rate")
    assert fields["max"] == "0.2"
    rev = _alert_rules(console.db_url)[1]
    status, headers, _ = admin.post("/alerts/rules/fm_rate", fields)
    assert status == 303 and "saved=none" in headers["location"]
    assert _alert_rules(console.db_url)[1] == rev


def test_a_form_shown_before_another_change_is_refused_not_saved_over_it(console, client):
    """Two admins open the same rule; the second to save would silently undo the first's
    change (the form holds the old values): refused with 409, the rule shown as it is now."""
    first, second = client("admin"), client("admin")
    form_1, form_2 = _form(first, "di_high"), _form(second, "di_high")
    form_1["max"] = "0.4"
    assert first.post("/alerts/rules/di_high", form_1)[0] == 303
    config, rev, _ = _alert_rules(console.db_url)
    form_2["window_h"] = "72"
    status, _h, html = second.post("/alerts/rules/di_high", form_2)
    assert status == 409 and "someone else changed the settings meanwhile" in html
    assert 'id="r-max" name="max" value="0.4"' in html  # the form again, as the rule is now
    assert _alert_rules(console.db_url)[:2] == (config, rev)
    assert second.post("/alerts/rules/di_high", dict(_form(second, "di_high"), window_h="72"))[0] == 303
    assert _alert_rules(console.db_url)[0]["rules"] == {"di_high": {"max": 0.4, "window_h": 72}}
