"""The office page and the drill-down to the polls behind a figure, over HTTP: the figures are
the report's, the drill-down's count is the figure's n (invalid polls and force majeure left
out as the report leaves them out), both keep to the account's scope and refuse bad input."""

import datetime as _dt
import json
import shutil
import urllib.parse

import pytest
from console_support import T_WEEK, Client

from console import drill
from gateway import db as dbmod
from gateway import derive, report, review

pytestmark = pytest.mark.e2e

WEEK = {"from": "2025-03-03", "to": "2025-03-09"}


@pytest.fixture(scope="module")
def chain(chain_template, tmp_path_factory):
    """The chain with an expert's verdicts: one staff poll invalid, the force-majeure report
    confirmed (the No poll two minutes after it falls under it)."""
    from console import server

    path = tmp_path_factory.mktemp("office") / "chain.db"
    shutil.copy(chain_template, path)
    url = "sqlite:///%s" % path
    db = dbmod.connect(url)
    polls, fms = derive.polls_and_reports(db, "msk")
    first_yes = next(p for p in polls if p["device"] == "desk-1" and p["answer"] == "yes")
    review.record(
        db, review.POLL, review.format_id("msk", "desk-1", first_yes["open_seq"]), "invalid", "test", "e", T_WEEK
    )
    fm = fms[0]
    review.record(db, review.FM, review.format_id("msk", fm["device"], fm["seq"]), "confirm", "", "e", T_WEEK)
    db.close()
    running = server.start(url)
    running.db_url = url
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(chain):
    signed_in = {}

    def make(username=None):
        if username is None:
            return Client(chain.url)
        if username not in signed_in:
            c = Client(chain.url)
            assert c.login(username)[0] == 303
            signed_in[username] = c
        return signed_in[username]

    return make


def _report(chain, **kwargs):
    db = dbmod.connect(chain.db_url)
    try:
        args = dict(site="msk", start=_dt.datetime(2025, 3, 3), end=_dt.datetime(2025, 3, 10), lang="en")
        args.update(kwargs)
        return report.build_report(db, **args)
    finally:
        db.close()


def _count(client, path):
    status, _h, body = client.get(path)
    assert status == 200, (path, status, body[:500])
    marker = 'id="drill-count" data-n="'
    assert marker in body, path
    return int(body.split(marker, 1)[1].split('"', 1)[0])


def test_the_office_export_carries_the_report_of_rating_report(client, chain):
    status, _h, body = client("analyst").get("/office.json?" + urllib.parse.urlencode(dict(WEEK, site="msk")))
    assert status == 200
    got = json.loads(body)
    want = _report(chain)
    assert got["timezone"] == "Europe/Moscow"
    assert got["report"]["rows"][0]["kpi"] == want["rows"][0]["kpi"]
    assert got["report"]["bottleneck"] == want["bottleneck"]
    ranking = _report(chain, by="employee", sort="di_staff")
    assert [(r["key"], r["fair"]) for r in got["ranking"]["rows"]] == [(r["key"], r["fair"]) for r in ranking["rows"]]
    assert {"desk-1", "exit"} <= {p["device"] for p in got["panels"]}
    assert [f["status"] for f in got["force_majeure"]] == ["confirmed"]


def test_the_office_page_shows_figures_panels_ranking_and_force_majeure(client, chain):
    status, _h, body = client("manager").get("/office?" + urllib.parse.urlencode(dict(WEEK, site="msk")))
    assert status == 200
    row = _report(chain)["rows"][0]
    assert 'data-figure="di_staff"' in body and 'data-n="%d"' % row["kpi"]["di_staff"]["n"] in body
    assert 'id="fm-timeline"' in body and 'data-status="confirmed"' in body
    assert 'id="office-panels"' in body and 'data-device="exit"' in body
    assert "Europe/Moscow" in body and "/polls?" in body
    status, _h, body = client("manager").get("/office.csv?" + urllib.parse.urlencode(dict(WEEK, site="msk")))
    assert status == 200 and body.startswith("section,key,label,figure,value,low,high,n\n")
    assert "office,msk," in body and ",di_staff," in body


def test_the_office_page_speaks_russian(chain):
    c = Client(chain.url)
    db = dbmod.connect(chain.db_url)
    from gateway import users

    users.add(db, "ru-analyst", "correct horse battery", "analyst", T_WEEK, all_offices=True, lang="ru")
    db.close()
    assert c.login("ru-analyst")[0] == 303
    status, _h, body = c.get("/office?" + urllib.parse.urlencode(dict(WEEK, site="msk")))
    assert status == 200 and "Форс-мажоры" in body and "ИНК@Персонал" in body
    status, _h, body = c.get("/polls?" + urllib.parse.urlencode(dict(WEEK, site="msk")))
    assert status == 200 and "Опросы за показателем" in body


@pytest.mark.parametrize("figure", ["di_staff", "di_office"])  # (ELI: the chain has no loyalty question)
def test_the_drill_down_count_is_the_figure_n(client, chain, figure):
    rep = _report(chain)
    fig = rep["rows"][0]["kpi"][figure]
    n = _count(client("analyst"), drill.url("msk", figure, WEEK["from"], WEEK["to"]))
    assert n == fig["n"]


def test_the_drill_down_of_valid_polls_and_of_each_answer_add_up(client, chain):
    rep = _report(chain)
    row = rep["rows"][0]
    analyst = client("analyst")
    base = drill.url("msk", "polls", WEEK["from"], WEEK["to"])
    assert _count(analyst, base) == row["polls"]["valid"]
    assert _count(analyst, base + "&what=invalid") == row["polls"]["invalid"] == 1
    answers = sum(_count(analyst, base + "&what=" + a) for a in ("yes", "no", "unsure", "silent"))
    assert answers == row["polls"]["valid"]
    staff = drill.url("msk", "di_staff", WEEK["from"], WEEK["to"])
    by_kind = row["polls"]["by_kind"]["staff"]
    assert _count(analyst, staff + "&what=fm") == by_kind["fm_no"] + by_kind["fm_silent"] >= 1
    assert _count(analyst, base + "&what=all") == row["polls"]["valid"] + row["polls"]["invalid"]


def test_the_drill_down_of_each_employee_is_his_ranking_n(client, chain):
    ranking = _report(chain, by="employee", sort="di_staff")
    analyst = client("analyst")
    for r in ranking["rows"]:
        if r["kpi"]["di_staff"] is None:
            continue
        url = drill.url("msk", "di_staff", WEEK["from"], WEEK["to"], employee=r["key"])
        assert _count(analyst, url) == r["kpi"]["di_staff"]["n"], r["key"]


def test_the_drill_down_of_a_trend_week_and_of_a_heat_map_cell(client, chain):
    analyst = client("analyst")
    weekly = _report(chain, period="week")
    for r in weekly["rows"]:
        assert _count(analyst, drill.row_url(_Ctx(), weekly, r, "di_staff")) == r["kpi"]["di_staff"]["n"]
    status, _h, body = analyst.get("/heatmap.csv?" + urllib.parse.urlencode(dict(WEEK, site="msk")))
    assert status == 200
    lines = [line.split(",") for line in body.strip().splitlines()[1:]]
    busy = [(int(d), int(h), int(polls)) for d, h, polls, *_ in lines if int(polls)]
    assert busy, "the chain's week has polls"
    for day, hour, polls in busy:
        url = drill.url("msk", "polls", WEEK["from"], WEEK["to"], cell="%d-%d" % (day, hour))
        assert _count(analyst, url) == polls


class _Ctx:
    """What drill.row_url needs of a request context: the office's timezone."""

    def tz(self, site):
        import zoneinfo

        return zoneinfo.ZoneInfo("Europe/Moscow")


def test_the_drill_down_pages_in_sql_and_shows_verdicts_and_video(client, chain, monkeypatch):
    monkeypatch.setattr(drill, "PAGE_SIZE", 4)
    analyst = client("analyst")
    base = drill.url("msk", "polls", WEEK["from"], WEEK["to"], what="all")
    n = _count(analyst, base)
    seen = []
    for page in range(1, (n + 3) // 4 + 1):
        _s, _h, body = analyst.get(base + "&page=%d" % page)
        seen += [part.split('"', 1)[0] for part in body.split('<tr data-id="')[1:]]
    assert len(seen) == n == len(set(seen))
    _s, _h, body = analyst.get(base)
    assert "invalid" in body and "not reviewed" in body


@pytest.mark.parametrize(
    "path", ["/office?site=ber", "/office.json?site=ber", "/polls?site=ber", "/polls?site=nowhere"]
)
def test_offices_outside_the_scope_are_not_found(client, path):
    assert client("manager").get(path)[0] == 404


@pytest.mark.parametrize("path", ["/office?site=msk", "/polls?site=msk"])
def test_a_role_without_reports_is_refused_and_nobody_anonymous_gets_in(client, path):
    assert client("tech").get(path)[0] == 403
    status, headers, _ = client().get(path)
    assert status == 303 and "/login" in headers.get("location", headers.get("Location", ""))


@pytest.mark.parametrize(
    "query",
    [
        "figure=nonsense",
        "what=maybe",
        "cell=9-99",
        "cell=x",
        "from=2025-13-01",
        "from=2025-03-09&to=2025-03-01",
        "page=0",
    ],
)
def test_bad_drill_down_input_is_one_message_not_a_trace(client, query):
    status, _h, body = client("analyst").get("/polls?site=msk&" + query)
    assert status == 400 and 'class="error"' in body and "Traceback" not in body


def test_bad_office_dates_are_refused(client):
    status, _h, body = client("analyst").get("/office?site=msk&from=someday")
    assert status == 400 and 'class="error"' in body
    assert client("analyst").get("/office.csv?site=msk&from=someday")[0] == 400


@pytest.mark.parametrize("by", ["device", "question", "employee", "site"])
def test_every_row_of_the_kpi_page_drills_down_to_its_n(client, chain, by):
    rep = _report(chain, by=by)
    analyst = client("analyst")
    checked = 0
    for r in rep["rows"] + [rep["total"]]:
        url = drill.row_url(_Ctx(), rep, r, "polls", "msk")
        assert _count(analyst, url) == r["polls"]["valid"], (by, r["key"])
        for figure in ("di_staff", "di_office"):
            if r["kpi"][figure] and r["kpi"][figure]["n"]:
                assert _count(analyst, drill.row_url(_Ctx(), rep, r, figure, "msk")) == r["kpi"][figure]["n"]
                checked += 1
    assert checked


def test_the_kpi_page_links_its_figures_to_their_polls(client):
    status, _h, body = client("analyst").get(
        "/reports?" + urllib.parse.urlencode(dict(WEEK, site="msk", by="employee"))
    )
    assert status == 200 and "/polls?site=msk&amp;figure=di_staff" in body and "employee=" in body
    status, _h, body = client("analyst").get("/reports?" + urllib.parse.urlencode(dict(WEEK, site="", by="site")))
    assert status == 200 and "/office?site=msk" in body


def test_the_drill_down_list_downloads_as_csv_with_verdicts(client, chain, monkeypatch):
    monkeypatch.setattr(drill, "EXPORT_CHUNK", 3)  # several chunks
    analyst = client("analyst")
    query = drill.url("msk", "polls", WEEK["from"], WEEK["to"], what="all").split("?", 1)[1]
    n = _count(analyst, "/polls?" + query)
    status, _h, body = analyst.get("/polls.csv?" + query)
    lines = body.strip().splitlines()
    assert status == 200 and lines[0].startswith("id,opened,timezone,device,employee")
    assert len(lines) - 1 == n == len({line.split(",")[0] for line in lines[1:]})
    assert sum(1 for line in lines[1:] if line.split(",")[8] == "invalid") == 1
    assert all("+03:00" in line.split(",")[1] for line in lines[1:])  # Moscow time
    assert analyst.get("/polls.csv?site=msk&figure=nope")[0] == 400
    assert client("manager").get("/polls.csv?site=ber")[0] == 404
