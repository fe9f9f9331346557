"""The demo week (`rating demo`: three offices, six panels running the real firmware through a
real broker into the real gateway) on the console's dashboards: every number the trends, the
heat map and the rankings show equals `rating report --format json` over the same offices,
rows and periods, to the last bit (their CSV downloads carry every number the page shows; the
browser test reads the page itself, and saves screenshots to build/screenshots/).

Heat-map cells are checked one by one against a report of that office over that hour: the demo
is one week, so each cell of the week is one hour of it.

One demo run (~20 s) and one console for the module: the pages only read."""

import contextlib
import csv
import datetime as _dt
import io
import json
import subprocess
import sys

import pytest
from console_browser import chromium_or_skip, navigating, shot, start_browser, stop_browser
from console_support import PASSWORD, Client

from gateway import schema, users
from rating import cli

pytestmark = pytest.mark.e2e

FIGURES = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo week's database (`rating demo --no-console`), with an analyst account."""
    out = tmp_path_factory.mktemp("demo")
    run = subprocess.run(
        [sys.executable, "-m", "rating", "demo", "--no-console", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    url = "sqlite:///%s" % (out / "gateway.db")
    db = schema.open_database(url)
    users.add(db, "director", PASSWORD, "analyst", 0, name="Director", lang="en", all_offices=True)
    db.close()
    days = sorted({r["period"] for r in report(url, "--period", "day")["rows"]})
    assert len(days) == 7, days
    return {"url": url, "from": days[0], "to": days[-1], "days": days}


@pytest.fixture(scope="module")
def console(demo):
    from console import server

    running = server.start(demo["url"])
    yield running
    running.stop()


@pytest.fixture(scope="module")
def web(console):
    c = Client(console.url)
    status, _h, _ = c.login("director")
    assert status == 303
    return c


def report(url, *args):
    """`rating report --format json` (in this process: the same command, without a start-up
    per call, as the heat map asks for one report per hour of the week)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["report", "--db", url, "--format", "json", "--lang", "en", *args])
    assert code == 0
    return json.loads(out.getvalue())


def offices(demo):
    return sorted({r["key"] for r in report(demo["url"])["rows"]})


def download(web, path):
    status, headers, body = web.get(path)
    assert status == 200 and headers.get("content-type", "").startswith("text/csv"), (path, status, body[:200])
    return list(csv.DictReader(io.StringIO(body)))


def num(text):
    """A CSV number as the console wrote it (repr of the float: exact)."""
    return None if text == "" else (int(text) if text.isdigit() else float(text))


def fig_of(fig):
    fig = fig or {}
    return [fig.get("value"), fig.get("low"), fig.get("high"), fig.get("n")]


# --- without a browser: every number of every view -------------------------------------------


@pytest.mark.parametrize("by", ["site", "employee"])
@pytest.mark.parametrize("period", ["week", "month"])
def test_the_trends_are_the_reports_figures_with_their_intervals_and_n(demo, web, by, period):
    rep = report(demo["url"], "--by", by, "--period", period, "--from", demo["from"], "--to", demo["to"])
    assert rep["rows"]
    min_n = rep["thresholds"]["min_n"]
    for kpi in FIGURES:
        lines = download(
            web, "/trends.csv?site=&by=%s&period=%s&kpi=%s&from=%s&to=%s" % (by, period, kpi, demo["from"], demo["to"])
        )
        shown = {(x["key"], x["period"]): x for x in lines}
        assert len(shown) == len(lines) == len(rep["rows"]), kpi
        for r in rep["rows"]:
            x = shown[(r["key"], r["period"])]
            assert [num(x[k]) for k in ("value", "low", "high", "n")] == fig_of(r["kpi"][kpi]), (kpi, r["key"])
            small = r["kpi"][kpi] is not None and r["kpi"][kpi]["value"] is not None and r["kpi"][kpi]["n"] < min_n
            assert x["small"] == ("1" if small else "0")
            assert x["timezone"] == r["timezone"] and x["label"] == r["label"]


@pytest.mark.parametrize("by, period, kpi", [("employee", "all", "di_staff"), ("site", "all", "di_office")])
def test_the_ranking_is_the_reports_fair_ranking_row_by_row(demo, web, by, period, kpi):
    rep = report(demo["url"], "--by", by, "--period", period, "--sort", kpi, "--from", demo["from"], "--to", demo["to"])
    lines = download(
        web, "/rankings.csv?site=&by=%s&period=%s&kpi=%s&from=%s&to=%s" % (by, period, kpi, demo["from"], demo["to"])
    )
    assert [x["key"] for x in lines] == [r["key"] for r in rep["rows"]]  # the same order
    for x, r in zip(lines, rep["rows"], strict=True):
        fair = r["fair"] or {}
        assert x["rank_range"] == (r["rank_range"] or "")
        assert [num(x[k]) for k in ("fair", "fair_low", "fair_high", "n")] == [
            fair.get("value"),
            fair.get("low"),
            fair.get("high"),
            fair.get("n"),
        ], r["key"]
        assert [num(x[k]) for k in (kpi, kpi + "_low", kpi + "_high", kpi + "_n")] == fig_of(r["kpi"][kpi])
        assert x["rank_note"] == (r["rank_note"] or "")
    assert any(r["rank_range"] for r in rep["rows"]), "the demo week ranks someone"


def _hour_bounds(day, hour):
    start = _dt.datetime.fromisoformat(day) + _dt.timedelta(hours=hour)
    end = start + _dt.timedelta(hours=1)
    return start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")


def test_every_heat_map_cell_is_the_report_of_that_office_and_hour(demo, web):
    checked = 0
    for site in offices(demo):
        lines = download(web, "/heatmap.csv?site=%s&from=%s&to=%s" % (site, demo["from"], demo["to"]))
        assert len(lines) == 7 * 24
        whole = report(demo["url"], "--site", site, "--from", demo["from"], "--to", demo["to"])["total"]
        assert sum(int(x["polls"]) for x in lines) == whole["polls"]["valid"]
        min_n = report(demo["url"])["thresholds"]["min_n"]
        for x in lines:
            if x["polls"] == "0":
                continue  # nothing to compare: the sum above holds every poll
            day = demo["days"][int(x["iso_weekday"]) - 1]  # the week starts on Monday
            start, end = _hour_bounds(day, int(x["hour"]))
            total = report(demo["url"], "--site", site, "--from", start, "--to", end)["total"]
            di = total["kpi"]["di_staff"]
            where = (site, day, x["hour"])
            assert int(x["polls"]) == total["polls"]["valid"], where
            assert [num(x[k]) for k in ("di_staff", "di_staff_low", "di_staff_high")] == fig_of(di)[:3], where
            # the cell's staff polls: every valid one, those under confirmed force majeure too
            # (fm_no/fm_silent: counted in no/silent as well; DI-staff leaves them out of its n)
            kinds = total["polls"]["by_kind"]
            tally = kinds.get("staff", {})
            staff = sum(tally.get(a, 0) for a in ("yes", "no", "unsure", "silent"))
            assert int(x["staff_polls"]) == staff, where
            assert staff - tally.get("fm_no", 0) - tally.get("fm_silent", 0) == ((di or {}).get("n") or 0), where
            silent = sum(k["silent"] for k in kinds.values())
            assert num(x["silent_share"]) == silent / total["polls"]["valid"], where
            assert x["small"] == ("1" if staff < min_n else "0"), where
            checked += 1
    assert checked > 50, "the demo week's open hours"


# --- in the browser: the pages show the same numbers ------------------------------------------


@pytest.fixture(scope="module")
def browser(console):
    chromium_or_skip()
    driver = start_browser()
    driver.get(console.url + "/login")
    driver.find_element("id", "username").send_keys("director")
    navigating(driver, lambda: driver.find_element("id", "password").send_keys(PASSWORD + "\n"))
    yield driver
    stop_browser(driver)


def _float(text):
    return None if text in ("", None) else float(text)


def test_the_views_in_chromium_show_the_reports_numbers(demo, console, browser):
    d, rng = browser, "from=%s&to=%s" % (demo["from"], demo["to"])

    d.get(console.url + "/trends?site=&by=employee&period=week&kpi=di_staff&" + rng)
    shot(d, "demo-week-trends")
    rep = report(demo["url"], "--by", "employee", "--period", "week", "--from", demo["from"], "--to", demo["to"])
    assert d.find_elements("css selector", "#trend-chart img"), "the chart is drawn"
    for r in rep["rows"]:
        cell = d.find_element(
            "css selector", "#trend-table tr[data-key='%s'][data-period='%s'] td[data-figure]" % (r["key"], r["period"])
        )
        got = [_float(cell.get_attribute("data-" + x)) for x in ("value", "low", "high", "n")]
        assert got == fig_of(r["kpi"]["di_staff"]), r["key"]

    site = offices(demo)[0]
    d.get(console.url + "/heatmap?site=%s&metric=di_staff&%s" % (site, rng))
    shot(d, "demo-week-heatmap")
    whole = report(demo["url"], "--site", site, "--from", demo["from"], "--to", demo["to"])["total"]
    total = d.find_element("id", "heat-total")
    assert _float(total.get_attribute("data-value")) == whole["kpi"]["di_staff"]["value"]
    cells = d.find_elements("css selector", "#heatmap td[data-cell]")
    assert len(cells) == 7 * 24 and sum(int(c.get_attribute("data-polls")) for c in cells) == whole["polls"]["valid"]

    d.get(console.url + "/rankings?site=&by=employee&period=all&kpi=di_staff&" + rng)
    shot(d, "demo-week-rankings")
    rep = report(demo["url"], "--by", "employee", "--sort", "di_staff", "--from", demo["from"], "--to", demo["to"])
    shown = d.find_elements("css selector", "#ranking tbody tr")
    assert [r.get_attribute("data-key") for r in shown] == [r["key"] for r in rep["rows"]]
    for tr, r in zip(shown, rep["rows"], strict=True):
        assert tr.find_element("css selector", "td[data-rank-range]").get_attribute("data-rank-range") == (
            r["rank_range"] or ""
        )
        n = tr.find_element("css selector", "td[data-n]").get_attribute("data-n")
        assert (int(n) if n else None) == (r["fair"] or {}).get("n")
