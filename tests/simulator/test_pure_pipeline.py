"""Simulator: scenarios, ground truth and the model pipeline (no broker needed)."""

import json
import os

import pytest

from simulator import check, pure, scenario, sitefile, truth
from simulator import world as W

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
SCEN = os.path.join(os.path.dirname(HERE), "simulator", "scenarios")

FAULTY = {
    "scenario": {"name": "t", "days": 3},
    "people": {
        "fm_per_panel_week": 6,
        "children_per_site_day": 3,
        "seller_double_press": 0.1,
        "double_press": 0.2,
        "late_press": 0.6,
    },
    "defaults": {"shift": "split"},
    "chain": {"sites": 3},
    "faults": {"power_cuts_per_panel_week": 3},
}


def _run(data, seed):
    sc = scenario.from_dict(data, seed=seed)
    w = pure.model_world(sc)
    return sc, w, truth.build(w)


def test_sim_same_seed_same_world():
    a = _run(FAULTY, 5)[2]
    b = _run(FAULTY, 5)[2]
    c = _run(FAULTY, 6)[2]
    dump = lambda d: json.dumps(d, sort_keys=True, default=str)  # noqa: E731
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)


def test_sim_sites_override_keeps_other_sites_streams():
    full = _run(FAULTY, 9)[2]
    one = scenario.from_dict(FAULTY, seed=9, sites=1)
    w = W.generate(one)
    pure.assign_seqs(w)
    first = full["scenario"]["sites"][0]
    assert [p["opened_at"] for p in truth.build(w)["polls"]] == [
        p["opened_at"] for p in full["polls"] if p["site"] == first
    ]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sim_truth_equals_window_builder_on_the_presses(seed):
    # The truth counts people's intentions; the gateway's window builder applies the method's
    # rules to the presses. They must agree poll by poll (answers, extra presses, FM periods).
    sc, w, doc = _run(FAULTY, seed)
    system = pure.derive(w)
    system["unsolicited"] = {"%s/%s" % k: v for k, v in system["unsolicited"].items()}
    assert check.compare(doc, system) == []
    assert system["anomalies"] == []
    t = doc["totals"]
    assert t["polls"] > 100 and t["fm_reports"] > 3 and t["silent"] > 0 and t["unsolicited"] > 0
    assert t["lost_presses"] > 0  # power-cut victims are there and left out of the truth


def test_sim_check_reports_a_wrong_answer_readably():
    sc, w, doc = _run(FAULTY, 1)
    system = pure.derive(w)
    system["unsolicited"] = {"%s/%s" % k: v for k, v in system["unsolicited"].items()}
    victim = system["polls"][3]
    victim["answer"] = "no" if victim["answer"] != "no" else "yes"
    del system["polls"][7]
    diffs = check.compare(doc, system)
    assert len(diffs) == 2
    assert any("answer: truth" in d for d in diffs) and any("missing" in d for d in diffs)


def test_sim_truth_kpis_follow_kpi_core_rules():
    sc, w, doc = _run(FAULTY, 2)
    import kpi_core

    polls = [p for p in doc["polls"] if p["kind"] == "staff"]
    confirmed = [(f["start"], f["end"]) for f in doc["fms"] if f["confirmed"]]
    # FM periods of one panel never cover another panel's polls in the truth
    per_panel = [
        {"start": f["start"], "end": f["end"], "site": f["site"], "device": f["device"]}
        for f in doc["fms"]
        if f["confirmed"]
    ]
    c = kpi_core.count_polls(polls, per_panel, [p["id"] for p in polls if p["invalid"]], key=lambda r: r["id"])
    assert doc["kpi"]["all"]["staff"]["counts"] == c.as_dict()
    assert c.fm_no + c.fm_silent > 0 and confirmed


def test_sim_skipping_seller_shows_low_conversion():
    sc = scenario.load(os.path.join(SCEN, "smoke-day.toml"), days=3)
    w = W.generate(sc)
    pure.assign_seqs(w)
    emp = truth.build(w)["kpi"]["employee"]
    assert emp["petrov"]["exact_conversion"]["value"] < emp["ivanova"]["exact_conversion"]["value"] - 0.1


def test_sim_site_file_is_accepted_by_the_gateway():
    site = pytest.importorskip("gateway.site")
    sc, w, doc = _run(FAULTY, 3)
    parsed = site.parse(sitefile.site_toml(w))
    assert parsed is not None


def test_sim_counts_messages_decode():
    from protocol import messages

    sc, w, doc = _run(FAULTY, 3)
    msgs = sitefile.counts_messages(w)
    assert msgs and len(msgs) == len(w.counts)
    total = sum(messages.decode_counts(p)["visitors"] for _, _, p in msgs)
    assert total == doc["totals"]["visitors"]


def test_sim_scenario_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[site]]\nid = "Office 1"\n')
    with pytest.raises(scenario.ScenarioError, match=r"site\[0\]\.id"):
        scenario.load(str(bad))
    bad.write_text("[people]\nsilnt = 0.1\n")
    with pytest.raises(scenario.ScenarioError, match="people.silnt: unknown key"):
        scenario.load(str(bad))
    with pytest.raises(scenario.ScenarioError, match="no such scenario file"):
        scenario.load(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize("name", ["smoke-day", "chain-week", "journal-overflow", "demo-week"])
def test_sim_shipped_scenarios_check_in_the_model_pipeline(name, tmp_path):
    from rating.cli import main

    rc = main(
        ["sim", "run", os.path.join(SCEN, name + ".toml"), "--pure", "--check", "--days", "2", "--out", str(tmp_path)]
    )
    assert rc == 0
    doc = json.loads((tmp_path / "truth.json").read_text())
    assert doc["totals"]["polls"] > 0
    assert "Per office" in (tmp_path / "report.txt").read_text()


@pytest.mark.e2e
def test_sim_demo_prints_the_report_then_serves_the_console(tmp_path, capsys, monkeypatch):
    import re

    from console_support import Client

    from rating import demo
    from rating.cli import main

    printed = []

    def expert_signs_in_then_ctrl_c():
        # stands for the person at the terminal: signs in with the printed login, presses Ctrl-C
        printed.append(capsys.readouterr().out)
        url = re.search(r"web console: (\S+)/ ", printed[0]).group(1)
        password = re.search(r"^  expert\s+expert\s+(\S+)$", printed[0], re.M).group(1)
        client = Client(url)
        assert client.login("expert", password)[0] == 303 and client.get("/review")[0] == 200
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "_sleep_forever", expert_signs_in_then_ctrl_c)
    assert main(["demo", "--out", str(tmp_path), "--days", "2"]) == 0
    out = printed[0] + capsys.readouterr().out
    assert out.rstrip().endswith("web console stopped")
    # the end-to-end demo: embedded broker + gateway + the real firmware, then gateway.report
    assert "DI-staff" in out and "Bottleneck" in out and "Office on Nevsky" in out
    assert "ground-truth check: every event stored exactly once" in out
    assert "rating status --db sqlite:///" in out and (tmp_path / "gateway.db").exists()
