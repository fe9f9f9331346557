"""The dashboards in a real browser (headless Chromium): trends, the hour x weekday heat map and
the fair rankings show exactly the numbers of `rating report --format json` for the same scope
and period, the trend chart is an SVG with every series, both languages, the office scope, a
screenshot of each view (build/screenshots/) and axe-core's WCAG A/AA check.

One console and one browser for the module: the pages only read."""

import base64
import csv
import io
import urllib.request

import console_browser
import pytest
from console_browser import (
    axe_violations,
    navigating,
    rating_report_json,
    shot,
)
from console_support import PASSWORD
from dashboard_support import FROM, TO, build
from gw_site_support import sqlite_db

import kpi_core

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dash")
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


def visit(browser, console, axe, path, name):
    browser.get(console.url + path)
    shot(browser, name)
    problems = axe_violations(browser, axe)
    assert not problems, "accessibility problems on %s: %s" % (name, problems)
    return browser


def _float(text):
    return None if text in ("", None) else float(text)


def _cookie_get(browser, console, path):
    """The same URL with the browser's session (a download link)."""
    cookie = "; ".join("%s=%s" % (c["name"], c["value"]) for c in browser.get_cookies())
    req = urllib.request.Request(console.url + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def test_trends_show_the_reports_weekly_figures_with_a_chart_of_every_employee(browser, console, axe, chain):
    d = sign_in(browser, console, "analyst")
    query = "/trends?site=msk&by=employee&period=week&kpi=di_staff&from=%s&to=%s" % (FROM, TO)
    visit(d, console, axe, query, "trends")
    rep = report(chain, "--site", "msk", "--by", "employee", "--period", "week", "--from", FROM, "--to", TO)
    rows = [r for r in rep["rows"] if r["kpi"]["di_staff"] is not None]
    assert len({r["period"] for r in rows}) == 4 and len({r["key"] for r in rows}) == 2
    cells = d.find_elements("css selector", "#trend-table td[data-figure=di_staff]")
    assert len(cells) == len(rep["rows"])
    for r in rows:
        cell = d.find_element(
            "css selector", "#trend-table tr[data-key='%s'][data-period='%s'] td[data-figure]" % (r["key"], r["period"])
        )
        fig = r["kpi"]["di_staff"]
        got = [_float(cell.get_attribute("data-" + x)) for x in ("value", "low", "high", "n")]
        assert got == [fig["value"], fig["low"], fig["high"], fig["n"]], (r["key"], r["period"])
        small = fig["n"] < rep["thresholds"]["min_n"]
        assert ("small sample" in cell.text) == small, (r["key"], r["period"], cell.text)
    assert any(r["key"] == "sidorov" for r in rows), "the one-poll-a-week employee is marked small"
    assert "Europe/Moscow (MSK)" in d.find_element("css selector", "p.hint").text

    src = d.find_element("css selector", "#trend-chart img").get_attribute("src")
    assert src.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
    assert (
        svg.lstrip().startswith("<?xml")
        and "<svg" in svg
        and "http://"
        not in svg.replace("http://www.w3.org", "")
        .replace("http://purl.org", "")
        .replace("http://creativecommons.org", "")
    )
    for n in range(2):
        assert 'id="series-%d"' % n in svg and 'id="band-%d"' % n in svg
    assert "Елена Иванова" in svg and "Ivan Sidorov" in svg  # legend: the names as text
    min_n = rep["thresholds"]["min_n"]
    for n, key in enumerate(("ivanova", "sidorov")):  # hollow points where a week rests on few polls
        small = any(r["kpi"]["di_staff"]["n"] < min_n for r in rows if r["key"] == key)
        assert ('id="small-%d"' % n in svg) == small, key
    assert 'id="small-1"' in svg

    status, ctype, body = _cookie_get(d, console, query.replace("/trends?", "/trends.csv?"))
    assert status == 200 and ctype.startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(body)))
    by = {(x["key"], x["period"]): x for x in lines}
    for r in rows:
        assert float(by[(r["key"], r["period"])]["value"]) == r["kpi"]["di_staff"]["value"]

    # the Russian page: the words and the chart's labels
    navigating(d, lambda: d.find_element("css selector", "header form[action='/account/lang'] button").click())
    assert d.find_element("tag name", "h1").text == "Динамика KPI"
    svg = base64.b64decode(
        d.find_element("css selector", "#trend-chart img").get_attribute("src").split(",", 1)[1]
    ).decode("utf-8")
    assert "ИНК@Персонал" in svg and "мало данных" in svg
    shot(d, "trends-ru")
    navigating(d, lambda: d.find_element("css selector", "header form[action='/account/lang'] button").click())


def test_monthly_trends_of_offices_match_the_report(browser, console, axe, chain):
    d = sign_in(browser, console, "analyst")
    browser.get(console.url + "/trends?site=&by=site&period=month&kpi=fm_rate&from=%s&to=%s" % (FROM, TO))
    rep = report(chain, "--by", "site", "--period", "month", "--from", FROM, "--to", TO)
    assert {r["key"] for r in rep["rows"]} == {"msk", "ber"}
    for r in rep["rows"]:
        cell = d.find_element(
            "css selector", "#trend-table tr[data-key='%s'][data-period='%s'] td[data-figure]" % (r["key"], r["period"])
        )
        assert _float(cell.get_attribute("data-value")) == r["kpi"]["fm_rate"]["value"]


def test_the_heat_map_counts_hours_of_the_week_like_the_report(browser, console, axe, chain):
    d = sign_in(browser, console, "analyst")
    visit(d, console, axe, "/heatmap?site=msk&metric=di_staff&from=%s&to=%s" % (FROM, TO), "heatmap")
    rep = report(chain, "--site", "msk", "--by", "site", "--from", FROM, "--to", TO)
    total = rep["total"]
    whole = d.find_element("id", "heat-total")
    assert _float(whole.get_attribute("data-value")) == total["kpi"]["di_staff"]["value"]
    cells = d.find_elements("css selector", "#heatmap td[data-cell]")
    assert len(cells) == 7 * 24
    assert sum(int(c.get_attribute("data-polls")) for c in cells) == total["polls"]["valid"]
    assert "Hours in the office's local time: Europe/Moscow (MSK)" in d.page_source

    busy = d.find_element("css selector", "#heatmap td[data-cell='0-10']")
    answers = chain["busy"]
    counts = kpi_core.PollCounts(
        yes=answers.count("yes"), no=answers.count("no"), unsure=answers.count("unsure"), silent=answers.count(None)
    )
    assert _float(busy.get_attribute("data-value")) == kpi_core.di_staff(counts, rep["k"]).value
    assert busy.get_attribute("class").startswith("heat-") and busy.get_attribute("class") != "heat-few"
    few = d.find_element("css selector", "#heatmap td[data-cell='0-9']")
    assert few.get_attribute("class") == "heat-few" and few.text == "few"

    browser.get(console.url + "/heatmap?site=msk&metric=polls&from=%s&to=%s" % (FROM, TO))
    assert d.find_element("css selector", "#heatmap td[data-cell='0-9']").text == "4"


def test_the_ranking_is_the_reports_fair_ranking(browser, console, axe, chain):
    d = sign_in(browser, console, "analyst")
    visit(d, console, axe, "/rankings?site=&by=employee&period=all&kpi=di_staff&from=%s&to=%s" % (FROM, TO), "rankings")
    rep = report(chain, "--by", "employee", "--sort", "di_staff", "--from", FROM, "--to", TO)
    shown = d.find_elements("css selector", "#ranking tbody tr")
    assert [r.get_attribute("data-key") for r in shown] == [r["key"] for r in rep["rows"]]
    for r in rep["rows"]:
        tr = d.find_element("css selector", "#ranking tr[data-key='%s']" % r["key"])
        assert tr.find_element("css selector", "td[data-rank-range]").get_attribute("data-rank-range") == (
            r["rank_range"] or ""
        )
        fair = tr.find_element("css selector", "td[data-fair]")
        if r["fair"]:
            got = [_float(fair.get_attribute(x)) for x in ("data-fair", "data-low", "data-high")]
            assert got == [r["fair"]["value"], r["fair"]["low"], r["fair"]["high"]]
            assert int(tr.find_element("css selector", "td[data-n]").get_attribute("data-n")) == r["fair"]["n"]
        noted = tr.find_elements("css selector", "[data-note]")
        assert bool(noted) == bool(r["rank_note"])
    ranked = [r for r in rep["rows"] if r["rank_range"]]
    assert {r["key"] for r in ranked} == {"ivanova", "petrov"} and ranked[0]["rank_range"] == "1-2"
    sidorov = d.find_element("css selector", "#ranking tr[data-key='sidorov']")
    assert "not ranked: fewer than 30 polls" in sidorov.text and sidorov.get_attribute("class") == "unranked"

    # offices, week by week
    browser.get(console.url + "/rankings?site=&by=site&period=week&kpi=di_staff&from=%s&to=%s" % (FROM, TO))
    rep = report(chain, "--by", "site", "--period", "week", "--sort", "di_staff", "--from", FROM, "--to", TO)
    shown = d.find_elements("css selector", "#ranking tbody tr")
    assert [(r.get_attribute("data-key"), r.get_attribute("data-period")) for r in shown] == [
        (r["key"], r["period"]) for r in rep["rows"]
    ]
    for tr, r in zip(shown, rep["rows"], strict=True):
        assert tr.find_element("css selector", "td[data-rank-range]").get_attribute("data-rank-range") == (
            r["rank_range"] or ""
        )
        assert _float(tr.find_element("css selector", "td[data-fair]").get_attribute("data-fair")) == (
            r["fair"]["value"] if r["fair"] else None
        )


def test_a_store_manager_sees_only_their_office_on_the_dashboards(browser, console, axe, chain):
    d = sign_in(browser, console, "manager")
    for path in ("/trends", "/heatmap", "/rankings"):
        browser.get(console.url + path)
        assert "Berlin" not in d.page_source, path
        browser.get(console.url + path + "?site=ber")
        assert d.find_element("tag name", "h1").text == "Not found", path
    browser.get(console.url + "/rankings?by=employee&from=%s&to=%s" % (FROM, TO))
    keys = {r.get_attribute("data-key") for r in d.find_elements("css selector", "#ranking tbody tr")}
    assert "petrov" not in keys and "ivanova" in keys
