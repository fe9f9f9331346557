"""The console's alerts page (console/alerts_page.py) on the real server: the alerts of the
account's offices, acknowledge and resolve with the CSRF token, nothing for other offices or
for roles that may only read."""

import re

from console_support import HOUR, T_WEEK
from gw_site_support import open_db

from gateway import alerts


def _raise(db_url):
    """The chain's msk/exit reports a stuck button; the Berlin panel was never heard from."""
    db = open_db(db_url)
    raised = alerts.evaluate(db, T_WEEK + 6 * HOUR)
    db.close()
    return {(r["rule"], r["subject"]): r["id"] for r in raised}


def _csrf(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_alerts_page_lists_acknowledges_and_resolves(console, client):
    ids = _raise(console.db_url)
    stuck = ids[("stuck_button", "msk/exit")]
    expert = client("expert")
    _s, _h, home = expert.get("/")
    assert '<a href="/alerts">Alerts</a>' in home  # the menu leads there
    status, _h, html = expert.get("/alerts")
    assert status == 200
    assert '<a href="/alerts" aria-current="page">' in html
    assert "Button stuck" in html or "button stuck" in html
    assert 'id="alert-%d"' % stuck in html
    token = _csrf(html)
    status, headers, _ = expert.post("/alerts/%d/ack" % stuck, {"csrf": token, "next": "/alerts"})
    assert status == 303
    db = open_db(console.db_url)
    assert alerts.get(db, stuck)["acked_by"] == "expert"
    status, _h, _ = expert.post("/alerts/%d/resolve" % stuck, {"csrf": token})
    assert status == 303
    assert alerts.get(db, stuck)["resolved_by"] == "expert"
    db.close()
    _s, _h, html = expert.get("/alerts")
    assert 'id="alert-%d"' % stuck not in html  # resolved: not in the default list
    _s, _h, html = expert.get("/alerts?state=resolved")
    assert 'id="alert-%d"' % stuck in html


def test_alerts_page_in_russian(console, client):
    _raise(console.db_url)
    ru = client("expert")
    token = ru.csrf("/alerts")
    ru.post("/account/lang", {"csrf": token, "lang": "ru", "next": "/alerts"})
    _s, _h, html = ru.get("/alerts")
    assert "Оповещения" in html and "залипла кнопка" in html


def test_alerts_page_keeps_to_the_scope_and_the_role(console, client):
    ids = _raise(console.db_url)
    berlin = ids[("panel_offline", "ber/desk-1")]
    stuck = ids[("stuck_button", "msk/exit")]
    manager = client("manager")  # msk only
    _s, _h, html = manager.get("/alerts")
    assert 'id="alert-%d"' % stuck in html and 'id="alert-%d"' % berlin not in html
    status, _h, _ = manager.post("/alerts/%d/ack" % berlin, {"csrf": _csrf(html)})
    assert status == 404
    analyst = client("analyst")  # reads, never acts
    _s, _h, html = analyst.get("/alerts")
    assert 'id="alert-%d"' % berlin in html and "/alerts/%d/ack" % berlin not in html
    status, _h, _ = analyst.post("/alerts/%d/ack" % berlin, {"csrf": _csrf(html)})
    assert status == 404
    status, _h, _ = client("expert").post("/alerts/%d/ack" % stuck, {"csrf": "wrong"})
    assert status == 403
    db = open_db(console.db_url)
    assert alerts.get(db, berlin)["acked_ms"] is None and alerts.get(db, stuck)["acked_ms"] is None
    db.close()
    status, headers, _ = client().get("/alerts")
    assert status == 303 and headers["location"].startswith("/login")
