"""POST /api/v1/transactions: a POS integration's bearer token (a store-manager account scoped to
its offices, or an admin's) posts sales; idempotent on (office, id); other roles and offices
out of scope are refused; the loyalty reference is never echoed."""

import json

import pytest
from console_support import T_WEEK

from gateway import schema, transactions, users

pytestmark = pytest.mark.e2e


def _auth(console, account):
    db = schema.open_database(console.db_url)
    token, _row = users.create_token(db, account, "POS", "admin", 1)
    db.close()
    return {"Authorization": "Bearer " + token}


def _sale(**kw):
    body = {"site": "msk", "till": "desk-1", "t": T_WEEK + 60000, "id": "R-000123", "loyalty": "4276123456789012"}
    body.update(kw)
    return body


def test_a_pos_posts_a_sale_once_and_a_retry_changes_nothing(client, console):
    c = client()
    auth = _auth(console, "manager")
    status, _h, text = c.request("POST", "/api/v1/transactions", json_body=_sale(), headers=auth)
    assert status == 201, text
    body = json.loads(text)
    assert body["stored"] is True and "loyalty" not in body and "4276" not in text
    status, _h, text = c.request("POST", "/api/v1/transactions", json_body=_sale(t=T_WEEK), headers=auth)
    assert status == 200 and json.loads(text)["stored"] is False
    db = schema.open_database(console.db_url)
    try:
        rows = db.query("SELECT tx_id, at_ms, loyalty, source FROM transactions")
    finally:
        db.close()
    assert len(rows) == 1 and rows[0]["at_ms"] == T_WEEK + 60000 and rows[0]["source"] == "http:manager"
    assert rows[0]["loyalty"].startswith("h:")  # a raw card number is never stored


def test_bad_sales_roles_and_offices_out_of_scope_are_refused(client, console):
    c = client()
    manager = _auth(console, "manager")
    status, _h, text = c.request("POST", "/api/v1/transactions", json_body=_sale(id="R 1"), headers=manager)
    assert status == 400 and "id" in json.loads(text)["fields"]
    status, _h, text = c.request("POST", "/api/v1/transactions", json_body=_sale(site="ber"), headers=manager)
    assert status == 400 and "site" in json.loads(text)["fields"]  # Berlin is not the manager's
    for account in ("analyst", "expert", "tech"):
        status, _h, _t = c.request("POST", "/api/v1/transactions", json_body=_sale(), headers=_auth(console, account))
        assert status == 403, account
    assert c.request("POST", "/api/v1/transactions", json_body=_sale())[0] == 401
    status, _h, _t = c.request(
        "POST", "/api/v1/transactions", json_body=_sale(site="ber"), headers=_auth(console, "admin")
    )
    assert status == 201
    db = schema.open_database(console.db_url)
    try:
        assert transactions.count(db) == 1
    finally:
        db.close()


def test_the_pos_figures_of_an_office_in_scope_without_loyalty_references(client, console):
    c = client()
    manager = _auth(console, "manager")
    for i, (minutes, tx_id) in enumerate(((-1, "R-1"), (30, "R-2"))):
        body = _sale(id=tx_id, t=T_WEEK + minutes * 60000, loyalty="crm-%d" % i)
        assert c.request("POST", "/api/v1/transactions", json_body=body, headers=manager)[0] == 201
    status, _h, text = c.get("/api/v1/pos?site=msk", headers=manager)
    assert status == 200, text
    body = json.loads(text)
    assert "crm-" not in text and "h:" not in text
    (row,) = [r for r in body["by_device"] if r["key"] == "desk-1"]
    # polls every 20 minutes from T_WEEK: the sale a minute before the first is its; the one at
    # +30 min is the +40 min poll's (10 minutes before it); the +20 min poll had none
    assert (row["transactions"], row["matched"], row["unmatched_polls"]) == (2, 2, 1)
    assert [p["id"] for p in body["polls_without_sale"]] == ["msk/desk-1/3"] and body["sales_without_poll"] == []
    assert c.get("/api/v1/pos?site=ber", headers=manager)[0] == 404  # not the manager's office
    assert c.get("/api/v1/pos?site=msk&from=yesterday", headers=manager)[0] == 400
    assert c.get("/api/v1/pos?site=msk", headers=_auth(console, "tech"))[0] == 403


def _pos_rows(html, by):
    """{key: (sales, polls, matched, no sale, no poll, value, low, high)} of the office page's POS table."""
    import re

    table = html.split('id="pos-%s"' % by, 1)[1].split("</table>", 1)[0]
    out = {}
    for attrs in re.findall(r'<tr data-key="([^"]*)"([^>]*)>', table):
        key, rest = attrs
        got = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', rest))
        out[key] = tuple(int(got[k]) for k in ("sales", "polls", "matched", "no-sale", "no-poll")) + tuple(
            float(got[k]) if got[k] else None for k in ("value", "low", "high")
        )
    return out


def test_the_office_page_shows_the_pos_figures_of_the_api_and_never_a_loyalty_reference(client, console):
    c = client("manager")
    manager = _auth(console, "manager")
    for i, (minutes, tx_id) in enumerate(((-1, "R-1"), (30, "R-2"), (-15, "R-3"))):
        body = _sale(id=tx_id, t=T_WEEK + minutes * 60000, loyalty="crm-secret-%d" % i)
        assert c.request("POST", "/api/v1/transactions", json_body=body, headers=manager)[0] == 201
    query = "site=msk&from=2025-03-03&to=2025-03-03"
    status, _h, api = c.get("/api/v1/pos?" + query, headers=manager)
    assert status == 200, api
    api = json.loads(api)
    status, _h, html = c.get("/office?" + query)
    assert status == 200, html
    assert "crm-secret" not in html and "h:" not in html
    for by in ("device", "employee"):
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
            for r in api["by_" + by]
        }
        assert want and _pos_rows(html, by) == want, by
    (desk,) = [r for r in api["by_device"] if r["key"] == "desk-1"]
    assert desk["unmatched_sales"] == 1 and desk["unmatched_polls"] >= 1  # 15 min before any poll
    no_sale = html.split('id="pos-polls-without-sale"', 1)[1].split("</table>", 1)[0]
    assert [p["id"] for p in api["polls_without_sale"]] == [x.split('"')[0] for x in no_sale.split('<tr data-id="')[1:]]
    assert 'data-id="R-3"' in html.split('id="pos-sales-without-poll"', 1)[1]
    # each "polls with no sale" count links to the drill-down of exactly those polls
    import html as _html
    import re

    for by in ("device", "employee"):
        table = html.split('id="pos-%s"' % by, 1)[1].split("</table>", 1)[0]
        for r in api["by_" + by]:
            if not r["unmatched_polls"]:
                continue
            row = table.split('data-key="%s"' % r["key"], 1)[1].split("</tr>", 1)[0]
            href = _html.unescape(re.findall(r'href="([^"]+)"', row)[0])
            assert "what=no_sale" in href
            status, _h, page = c.get(href)
            assert status == 200 and "crm-secret" not in page
            assert 'data-n="%d"' % r["unmatched_polls"] in page, (by, r["key"])
            if by == "device":
                ids = re.findall(r'<a href="/review/poll/([^"]+)"', page) or re.findall(r'data-id="(msk/[^"]+)"', page)
                assert not ids or set(ids) <= {p["id"] for p in api["polls_without_sale"]}
    assert "15:00" in html  # the office's time (Moscow), not UTC
    for path in ("/office.json?", "/office.csv?"):
        status, _h, text = c.get(path + query)
        assert status == 200 and "crm-secret" not in text and "exact_conversion" in text
    status, _h, text = c.get("/office.json?" + query)
    assert json.loads(text)["pos"]["by_device"] == api["by_device"]


def test_the_office_page_has_no_pos_section_without_sales(client):
    status, _h, html = client("manager").get("/office?site=msk&from=2025-03-03&to=2025-03-03")
    assert status == 200 and 'id="office-pos"' not in html


def test_the_kpi_page_and_its_downloads_carry_the_pos_section_without_loyalty_references(client, console):
    c = client("manager")
    manager = _auth(console, "manager")
    for i, (minutes, tx_id) in enumerate(((-1, "R-1"), (-15, "R-3"))):
        body = _sale(id=tx_id, t=T_WEEK + minutes * 60000, loyalty="crm-secret-%d" % i)
        assert c.request("POST", "/api/v1/transactions", json_body=body, headers=manager)[0] == 201
    query = "site=msk&from=2025-03-03&to=2025-03-03"
    api = json.loads(c.get("/api/v1/pos?" + query, headers=manager)[2])
    status, _h, html = c.get("/reports?" + query)
    assert status == 200 and 'id="reports-pos"' in html and "crm-secret" not in html
    (desk,) = [r for r in api["by_device"] if r["key"] == "desk-1"]
    row = html.split('id="pos-device"', 1)[1].split('data-key="desk-1"', 1)[1].split(">", 1)[0]
    assert 'data-sales="%d"' % desk["transactions"] in row and 'data-matched="%d"' % desk["matched"] in row
    status, _h, text = c.get("/reports/export?format=csv&" + query)
    assert status == 200 and "crm-secret" not in text
    pos_lines = [x for x in text.splitlines() if x.startswith("pos,msk,device,desk-1,")]
    assert pos_lines and pos_lines[0].split(",")[4] == str(desk["transactions"])


def test_the_pos_section_speaks_russian_with_russian_numbers(client, console):
    from gateway import db as dbmod

    db = dbmod.connect(console.db_url)
    try:
        users.add(db, "ru-manager", "correct horse battery", "store-manager", T_WEEK, offices=["msk"], lang="ru")
    finally:
        db.close()
    manager = _auth(console, "manager")
    c = client("ru-manager")
    body = _sale(id="R-1", t=T_WEEK - 60000)
    assert c.request("POST", "/api/v1/transactions", json_body=body, headers=manager)[0] == 201
    status, _h, html = c.get("/office?site=msk&from=2025-03-03&to=2025-03-03")
    assert status == 200
    section = html.split('id="office-pos"', 1)[1].split("</section>", 1)[0]
    for words in (
        "Продажи с кассы и опросы",
        "По панелям",
        "По сотрудникам",
        "Опросы без продажи",
        "Продажи без опроса",
    ):
        assert words in section, words
    assert "Sales" not in section and "Polls with" not in section
    status, _h, html = c.get("/reports?site=msk&from=2025-03-03&to=2025-03-03")
    assert status == 200 and "Продажи с кассы и опросы" in html
