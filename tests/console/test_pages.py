"""What the pages say: the question as the customer read it, panel faults in words, downloads,
offices under their regions, the KPI page by region."""

import json
import shutil

import pytest
from console_support import Client

from console import fmt

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def console(chain_template, tmp_path_factory):
    """One console for this module: its tests only read, so they share it (and the sign-ins:
    an Argon2 check costs more than a page)."""
    from console import server

    path = tmp_path_factory.mktemp("pages") / "chain.db"
    shutil.copy(chain_template, path)
    running = server.start("sqlite:///%s" % path)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(console):
    signed_in = {}

    def make(username=None):
        if username is None:
            return Client(console.url)
        if username not in signed_in:
            c = Client(console.url)
            assert c.login(username)[0] == 303
            signed_in[username] = c
        return signed_in[username]

    return make


def test_a_poll_shows_the_question_with_the_employee_as_the_customer_read_it(client):
    expert = client("expert")
    status, _h, body = expert.get("/review/poll/msk/desk-1/3")
    assert status == 200
    assert "Are you satisfied with the work of Елена Иванова?" in body and "{employee}" not in body


def test_panel_faults_are_said_in_words(client):
    status, _h, body = client("tech").get("/fleet")
    assert status == 200 and "stuck button: Yes" in body and "stuck:yes" not in body
    assert fmt.fault("stuck:seller", "ru") == "залипла кнопка продавца"
    assert fmt.fault("cfg_write", "en") == "the config could not be kept on the panel"
    assert fmt.fault("new_code", "en") == "new_code"  # a code this console does not know yet


def _raw(client, path):
    """(status, headers, body bytes) of a file download."""
    import urllib.error
    import urllib.request

    try:
        with client.opener.open(urllib.request.Request(client.base + path), timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_kpi_page_downloads_as_excel_and_csv_with_the_same_figures(client):
    import io
    import json

    import openpyxl

    analyst = client("analyst")
    week = "site=msk&by=employee&from=2025-03-03&to=2025-03-09"
    page = analyst.get("/reports?" + week)[2]
    assert "/reports/export?format=xlsx&amp;" + week.replace("&", "&amp;") in page
    rep = json.loads(analyst.get("/api/v1/reports?" + week)[2])
    status, headers, body = _raw(analyst, "/reports/export?format=xlsx&" + week)
    assert status == 200 and headers["content-type"].startswith("application/vnd.openxmlformats")
    assert headers["content-disposition"] == 'attachment; filename="kpi-msk-employee-2025-03-03_2025-03-09.xlsx"'
    sheet = openpyxl.load_workbook(io.BytesIO(body)).worksheets[0]
    labels = [sheet.cell(row=r, column=1).value for r in range(2, sheet.max_row + 1)]
    assert [r["label"] for r in rep["rows"]] == labels[: len(rep["rows"])]
    status, headers, body = _raw(analyst, "/reports/export?format=csv&" + week)
    assert status == 200 and headers["content-type"] == "text/csv; charset=utf-8"
    text = body.decode("utf-8-sig")
    assert all(r["label"] in text for r in rep["rows"])


def test_a_download_keeps_the_scope_and_knows_only_its_formats(client):
    manager = client("manager")
    assert _raw(manager, "/reports/export?format=csv&site=ber")[0] == 404
    assert _raw(manager, "/reports/export?format=pdf&site=msk")[0] == 404
    assert _raw(client("tech"), "/reports/export?format=csv")[0] == 403
    status, _h, body = _raw(manager, "/reports/export?format=csv&site=msk&from=2025-02-30")
    assert status == 400 and b"A date like" in body


def test_the_start_page_lists_the_offices_under_their_regions_with_links(client):
    body = client("analyst").get("/")[2]
    assert body.index("<h3>Europe › Germany</h3>") < body.index("Berlin Mitte") < body.index("<h3>Europe › Russia</h3>")
    assert '<a href="/office?site=ber">Berlin Mitte</a>' in body and "/fleet?site=ber" not in body  # no fleet role
    assert '<a href="/reports?site=ber">' in body
    tech = client("tech").get("/")[2]
    assert '<a href="/fleet?site=msk">' in tech and "/reports?site=msk" not in tech


def test_the_kpi_page_by_region_shows_only_whole_regions_of_the_scope(client, console):
    analyst = client("analyst")
    status, _h, body = analyst.get("/reports?by=region&from=2025-03-03&to=2025-03-09")
    assert status == 200
    for region in ("Europe", "Russia", "Germany"):
        assert 'data-key="%s"' % region.lower() in body
    manager = client("manager")  # msk only: Russia is whole, Europe and Germany are not
    status, _h, body = manager.get("/reports?by=region&from=2025-03-03&to=2025-03-09")
    assert status == 200 and 'data-key="russia"' in body
    assert 'data-key="europe"' not in body and 'data-key="germany"' not in body and "Berlin" not in body
    status, _h, api = manager.get("/api/v1/reports?by=region&from=2025-03-03&to=2025-03-09")
    data = json.loads(api)
    assert data["by"] == "region" and [r["key"] for r in data["rows"]] == ["russia"]
    assert data["total"]["polls"]["valid"] == data["rows"][0]["polls"]["valid"]


def test_the_offices_api_names_each_office_s_region(client):
    status, _h, body = client("analyst").get("/api/v1/offices")
    offices = {o["id"]: o for o in json.loads(body)["offices"]}
    assert status == 200 and offices["msk"]["region"] == "russia" and offices["ber"]["region"] == "germany"
