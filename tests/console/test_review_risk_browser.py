"""The risk-ordered review queue in a real browser (headless Chromium): the gamed poll heads
the queue with its reasons in words (English, then Russian), the order control switches to
time order, the item page says why; every page passes axe-core's WCAG A/AA check."""

import shutil

import pytest
from console_browser import (
    axe_source,
    axe_violations,
    navigating,
    shot,
    sign_in,
)
from console_support import HOUR, PASSWORD, T_WEEK
from gw_site_support import Panel, store_events

from gateway import derive, schema, users

pytestmark = pytest.mark.e2e

GAMED = "msk/exit/8"
WEEK = "from=2025-03-03&to=2025-03-09"


@pytest.fixture(scope="module")
def console(chain_template, tmp_path_factory):
    from console import server

    path = tmp_path_factory.mktemp("risk") / "chain.db"
    shutil.copy(chain_template, path)
    db = schema.open_database("sqlite:///%s" % path)
    p = Panel("msk", "exit", booted_at=T_WEEK - 48 * HOUR)
    p.seq = 6
    t = T_WEEK + 2 * HOUR
    p.press(t - 300, "yes")  # while the seller's button (down for 800 ms) is held
    p.press(t, "seller_short", hold=800)
    p.press(t + 400, "yes")
    store_events(db, p.events)
    derive.update(db, [("msk", "exit")], T_WEEK + 24 * HOUR)
    db.close()
    running = server.start("sqlite:///%s" % path)
    running.db_url = "sqlite:///%s" % path
    yield running
    running.stop()


def _audit(d, name):
    shot(d, name)
    problems = axe_violations(d, axe_source())
    assert not problems, "accessibility problems on %s: %s" % (name, problems)


def test_an_expert_sees_the_riskiest_poll_first_and_why(browser, console):
    from selenium.webdriver.support.ui import Select

    d = sign_in(browser, console.url, "expert", PASSWORD)
    d.get(console.url + "/review?" + WEEK)
    _audit(d, "review-queue-risk")
    first = d.find_element("css selector", "tr.pending")
    assert first.find_element("css selector", "a[data-item]").text == GAMED
    why = first.find_element("css selector", "td.doubt").text
    assert why.startswith("8:") and "an answer pressed while the seller's button was still held" in why
    assert Select(d.find_element("id", "f-order")).first_selected_option.text == "riskiest first"

    Select(d.find_element("id", "f-order")).select_by_value("time")
    navigating(d, lambda: d.find_element("css selector", "form.filters button[type=submit]").click())
    assert "order=time" in d.current_url
    first = d.find_element("css selector", "tr.pending a[data-item]").text
    assert first != GAMED

    d.get(console.url + "/review/poll/%s?%s" % (GAMED, WEEK))
    _audit(d, "review-item-doubt")
    assert "answered before a person could read the question" in d.find_element("id", "doubt").text

    db = schema.open_database(console.db_url)
    users.set_lang(db, users.by_username(db, "expert")["id"], "ru", T_WEEK)
    db.close()
    d.get(console.url + "/review?" + WEEK)
    why = d.find_element("css selector", "tr.pending td.doubt").text
    assert "кнопку ответа нажали, пока продавец держал свою кнопку" in why
    assert Select(d.find_element("id", "f-order")).first_selected_option.text == "сначала сомнительные"
    _audit(d, "review-queue-risk-ru")
