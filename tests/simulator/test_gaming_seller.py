"""A gaming seller in the simulator (simulator/world.py) and the doubt score that must find
him: his polls go through the gateway's real derivation (SQLite) and rank at the top of the
review queue (gateway/doubt.py, gateway/review.risk_first)."""

import os

import pytest
from gw_site_support import apply_site, sqlite_db, store_events

from gateway import derive, doubt, review
from simulator import check, pure, scenario, sitefile, truth

SCEN = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "simulator", "scenarios"
)
GAMING = os.path.join(SCEN, "gaming-week.toml")


def _world(seed=None, days=None):
    return pure.model_world(scenario.load(GAMING, seed=seed, days=days))


def _queue(tmp_path, w):
    """The review queue (riskiest first) of World `w` derived by the gateway, and the gamed poll ids."""
    db = sqlite_db(tmp_path)
    apply_site(db, sitefile.site_toml(w), w.scenario.start_ms - 7200000)
    store_events(db, pure.raw_events(w))
    derive.rebuild(db, w.scenario.end_ms + 86400000)
    polls, fms = derive.polls_and_reports(db)
    doubts = doubt.score(polls, derive.unsolicited_presses(db))
    queue = review.risk_first(review.sample(polls, fms, 0.1), polls, doubts)
    db.close()
    seq = {(p.poll, p.role): p.seq for ps in w.presses.values() for p in ps if p.role == "open"}
    gamed = {"%s/%s/%s" % (q["site"], q["device"], seq[(q["id"], "open")]) for q in w.polls if q.get("gamed")}
    ids = [review.format_id(r["site"], r["device"], r["open_seq"]) for s, r in queue if s != "fm"]
    return ids, gamed, doubts


def test_gaming_seller_truth_equals_the_window_builder():
    # his presses follow the method's rules like everyone's: the truth (gamed polls counted as
    # the Yes the system sees, the Yes pressed during the hold unsolicited) matches poll by poll
    w = _world()
    doc = truth.build(w)
    system = pure.derive(w)
    system["unsolicited"] = {"%s/%s" % k: v for k, v in system["unsolicited"].items()}
    assert check.compare(doc, system) == [] and system["anomalies"] == []
    gamed = [p for p in w.polls if p.get("gamed")]
    assert len(gamed) > 50 and {p["employee"] for p in gamed} == {"sidorov"}
    roles = {p.role for ps in w.presses.values() for p in ps}
    assert "held" in roles  # the chord behaviour happened


def test_gaming_seller_without_gaming_keys_is_an_honest_seller():
    sc = scenario.load(GAMING)
    assert "gaming" not in sc.sites[0]["sellers"]["ivanova"]
    assert sc.sites[0]["sellers"]["sidorov"]["gaming"]["empty_per_day"] == 6.0


def test_gaming_seller_scenario_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    base = '[[site]]\nid = "o"\n[[site.seller]]\nid = "s"\ngaming = %s\n[[site.panel]]\nid = "p"\nsellers = ["s"]\n'
    bad.write_text(base % "{ self_yes = 2 }")
    with pytest.raises(scenario.ScenarioError, match=r"seller\[0\]\.gaming\.self_yes: must be a number from 0 to 1"):
        scenario.load(str(bad))
    bad.write_text(base % "{ selfyes = 0.2 }")
    with pytest.raises(scenario.ScenarioError, match=r"gaming\.selfyes: unknown key"):
        scenario.load(str(bad))


@pytest.mark.parametrize("seed", [17, 18])
def test_gaming_seller_ranks_at_the_top_of_the_review_queue(tmp_path, seed):
    ids, gamed, doubts = _queue(tmp_path, _world(seed=seed, days=3))
    k = len(gamed)
    top = ids[:k]
    precision = sum(i in gamed for i in top) / k
    assert precision >= 0.9, "top-%d of the queue: %.2f gamed" % (k, precision)
    # the riskiest 20 are all his, and every sign he leaves is among the reasons given
    assert all(i in gamed for i in ids[:20])
    reasons = {r for i in gamed for r in doubts[i].reasons}
    assert {"very_fast_answer", "seller_held", "reopened"} <= reasons


@pytest.mark.e2e
def test_gaming_seller_end_to_end_real_firmware_broker_and_gateway(broker, mqtt_root, tmp_path):
    # the whole system: his presses go through the real firmware (the hold it reports, its
    # debounce), the broker and `rating gateway run`; the gateway's own polls are scored
    from gateway import schema
    from simulator import runner

    sc = scenario.load(GAMING, days=1)
    doc, system, _world = runner.run(sc, str(tmp_path / "out"), broker=broker.url, progress=False, root=mqtt_root)
    assert check.compare(doc, system) + system["problems"] == []
    gamed = {"%s/%s/%s" % (p["site"], p["device"], p["open_seq"]) for p in doc["polls"] if p.get("gamed")}
    db = schema.open_database("sqlite:///%s" % (tmp_path / "out" / "gateway.db"))
    polls, fms = derive.polls_and_reports(db)
    doubts = doubt.score(polls, derive.unsolicited_presses(db))
    db.close()
    assert all(p["seller_hold_ms"] is not None for p in polls)  # the firmware reports every hold
    top = [doubt.poll_id(p) for p in doubt.rank(polls, doubts)[: len(gamed)]]
    assert len(gamed) >= 10 and sum(i in gamed for i in top) >= 0.9 * len(gamed)
    assert any("seller_held" in doubts[i].reasons for i in gamed)
    assert not any("seller_held" in d.reasons for i, d in doubts.items() if i not in gamed)
