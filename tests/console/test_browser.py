"""The console in a real browser (headless Chromium through Selenium): sign-in per role, the
expert's keyboard walk through the review queue with verdicts that change the report, a store
manager's scope, a screenshot of every page (build/screenshots/) and axe-core's WCAG A/AA check
of each of them."""

import re
import shutil
import urllib.parse

import pytest
from console_browser import (
    axe_violations,
    navigating,
    press,
    shot,
)
from console_support import PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def console(chain_template, tmp_path_factory):
    """One console for the module (a server start per test costs time): the tests change
    different accounts and items, so they do not step on each other."""
    from console import server

    path = tmp_path_factory.mktemp("browser") / "chain.db"
    shutil.copy(chain_template, path)
    running = server.start("sqlite:///%s" % path)
    running.db_url = "sqlite:///%s" % path
    yield running
    running.stop()


@pytest.fixture
def page(browser, console, axe):
    """visit(path, name): open a page of the running console, screenshot it and check it with
    axe-core; returns the driver."""
    browser.delete_all_cookies()

    def visit(path=None, name=None, audit=True):
        if path is not None:
            browser.get(console.url + path)
        if name:
            shot(browser, name)
        if name and audit:  # each template once: axe takes about a second a page
            problems = axe_violations(browser, axe)
            assert not problems, "accessibility problems on %s: %s" % (name, problems)
        return browser

    visit.url = console.url
    return visit


def sign_in(page, username, name=None):
    d = page("/login", name)
    d.find_element("id", "username").send_keys(username)
    navigating(d, lambda: d.find_element("id", "password").send_keys(PASSWORD + "\n"))
    return d


def figure_of(d, key, figure):
    row = d.find_element("css selector", "tr[data-key='%s'] td[data-figure='%s']" % (key, figure))
    return row.text


def test_an_expert_clears_the_queue_with_the_keyboard_and_the_report_changes(page):
    from selenium.webdriver.common.keys import Keys

    d = sign_in(page, "expert", "login")
    assert d.find_element("tag name", "h1").text.startswith("Hello")
    page(None, "home-expert")
    page("/reports?site=msk&by=site", "reports")
    before = figure_of(d, "msk", "di_staff")

    page("/review", "review-queue")
    pending = len(d.find_elements("css selector", "tr.pending"))
    assert pending >= 5
    press(d, "j", navigates=False)  # the first row
    first = d.switch_to.active_element.text
    navigating(d, lambda: d.switch_to.active_element.send_keys(Keys.ENTER))
    assert first in d.find_element("tag name", "h1").text
    page(None, "review-item-poll")
    press(d, "v")  # valid: on to the next pending item
    assert first not in d.find_element("tag name", "h1").text
    assert "Verdict recorded" in d.page_source
    # walk on: every No answer of the Moscow desk becomes invalid with ready-made reason 2
    invalidated = confirmed = 0
    for _ in range(3 * pending):
        h1 = d.find_element("tag name", "h1").text
        if h1.startswith("Force majeure"):
            page(None, "review-item-fm", audit=False)
            press(d, "c")
            confirmed += 1
        elif h1.startswith("Poll "):
            answer = d.find_element("css selector", "dl.facts dd[class^=answer]").text
            if "msk/desk-1/" in h1 and answer.startswith("No"):
                press(d, "2", navigates=False)
                press(d, "i")
                invalidated += 1
            else:
                press(d, "v")
        else:
            break
    assert d.find_element("tag name", "h1").text == "Review queue"
    assert invalidated >= 2 and confirmed == 1
    assert not d.find_elements("css selector", "tr.pending"), "the week's queue is cleared"
    assert d.find_element("id", "progress-text").text == "%d of %d decided" % (pending, pending)
    page("/reports?site=msk&by=site", None)
    after = figure_of(d, "msk", "di_staff")
    assert after != before, "invalid No answers leave DI-staff: %s -> %s" % (before, after)

    # undo is a new verdict in the trail, never an edit
    page("/review?status=decided", None)
    navigating(d, lambda: d.find_element("css selector", "a[data-item]").send_keys(Keys.ENTER))
    trail = "section[aria-labelledby=trail-h] tbody tr"
    n_before = len(d.find_elements("css selector", trail))
    press(d, "u")
    assert "Verdict undone" in d.page_source
    assert len(d.find_elements("css selector", trail)) == n_before + 1
    assert d.find_element("id", "in-force").text == "pending"
    assert "expert" in d.find_elements("css selector", trail)[-1].text

    page("/account", "account")
    page("/api", "api-docs")


def test_a_store_manager_sees_only_their_office_even_by_url(page):
    d = sign_in(page, "manager")
    page(None, "home-store-manager", audit=False)
    offices = d.find_element("css selector", "ul.offices").text
    assert "Офис на Тверской" in offices and "Berlin" not in offices
    page("/reports", "reports-store-manager", audit=False)
    assert "Berlin" not in d.page_source
    page("/fleet", "fleet-store-manager", audit=False)
    assert "msk" in d.page_source and "Berlin Mitte" not in d.page_source
    page("/reports?site=ber", None)
    assert d.find_element("tag name", "h1").text == "Not found"
    page("/fleet?site=ber", None)
    assert d.find_element("tag name", "h1").text == "Not found"
    page("/api/v1/polls?site=ber", None)
    assert "not found" in d.page_source
    page("/review", None)
    assert d.find_element("tag name", "h1").text == "Not for your role"


def test_every_other_page_renders_and_passes_the_accessibility_check(page):
    d = sign_in(page, "admin")
    page("/admin/users", "admin-accounts")
    page("/fleet", "fleet")
    page("/review?kind=fm&status=all", None)
    link = d.find_element("css selector", "a[data-item]").get_attribute("href")
    page(urllib.parse.urlsplit(link).path + "?" + urllib.parse.urlsplit(link).query, "review-item-fm-timeline")
    assert d.find_element("css selector", "svg.timeline")
    page("/review?site=nope&from=2025-13-01", "review-bad-filter")
    assert "A date like" in d.page_source
    page("/does-not-exist", "not-found")
    page("/", None)
    navigating(d, lambda: d.find_element("css selector", "header form[action='/logout'] button").click())
    assert d.find_element("tag name", "h1").text == "Sign in"
    d.find_element("id", "username").send_keys("admin")
    navigating(d, lambda: d.find_element("id", "password").send_keys("wrong password!\n"))
    page(None, "login-failed")
    assert re.search("Wrong account name or password", d.page_source)


def test_an_admin_adds_disables_and_changes_accounts_in_the_browser(page):
    from selenium.webdriver.support.ui import Select

    d = sign_in(page, "admin")
    page("/admin/users", None)
    # add an account scoped to a region, then disable it
    d.find_element("id", "u-username").send_keys("olga")
    d.find_element("id", "u-name").send_keys("Olga Smirnova")
    d.find_element("id", "u-password").send_keys("a temporary password 1")
    Select(d.find_element("id", "u-role")).select_by_value("analyst")
    d.find_element("css selector", "form[aria-labelledby=add-h] input[name=regions][value=russia]").click()
    navigating(d, lambda: d.find_element("css selector", "form[aria-labelledby=add-h] button.primary").click())
    row = d.find_element("xpath", "//tr[td/a[text()='olga']]")
    assert "analyst" in row.text and "Region: Russia" in row.text and "temporary password" in row.text
    navigating(d, lambda: row.find_element("css selector", "form button").click())
    assert "disabled" in d.find_element("xpath", "//tr[td/a[text()='olga']]").text
    # change another account's role and scope on its own page
    navigating(d, lambda: d.find_element("link text", "tech").click())
    page(None, "admin-account-edit")
    Select(d.find_element("id", "e-role")).select_by_value("store-manager")
    d.find_element("css selector", "input[name=all_offices]").click()  # was every office
    d.find_element("css selector", "input[name=regions][value=germany]").click()
    navigating(d, lambda: d.find_element("css selector", "form[aria-labelledby=edit-h] button.primary").click())
    assert "Role and offices changed" in d.find_element("css selector", "p.ok").text
    row = d.find_element("xpath", "//tr[td/a[text()='tech']]").text
    assert "store manager" in row and "Region: Germany" in row
    # the technician, now a store manager of the German region, reads its KPIs by region
    d.delete_all_cookies()
    sign_in(page, "tech")
    page("/reports?by=region&from=2025-03-03&to=2025-03-09", "reports-by-region")
    keys = [r.get_attribute("data-key") for r in d.find_elements("css selector", "table.report tbody tr[data-key]")]
    assert keys == ["germany"], keys  # Europe also holds Moscow: not shown to this account
    page("/reports?site=msk", None)
    assert d.find_element("tag name", "h1").text == "Not found"
