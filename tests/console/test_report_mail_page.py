"""The report mail page (console/report_mail.py) on the real server: the scheduled report mails
the SMTP server has not taken (recipient, schedule, attempts, last error, next try in the
office's timezone) and the schedules whose report could not be built, shown to admins and to
the schedule's owner only; "retry now" hands the mail to a real SMTP server started here."""

import re

import pytest
from alert_receivers import SmtpServer, free_port
from console_support import CHAIN_TOML, T_WEEK
from gw_site_support import apply_site, open_db

from gateway import reportmail, users

DAY = 24 * 3600 * 1000
NEXT_WEEK = T_WEEK + 7 * DAY  # Monday 2025-03-10 15:00 Moscow: the week 2025-W10 has closed


@pytest.fixture
def failing(console):
    """The manager's weekly report, queued while nobody listens on the SMTP port; a role
    schedule whose report cannot be built (the role has no enabled account)."""
    port = free_port()
    db = open_db(console.db_url)
    extra = (
        '\n[alerts]\n\n[alerts.email]\nhost = "127.0.0.1"\nport = %d\nstarttls = false\n'
        'from = "rating@example.org"\nto = "ops@example.org"\n' % port
    )
    apply_site(db, CHAIN_TOML + extra, now_ms=T_WEEK)
    mine = reportmail.add_schedule(db, "week", ["boss@example.org"], T_WEEK, username="manager")
    theirs = reportmail.add_schedule(db, "week", ["experts@example.org"], T_WEEK, role="expert")
    users.set_disabled(db, "expert", True, T_WEEK)
    assert reportmail.send_due(db, NEXT_WEEK)["failed"] == 1
    (row,) = [r for r in reportmail.failing(db) if r["id"] is not None]
    db.close()
    return {"port": port, "row": row["id"], "mine": mine["id"], "theirs": theirs["id"], "url": console.db_url}


def _csrf(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_the_owner_sees_the_failing_mail_with_its_error_and_next_try(client, failing):
    manager = client("manager")
    _s, _h, home = manager.get("/")
    assert '<a href="/report-mail">Report mail</a>' in home  # the menu leads there
    status, _h, html = manager.get("/report-mail")
    assert status == 200
    row = html.split('id="mail-%d"' % failing["row"])[1].split("</tr>")[0]
    assert "boss@example.org" in row and "#%d, weekly, account manager" % failing["mine"] in row
    assert "2025-W10" in row and "ConnectionRefusedError" in row
    assert re.search(r"<td class=\"num\">1</td>", row)  # one attempt
    assert re.search(r"2025-03-10 15:00 MSK", row)  # next try, 10 s after the pass, Moscow time
    assert "Retry now" in row and "Europe/Moscow" in html
    assert 'id="schedule-%d"' % failing["theirs"] not in html  # another owner's schedule


def test_admins_see_every_schedules_failures_including_reports_not_built(client, failing):
    _s, _h, html = client("admin").get("/report-mail")
    assert 'id="mail-%d"' % failing["row"] in html
    broken = html.split('id="schedule-%d"' % failing["theirs"])[1].split("</tr>")[0]
    assert "report not built" in broken and "role expert" in broken
    assert "no enabled account has the role expert" in broken and "experts@example.org" in broken


def test_others_see_nothing_and_cannot_retry(client, failing):
    analyst = client("analyst")
    _s, _h, html = analyst.get("/report-mail")
    assert 'id="mail-' not in html and "Every report got through" in html
    status, _h, _ = analyst.post("/report-mail/%d/retry" % failing["row"], {"csrf": _csrf(html)})
    assert status == 404
    db = open_db(failing["url"])
    assert [r["attempts"] for r in reportmail.failing(db) if r["id"] == failing["row"]] == [1]
    db.close()


def test_retry_now_tells_the_failure_then_sends_when_the_server_is_up(client, failing):
    manager = client("manager")
    token = _csrf(manager.get("/report-mail")[2])
    status, headers, _ = manager.post("/report-mail/%d/retry" % failing["row"], {"csrf": token})
    assert status == 303 and headers["location"] == "/report-mail?failed=%d" % failing["row"]
    _s, _h, html = manager.get(headers["location"])
    assert "Mail #%d was not sent again: ConnectionRefusedError" % failing["row"] in html
    assert re.search(r"<td class=\"num\">2</td>", html)  # two attempts now

    server = SmtpServer(failing["port"])
    try:
        status, headers, _ = manager.post("/report-mail/%d/retry" % failing["row"], {"csrf": token})
        assert status == 303 and headers["location"] == "/report-mail?sent=%d" % failing["row"]
        assert len(server.messages) == 1
        _from, rcpt, raw = server.messages[0]
    finally:
        server.close()
    assert rcpt == ["<boss@example.org>"] and b"2025-W10" in raw
    _s, _h, html = manager.get(headers["location"])
    assert "Mail #%d was sent." % failing["row"] in html and 'id="mail-' not in html
    # sent once: the next pass has nothing to send, and a second retry finds nothing waiting
    status, _h, _ = manager.post("/report-mail/%d/retry" % failing["row"], {"csrf": token})
    assert status == 404


def test_the_page_in_russian(client, failing):
    admin = client("admin")
    token = admin.csrf("/report-mail")
    admin.post("/account/lang", {"csrf": token, "lang": "ru", "next": "/report-mail"})
    _s, _h, html = admin.get("/report-mail")
    assert "Рассылка отчётов: что не дошло" in html and "Повторить сейчас" in html
    assert "еженедельно" in html and "отчёт не составлен" in html
    assert "10.03.2025 13:00 CET" in html  # an admin's times: the deployment's first office (Berlin), zone shown


def test_retry_needs_the_csrf_token(client, failing):
    manager = client("manager")
    manager.get("/report-mail")
    status, _h, _ = manager.post("/report-mail/%d/retry" % failing["row"], {"csrf": "forged"})
    assert status == 403


@pytest.mark.e2e
def test_the_page_in_chromium_passes_the_accessibility_check_and_retries(console, failing):
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
        navigating(d, lambda: d.find_element("css selector", "a[href='/report-mail']").click())
        shot(d, "report-mail")
        problems = axe_violations(d, axe_source())
        assert not problems, problems
        row = d.find_element("id", "mail-%d" % failing["row"])
        assert "ConnectionRefusedError" in row.text and "boss@example.org" in row.text
        navigating(d, lambda: row.find_element("css selector", "button").click())
        assert "was not sent again" in d.find_element("id", "rm-result").text
        shot(d, "report-mail-retried")
    finally:
        stop_browser(d)
