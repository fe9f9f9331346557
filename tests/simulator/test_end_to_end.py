"""End to end: the real firmware on virtual panels -> a real MQTT broker -> `rating gateway run`
(a subprocess) -> SQLite, checked against the simulation's ground truth (simulator/runner.py).

- the smoke day over the session's Mosquitto (the runner's --broker path, own topic root);
- a shortened fault week (fault-days.toml: every fault on, a forced journal overflow) with the
  runner's own broker, which it stops and starts for the outages;
- the check is not a rubber stamp: a tampered store is reported;
- the full 20-site week under `make soak`.
"""

import os
import sqlite3
import subprocess
import sys

import pytest

from simulator import check, runner, scenario

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCEN = os.path.join(REPO, "simulator", "scenarios")
RATING = os.path.join(os.path.dirname(sys.executable), "rating")  # the installed entry point


def _diffs(doc, system):
    return check.compare(doc, system) + system["problems"]


@pytest.mark.e2e
def test_sim_e2e_smoke_day_over_shared_broker(broker, mqtt_root, tmp_path):
    sc = scenario.load(os.path.join(SCEN, "smoke-day.toml"))
    doc, system, world = runner.run(sc, str(tmp_path / "out"), broker=broker.url, progress=False, root=mqtt_root)
    assert _diffs(doc, system) == []
    assert doc["totals"]["polls"] > 50 and len(system["polls"]) == doc["totals"]["polls"]
    # every press became exactly one stored event (nothing is lost on a fault-free day)
    db = sqlite3.connect(str(tmp_path / "out" / "gateway.db"))
    n_events = db.execute("SELECT COUNT(*) FROM raw_events").fetchone()[0]
    n_distinct = db.execute("SELECT COUNT(DISTINCT site || '/' || device || '/' || seq) FROM raw_events").fetchone()[0]
    n_counts = db.execute("SELECT COUNT(*) FROM counts").fetchone()[0]
    verdicts = db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    db.close()
    assert n_events == n_distinct == doc["totals"]["presses"]
    assert n_counts == len(world.counts)
    assert verdicts == doc["totals"]["fm_reports"] + doc["totals"]["invalid"]
    # the gateway's report is what the truth says (the runner compared it figure by figure)
    site = system["report"]["site"]["rows"][0]
    assert site["key"] == "office-1" and site["polls"]["valid"] == doc["totals"]["polls"] - doc["totals"]["invalid"]
    assert doc["runner"]["stats"]["wifi_drops"] >= 1
    assert os.path.exists(tmp_path / "out" / "report-gateway.txt")
    # acks do not stop simulated time: panels whose ack deadline came first were parked alone and
    # read their ack when it came; no ack wait ran out and no panel resent anything
    st = doc["runner"]["stats"]
    assert st["parks"] > 0 and st["park_acks"] > 0 and st["hold_expired"] == 0
    assert st["ack_timeouts"] == 0 and st["resends"] == 0
    assert st["panel_days"] == 3


@pytest.mark.e2e
def test_sim_e2e_fault_days_every_fault(tmp_path):
    sc = scenario.load(os.path.join(SCEN, "fault-days.toml"))
    doc, system, _world = runner.run(sc, str(tmp_path / "out"), progress=False)
    assert _diffs(doc, system) == []
    st = doc["runner"]["stats"]
    for fault in ("wifi_drops", "broker_outages", "reboots", "power_cuts", "gateway_restarts", "no_clock_boots"):
        assert st[fault] >= 1, "fault %s never happened: raise its rate in fault-days.toml" % fault
    # power cuts tore journal writes: those presses are lost, and only those plus the overflow
    reasons = {p["lost"] for p in doc["lost"]}
    assert "power cut during its journal write" in reasons
    lost = doc["runner"]["lost"]
    overflow = lost["busy-1/desk-1"]
    assert overflow["missing"] > 0 and overflow["gateway_lost"] == overflow["missing"]
    assert sum(v["missing"] for k, v in lost.items() if k != "busy-1/desk-1") == 0
    assert sum(1 for p in doc["lost"] if p["lost"] == "dropped by a full journal") == overflow["missing"]
    # no-clock boots: events pressed before NTP answered got their time repaired, not guessed
    db = sqlite3.connect(str(tmp_path / "out" / "gateway.db"))
    untimed = db.execute("SELECT COUNT(*) FROM raw_events WHERE t_ms IS NULL").fetchone()[0]
    sources = dict(db.execute("SELECT time_source, COUNT(*) FROM polls GROUP BY time_source").fetchall())
    db.close()
    assert untimed > 0 and "arrival" not in sources


@pytest.mark.e2e
def test_sim_e2e_check_reports_a_tampered_store(tmp_path):
    """The comparison must see a poll the gateway lost and a figure that moved."""
    sc = scenario.load(os.path.join(SCEN, "smoke-day.toml"))
    doc, system, _world = runner.run(sc, str(tmp_path / "out"), progress=False)
    assert _diffs(doc, system) == []
    gone = system["polls"].pop(3)
    diffs = check.compare(doc, system)
    assert any("poll %s/%s/%s missing" % (gone["site"], gone["device"], gone["open_seq"]) in d for d in diffs)
    rep = system["report"]["site"]
    rep["rows"][0]["kpi"]["di_office"]["value"] += 0.01
    kdiffs = check.compare_report(check.report_kpis(doc), rep, system["report"]["employee"])
    assert any("di_office.value" in d for d in kdiffs)


@pytest.mark.e2e
def test_sim_e2e_cli_exit_code_and_message(tmp_path):
    out = tmp_path / "o"
    r = subprocess.run(
        [RATING, "sim", "run", os.path.join(SCEN, "journal-overflow.toml"), "--check", "--quiet", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check: OK" in r.stdout and "lost to the forced journal overflow" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        open(os.path.join(SCEN, "smoke-day.toml")).read().replace("[firmware]", "")
        + "\n[firmware]\njournal_capacity = 5\n"
    )
    r = subprocess.run(
        [RATING, "sim", "run", str(bad), "--quiet", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "journal.capacity" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_sim_e2e_chain_week_full(tmp_path):
    sc = scenario.load(os.path.join(SCEN, "chain-week.toml"))
    doc, system, _world = runner.run(sc, str(tmp_path / "out"), progress=False)
    assert _diffs(doc, system) == []
    assert doc["totals"]["polls"] > 5000
