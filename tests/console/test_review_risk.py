"""The review queue riskiest first (console /review and GET /api/v1/review): a poll whose answer
came 400 ms after the seller's press, with a Yes pressed while the seller still held the button,
heads the queue with its reasons in words; the order can be switched to time; the API gives the
score and the reason codes."""

import json
import re

import pytest
from console_support import HOUR, T_WEEK
from gw_site_support import Panel, store_events

from gateway import derive, schema

pytestmark = pytest.mark.e2e

GAMED = "msk/exit/8"  # the exit panel's 3 polls are seqs 1-6; the held Yes is 7


@pytest.fixture
def gamed(console):
    """A gamed poll on the Moscow exit panel: Yes pressed during the seller's 800 ms hold (an
    unsolicited press), then Yes again 400 ms after the release."""
    db = schema.open_database(console.db_url)
    p = Panel("msk", "exit", booted_at=T_WEEK - 48 * HOUR)
    p.seq = 6
    t = T_WEEK + 2 * HOUR
    p.press(t - 300, "yes")
    p.press(t, "seller_short", hold=800)
    p.press(t + 400, "yes")
    store_events(db, p.events)
    derive.update(db, [("msk", "exit")], T_WEEK + 24 * HOUR)
    db.close()
    return GAMED


def _rows(html):
    """The queue's rows as (item id, doubt cell text)."""
    out = []
    for row in re.findall(r"<tr class=\"(?:pending|decided)\">(.*?)</tr>", html, re.S):
        ident = re.search(r"data-item>([^<]+)<", row).group(1)
        cell = re.search(r'<td class="doubt"[^>]*>(.*?)</td>', row, re.S).group(1)
        out.append((ident, re.sub(r"<[^>]+>", "", cell)))
    return out


def test_the_riskiest_poll_heads_the_queue_with_its_reasons_in_words(client, gamed):
    c = client("expert")
    status, _h, html = c.get("/review?from=2025-03-03&to=2025-03-09")
    assert status == 200
    rows = _rows(html)
    ident, why = rows[0]
    assert ident == gamed
    assert why.startswith("8:") and "pressed while the seller&#39;s button was still held" in why.replace("'", "&#39;")
    assert "answered before a person could read the question" in why
    assert all(w == "—" for _i, w in rows[1:] if _i.startswith("ber/"))  # honest polls: no doubt
    assert 'name="order"' in html and "riskiest first" in html


def test_the_queue_in_time_order_and_the_doubtful_kind(client, gamed):
    c = client("expert")
    rows = _rows(c.get("/review?from=2025-03-03&to=2025-03-09&order=time")[2])
    assert rows[0][0] != gamed and gamed in [i for i, _w in rows]
    only = _rows(c.get("/review?from=2025-03-03&to=2025-03-09&kind=doubt")[2])
    assert only and only[0][0] == gamed and all(w != "—" for _i, w in only)
    status, _h, html = c.get("/review?order=loudest")
    assert status == 400 and "Choose an order from the list." in html


def test_the_item_page_says_why_and_the_walk_follows_the_queue_order(client, gamed):
    c = client("expert")
    week = "from=2025-03-03&to=2025-03-09"
    rows = _rows(c.get("/review?" + week)[2])
    html = c.get("/review/poll/%s?%s" % (gamed, week))[2]
    why = re.search(r'<dd id="doubt">(.*?)</dd>', html, re.S).group(1)
    assert why.startswith("<strong>8</strong>:") and "before a person could read the question" in why
    nxt = re.search(r'<a href="([^"]+)" data-key="n" rel="next"', html).group(1)
    assert nxt.startswith("/review/poll/%s?" % rows[1][0]), (nxt, rows[:4])  # the second riskiest
    timed = [i for i, _w in _rows(c.get("/review?order=time&" + week)[2])]
    html = c.get("/review/poll/%s?order=time&%s" % (gamed, week))[2]
    nxt = re.search(r'<a href="([^"]+)" data-key="n" rel="next"', html).group(1)
    assert nxt.startswith("/review/poll/%s?" % timed[timed.index(gamed) + 1])  # in time: the next one
    honest = c.get("/review/poll/ber/desk-1/1?" + week)[2]
    assert 'id="doubt"' not in honest


def test_the_api_gives_the_score_and_the_reasons(client, gamed):
    c = client("expert")
    status, _h, body = c.get("/api/v1/review?from=2025-03-03&to=2025-03-09")
    assert status == 200
    doc = json.loads(body)
    first = doc["items"][0]
    assert first["id"] == gamed and first["stratum"] == "doubt" and first["doubt"] == 8
    assert first["doubt_reasons"] == ["very_fast_answer", "seller_held", "unsolicited_near"]
    assert first["doubt_text"][1] == "an answer pressed while the seller's button was still held"
    scores = [i["doubt"] for i in doc["items"] if i["kind"] == "poll" and not i["decided"]]
    assert scores == sorted(scores, reverse=True)
    assert doc["counts"]["doubt"]["pending"] >= 1
    timed = json.loads(c.get("/api/v1/review?from=2025-03-03&to=2025-03-09&order=time")[2])
    assert timed["items"][0]["id"] != gamed
    assert c.get("/api/v1/review?order=loudest")[0] == 422
    assert client("manager").get("/api/v1/review")[0] == 403
