"""What the pages say in words: the question as the customer read it, panel faults."""

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
    assert '<a href="/reports?site=ber">Berlin Mitte</a>' in body and "/fleet?site=ber" not in body  # no fleet role
    tech = client("tech").get("/")[2]
    assert '<a href="/fleet?site=msk">' in tech and "/reports?site=msk" not in tech
