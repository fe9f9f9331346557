"""The pure load mode (simulator/loadgen.py): panels as MQTT clients through our own Mosquitto
(a login per panel) into `rating gateway run`, every event stored exactly once.

- 200 panels, a compressed day, through `rating sim load` (the CLI's exit code and lines);
- acks are honoured: a gateway killed mid-load loses what it had not committed (QoS 0 events
  in flight are gone), and the panels' resends after their ack timeout fill the gaps;
- the verification is not a rubber stamp: a missing event and an event stored under another
  name are reported.
"""

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from gateway import accounts, schema
from simulator import loadgen, services

RATING = os.path.join(os.path.dirname(sys.executable), "rating")


@pytest.mark.e2e
def test_sim_load_200_panels_a_day_stored_exactly_once(tmp_path):
    out = tmp_path / "load"
    res = subprocess.run(
        [RATING, "sim", "load", "--panels", "200", "--days", "1", "--out", str(out), "--timeout", "300"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "200 panels connected" in res.stdout
    assert "ingest: 20000 events acked" in res.stdout
    assert "check: OK (every event stored exactly once)" in res.stdout
    conn = sqlite3.connect(str(out / "load.db"))
    try:
        assert conn.execute("SELECT COUNT(*) FROM raw_events").fetchone()[0] == 20000
    finally:
        conn.close()


@pytest.mark.e2e
def test_sim_load_resends_until_acked_across_a_gateway_kill(tmp_path):
    plan = loadgen.Plan(panels=30, days=3, events_per_day=100, seed=7)
    root = "rating/v1"
    db_url = "sqlite:///" + str(tmp_path / "load.db")
    logins = accounts.demo_logins(root, plan.keys())
    broker = services.Broker("mosquitto", logins=logins).start()
    gw = services.Gateway(
        "mqtt://gateway@%s:%d" % (broker.host, broker.port),
        db_url,
        root,
        str(tmp_path),
        client_id="rating-gateway-loadtest",
        password_file=broker.secret_file("gateway"),
    )
    gen = loadgen.LoadGen(plan, broker.host, broker.port, root, logins=logins)
    gen.ACK_TIMEOUT_S = 1.0
    try:
        gw.start()
        gw.wait_connected()
        gen.connect_all()
        box = {}
        worker = threading.Thread(target=lambda: box.setdefault("res", gen.run(120)))
        worker.start()
        while gen.result.events < 1000 and worker.is_alive():
            time.sleep(0.01)
        gw.kill()  # what it had not committed is gone; events sent meanwhile go nowhere
        time.sleep(1.0)
        gw.start()
        gw.wait_connected()
        worker.join(150)
        res = box["res"]
        gw.stop()
        db = schema.open_database(db_url)
        try:
            problems = loadgen.verify(plan, db)
        finally:
            db.close()
    finally:
        gen.close()
        gw.stop()
        broker.close()
    assert res.unacked == 0
    assert res.events == plan.panels * plan.n_events()
    assert res.ack_timeouts > 0 and res.resends > 0  # the kill cost events that had to be resent
    assert problems == []


@pytest.mark.e2e
def test_sim_load_verify_reports_missing_and_renamed_events(tmp_path):
    plan = loadgen.Plan(panels=3, days=1, events_per_day=10, seed=3)
    out = str(tmp_path / "load")
    res, problems = loadgen.run(plan, out, timeout=120)
    assert problems == [] and res.events == 30
    conn = sqlite3.connect(os.path.join(out, "load.db"))
    try:
        conn.execute("DELETE FROM raw_events WHERE site = 'store-00001' AND device = 'p2' AND seq = 4")
        conn.execute("UPDATE raw_events SET ev = 'no' WHERE site = 'store-00001' AND device = 'p3' AND seq = 1")
        conn.commit()
    finally:
        conn.close()
    db = schema.open_database("sqlite:///" + os.path.join(out, "load.db"))
    try:
        problems = loadgen.verify(plan, db)
    finally:
        db.close()
    assert problems == [
        "store-00001/p2: 1 missing, 0 not planned, 0 with another event name (of 10)",
        "store-00001/p3: 0 missing, 0 not planned, 1 with another event name (of 10)",
    ]
