"""Helpers of the console tests (tests/console/): a small chain's database (two offices in two timezones,
staff/office panels, No answers, silent polls, a force-majeure report, cameras), accounts of
every role; a browser-less HTTP client."""

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

from gw_site_support import MIN, SITE_TOML, Panel, apply_site, store_events

from gateway import derive, store

T_WEEK = 1741003200000  # 2025-03-03T12:00:00Z, a Monday: 15:00 in Moscow, 13:00 in Berlin
HOUR = 60 * MIN
PASSWORD = "correct horse battery"

# The location tree: Europe > Russia (msk), Germany (ber).
REGIONS_TOML = """
[[regions]]
id = "europe"
name = "Europe"

[[regions]]
id = "russia"
name = "Russia"
parent = "europe"

[[regions]]
id = "germany"
name = "Germany"
parent = "europe"

"""
# The shared test site file plus a Berlin office (its panel's camera links to playable clips),
# the location tree and a larger random review share, so the queue has every kind of item.
CHAIN_TOML = (
    SITE_TOML.replace("[deployment]\n", "[deployment]\nreview_share = 0.3\n", 1)
    .replace('timezone = "Europe/Moscow"\n', 'timezone = "Europe/Moscow"\nregion = "russia"\n', 1)
    .replace("[[sites]]", REGIONS_TOML + "[[sites]]", 1)
    .replace(
        "[[questions]]",
        '[[sites]]\nid = "ber"\nname = "Berlin Mitte"\ntimezone = "Europe/Berlin"\nregion = "germany"\n\n[[questions]]',
        1,
    )
    + """
[[panels]]
site = "ber"
device = "desk-1"
question = "staff"
camera = "https://nvr.ber.local/clips/{unix}.mp4"

[[roster]]
panel = "ber/desk-1"
employee = "petrov"
from = 2025-01-01T00:00:00Z
"""
)

ACCOUNTS = (
    ("admin", "admin", {}),
    ("expert", "expert", {"all_offices": True}),
    ("analyst", "analyst", {"all_offices": True}),
    ("manager", "store-manager", {"offices": ["msk"]}),
    ("tech", "technician", {"all_offices": True}),
)


def build_chain(db):
    """The week's events of both offices, derived; returns nothing (ids are stable)."""
    apply_site(db, CHAIN_TOML)
    msk = Panel("msk", "desk-1", booted_at=T_WEEK - 48 * HOUR)
    answers = ["yes", "no", None, "yes", "no", "unsure", "yes", "no", "yes", "yes"]
    for i, a in enumerate(answers):
        msk.poll(T_WEEK + i * 20 * MIN, a)
    msk.press(T_WEEK + 4 * HOUR, "seller_long")  # a force-majeure report
    msk.poll(T_WEEK + 4 * HOUR + 2 * MIN, "no")
    exit_ = Panel("msk", "exit", booted_at=T_WEEK - 48 * HOUR)
    for i, a in enumerate(["yes", "no", "yes"]):
        exit_.poll(T_WEEK + i * 30 * MIN, a)
    ber = Panel("ber", "desk-1", booted_at=T_WEEK - 48 * HOUR)
    for i, a in enumerate(["no", "yes", "no", "yes"]):
        ber.poll(T_WEEK + HOUR + i * 25 * MIN, a)
    store_events(db, msk.events + exit_.events + ber.events)
    with db.transaction():  # what the panels last said (the Berlin panel: events, never a state)
        store.touch_last_seen(db, "ber", "desk-1", T_WEEK + 3 * HOUR)
        for device, faults in (("desk-1", []), ("exit", ["stuck:yes"])):
            state = {"online": True, "boot": 1, "up": 1, "t": T_WEEK, "fw": "0.1.0", "seq": 1, "pending": 0}
            store.upsert_state(db, "msk", device, dict(state, faults=faults, cfg=1), T_WEEK + 5 * HOUR, "{}")
    derive.rebuild(db, T_WEEK + 24 * HOUR)


class Client:
    """A browser-less visitor: cookies, CSRF tokens read from the pages, JSON helpers."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, method, path, data=None, headers=None, json_body=None):
        headers = dict(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            body = urllib.parse.urlencode(data, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, data=None, **kw):
        return self.request("POST", path, data=data, **kw)

    def csrf(self, path="/"):
        status, _h, html = self.get(path)
        m = re.search(r'name="csrf" value="([^"]+)"', html)
        assert m, "no CSRF field on %s (%s)" % (path, status)
        return m.group(1)

    def login(self, username, password=PASSWORD):
        token = self.csrf("/login")
        return self.post("/login", {"csrf": token, "username": username, "password": password, "next": "/"})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
