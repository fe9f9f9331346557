"""The office page and the drill-down in a real browser (headless Chromium): the office's
figures are those of `rating report --format json`, a click on a figure (office page, heat-map
cell, ranking) opens the list of the polls behind it whose count is the figure's n; screenshots
in build/screenshots/ and axe-core's WCAG A/AA check on both pages.

One console and one browser for the module: the pages only read."""

import console_browser
import pytest
from console_browser import axe_violations, navigating, rating_report_json, shot
from console_support import PASSWORD
from dashboard_support import BUSY_HOUR, FROM, TO, build
from gw_site_support import sqlite_db

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("office-browser")
    db = sqlite_db(folder, "dash.db")
    info = build(db)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    info["url"] = "sqlite:///%s" % (folder / "dash.db")
    return info


@pytest.fixture(scope="module")
def console(chain):
    from console import server

    running = server.start(chain["url"])
    yield running
    running.stop()


def report(chain, *args):
    return rating_report_json(chain["url"], *args)


def sign_in(browser, console, username):
    return console_browser.sign_in(browser, console.url, username, PASSWORD)


def checked(browser, axe, name):
    shot(browser, name)
    problems = axe_violations(browser, axe)
    assert not problems, "accessibility problems on %s: %s" % (name, problems)


def drill_count(browser):
    return int(browser.find_element("id", "drill-count").get_attribute("data-n"))


def test_the_office_page_shows_the_reports_figures_and_drills_down_to_its_polls(browser, console, axe, chain):
    d = sign_in(browser, console, "analyst")
    d.get(console.url + "/office?site=msk&from=%s&to=%s" % (FROM, TO))
    checked(d, axe, "office")
    rep = report(chain, "--site", "msk", "--from", FROM, "--to", TO)
    row = rep["rows"][0]
    for name in ("di_staff", "di_office", "exact_conversion", "visitor_coverage", "fm_rate"):
        fig = row["kpi"][name]
        cell = d.find_element("css selector", "#office-kpis tr[data-figure=%s] td" % name)
        value = cell.get_attribute("data-value")
        assert (float(value) if value else None) == (fig or {}).get("value"), name
    assert "Europe/Moscow (MSK)" in d.find_element("css selector", "p.hint").text
    assert d.find_elements("css selector", "#fm-timeline rect[data-status=confirmed]")
    verdict = rep["bottleneck"][0]["verdict_text"]
    assert verdict in d.find_element("id", "office-bottleneck").text
    ranking = report(chain, "--site", "msk", "--by", "employee", "--sort", "di_staff", "--from", FROM, "--to", TO)
    shown = [tr.get_attribute("data-key") for tr in d.find_elements("css selector", "#ranking tbody tr")]
    assert shown == [r["key"] for r in ranking["rows"]]

    link = d.find_element("css selector", "#office-kpis tr[data-figure=di_staff] td a")
    navigating(d, link.click)
    checked(d, axe, "office-drill-down")
    assert drill_count(d) == row["kpi"]["di_staff"]["n"]
    assert len(d.find_elements("css selector", "#polls tbody tr")) == min(50, row["kpi"]["di_staff"]["n"])


def test_a_heat_map_cell_and_a_ranking_row_drill_down_to_as_many_polls_as_they_rest_on(browser, console, axe, chain):
    d = sign_in(browser, console, "analyst")
    d.get(console.url + "/heatmap?site=msk&metric=polls&from=%s&to=%s" % (FROM, TO))
    cell = d.find_element("css selector", "td[data-cell='0-%d']" % BUSY_HOUR)
    polls = int(cell.get_attribute("data-polls"))
    assert polls > 0
    navigating(d, cell.find_element("css selector", "a").click)
    checked(d, axe, "heatmap-drill-down")
    assert drill_count(d) == polls

    d.get(console.url + "/rankings?site=msk&by=employee&kpi=di_staff&from=%s&to=%s" % (FROM, TO))
    ranking = report(chain, "--site", "msk", "--by", "employee", "--sort", "di_staff", "--from", FROM, "--to", TO)
    first = next(r for r in ranking["rows"] if r["kpi"]["di_staff"] and r["kpi"]["di_staff"]["n"])
    row = d.find_element("css selector", "#ranking tr[data-key='%s']" % first["key"])
    navigating(d, row.find_element("css selector", "td[data-figure] a").click)
    assert drill_count(d) == first["kpi"]["di_staff"]["n"]


def test_a_store_manager_sees_only_his_office(browser, console):
    d = sign_in(browser, console, "manager")
    d.get(console.url + "/office?site=ber")
    assert "404" in d.title or "not found" in d.page_source.lower()
    d.get(console.url + "/office")
    assert "Moscow" in d.find_element("tag name", "h1").text or d.find_elements("id", "office-kpis")
