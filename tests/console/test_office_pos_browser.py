"""The office page's POS section in a real browser (headless Chromium): the exact conversion per
panel and per employee, with its interval and counts, equals the `pos` of `rating report
--format json` for the same office and dates; the polls with no sale and the sales with no poll
are listed in the office's time; no loyalty reference anywhere on the page; axe-core's WCAG
A/AA check and a screenshot (build/screenshots/office-pos.png)."""

import datetime as _dt
from zoneinfo import ZoneInfo

import pytest
from console_browser import (
    axe_source,
    axe_violations,
    navigating,
    rating_report_json,
    shot,
    sign_in,
)
from console_support import PASSWORD
from dashboard_support import FROM, TO, build
from gw_site_support import sqlite_db

from gateway import transactions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The dashboards' chain with a POS feed at msk/desk-1 (till named like the panel): a sale
    30 s before two of every three polls, and one sale an hour after the last poll of a day."""
    folder = tmp_path_factory.mktemp("office-pos-browser")
    db = sqlite_db(folder, "dash.db")
    build(db)
    polls = db.query("SELECT opened_ms FROM polls WHERE site = 'msk' AND device = 'desk-1' ORDER BY opened_ms")
    sales = []
    for i, p in enumerate(polls):
        if i % 3 != 2:
            tx = {"id": "R-%d" % i, "till": "desk-1", "t": p["opened_ms"] - 30_000, "loyalty": "crm-secret-%d" % i}
            sales.append(("msk", transactions.check("msk", tx)))
    last = polls[len(polls) // 2]["opened_ms"]
    sales.append(("msk", transactions.check("msk", {"id": "NOPOLL-1", "till": "desk-1", "t": last + 3_600_000})))
    with db.transaction():
        transactions.store_many(db, sales, "test", polls[-1]["opened_ms"] + 86_400_000)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return {"url": "sqlite:///%s" % (folder / "dash.db"), "no_poll_ms": last + 3_600_000}


@pytest.fixture(scope="module")
def console(chain):
    from console import server

    running = server.start(chain["url"])
    yield running
    running.stop()


def report_pos(chain):
    return rating_report_json(chain["url"], "--site", "msk", "--from", FROM, "--to", TO)["pos"]


def _num(text):
    return float(text) if text else None


def test_the_office_page_shows_the_reports_pos_figures_and_lists_what_did_not_match(browser, console, chain):
    d = sign_in(browser, console.url, "manager", PASSWORD)
    d.get(console.url + "/office?site=msk&from=%s&to=%s" % (FROM, TO))
    section = d.find_element("id", "office-pos")
    d.execute_script("arguments[0].scrollIntoView()", section)
    shot(d, "office-pos")
    problems = axe_violations(d, axe_source())
    assert not problems, problems
    pos = report_pos(chain)
    for by in ("device", "employee"):
        shown = {}
        for tr in d.find_elements("css selector", "#pos-%s tbody tr" % by):
            a = tr.get_attribute
            shown[a("data-key")] = (
                int(a("data-sales")),
                int(a("data-polls")),
                int(a("data-matched")),
                int(a("data-no-sale")),
                int(a("data-no-poll")),
                _num(a("data-value")),
                _num(a("data-low")),
                _num(a("data-high")),
            )
        want = {
            r["key"]: (
                r["transactions"],
                r["polls"],
                r["matched"],
                r["unmatched_polls"],
                r["unmatched_sales"],
                r["conversion"]["value"],
                r["conversion"]["low"],
                r["conversion"]["high"],
            )
            for r in pos["by_" + by]
        }
        assert want and shown == want, by
    (desk,) = [r for r in pos["by_device"] if r["key"] == "desk-1"]
    assert desk["unmatched_polls"] > 0 and desk["unmatched_sales"] == 1
    row = d.find_element("css selector", "#pos-device tr[data-key='desk-1']")
    assert "(" in row.text and "n" in row.text  # the figure with its interval and n
    listed = d.find_elements("css selector", "#pos-polls-without-sale tbody tr")
    assert len(listed) == min(200, desk["unmatched_polls"])
    assert listed[0].get_attribute("data-id").startswith("msk/desk-1/")
    sale = d.find_element("css selector", "#pos-sales-without-poll tr[data-id='NOPOLL-1']")
    local = _dt.datetime.fromtimestamp(chain["no_poll_ms"] / 1000, ZoneInfo("Europe/Moscow"))
    assert local.strftime("%H:%M") in sale.text.split()[1]  # the office's time, not UTC
    assert "Europe/Moscow" in d.find_element("css selector", "p.hint").text
    assert "crm-secret" not in d.page_source
    # the employee's "polls with no sale" open the drill-down of exactly those polls
    (emp,) = [r for r in pos["by_employee"] if r["unmatched_polls"]]
    link = d.find_element("css selector", "#pos-employee tr[data-key='%s'] td a" % emp["key"])
    navigating(d, link.click)
    assert int(d.find_element("id", "drill-count").get_attribute("data-n")) == emp["unmatched_polls"]
    assert "crm-secret" not in d.page_source
