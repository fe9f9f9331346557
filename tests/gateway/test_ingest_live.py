"""The gateway as a real process against a real broker: acks, kill -9, SIGTERM, broker restart,
record/replay, the embedded broker, PostgreSQL."""

import contextlib
import json
import os
import subprocess
import threading
import time
import types

import paho.mqtt.client as mqtt
import pytest
from gw_ingest_support import (
    RATING,
    REPO,
    Fleet,
    Gateway,
    bad_event,
    ev_topic,
    event_body,
    st_topic,
    state_body,
    stored_events,
)

from gateway import accounts, schema, store
from protocol import messages
from simulator.services import free_port

SITE = "s1"


def expected_events(fleet, n):
    out = []
    for device in sorted(fleet.devices):
        d_index = fleet.devices.index(device)
        for seq in range(1, n + 1):
            e = messages.decode_event(event_body(seq, d_index))
            out.append(
                {
                    "site": SITE,
                    "device": device,
                    "seq": seq,
                    "boot": e["boot"],
                    "up_ms": e["up"],
                    "t_ms": e["t"],
                    "ev": e["ev"],
                    "hold_ms": e["hold"],
                    "payload": event_body(seq, d_index).decode(),
                }
            )
    return out


def contiguous(db, device):
    seqs = [r["seq"] for r in db.query("SELECT seq FROM raw_events WHERE device = ? ORDER BY seq", (device,))]
    n = 0
    for s in seqs:
        if s != n + 1:
            break
        n = s
    return n


def wait_for_acks(fleet, count, timeout=20):
    """Until the fleet has seen `count` acks (any panels) or the timeout passed."""
    deadline = time.monotonic() + timeout
    while len(fleet.acks_seen) < count and time.monotonic() < deadline:
        time.sleep(0.005)


def assert_acks_within_store(db, fleet):
    for device in fleet.devices:
        # every ack a panel ever saw covers only events committed before the process ended
        assert fleet.acked[device] <= contiguous(db, device), (device, fleet.acked[device])


def assert_stored(url, fleet, n):
    """The store holds exactly events 1..n of every panel, once each."""
    db = schema.open_database(url)
    assert stored_events(db) == expected_events(fleet, n)
    db.close()


@contextlib.contextmanager
def interrupted_stream(broker, mqtt_root, url, client_id, panels, n, acks_before):
    """A gateway storing n events of each panel, sent by a thread. The body gets (gateway,
    fleet) once `acks_before` acks arrived and must end that gateway; then a new one on the
    same persistent session must get everything acked, and the store must hold it all."""
    gw = Gateway(broker.url, url, mqtt_root, client_id).start()
    fleet = Fleet(broker, mqtt_root, SITE, panels)
    # ~2-3 s of stream: the interruption lands mid-stream however busy the machine is
    sender = threading.Thread(target=fleet.send_all, args=(n,), kwargs={"pace_s": 0.002})
    sender.start()
    try:
        wait_for_acks(fleet, acks_before)
        yield gw, fleet
        sender.join()
        gw = Gateway(broker.url, url, mqtt_root, client_id).start()
        # no resends: the broker redelivers what was never PUBACKed after commit
        assert fleet.wait_acked(n, timeout=40), fleet.acked
    finally:
        sender.join()
        fleet.close()
        gw.kill()
    assert_stored(url, fleet, n)


def retained_acks(broker, root):
    got = {}
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda c_, u, m: got.__setitem__(m.topic.split("/")[-2], messages.decode_ack(m.payload))
    c.on_subscribe = lambda *a: done.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.subscribe("%s/%s/+/ack" % (root, SITE), 1)
    done.wait(5)
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    return got


@pytest.mark.e2e
def test_gw_ingest_live_acks_retained_cumulative_and_replay_equals_live(broker, mqtt_root, tmp_path):
    live_url = "sqlite:///%s" % (tmp_path / "live.db")
    rec_file = tmp_path / "rec.jsonl"
    n = 300
    recorder = subprocess.Popen(
        [
            RATING,
            "record",
            "--broker",
            broker.url,
            "--root",
            mqtt_root,
            "--out",
            str(rec_file),
            "--count",
            str(3 * n + 2),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "recording" in recorder.stdout.readline()
    gw = Gateway(broker.url, live_url, mqtt_root, "gw-" + mqtt_root.replace("/", "-")).start()
    fleet = Fleet(broker, mqtt_root, SITE, 3)
    try:
        fleet.send_all(n)
        fleet.publish("%s/%s/p0/event" % (mqtt_root, SITE), b'{"v":1,"seq":"x"}')
        fleet.publish("%s/%s/p1/state" % (mqtt_root, SITE), messages.OFFLINE_WILL)
        assert fleet.wait_acked(n, timeout=30), fleet.acked
        assert fleet.drain()
    finally:
        fleet.close()
    # cumulative: per panel, the acks seen never go down, and the last is n
    for device in fleet.devices:
        seen = [s for d, s in fleet.acks_seen if d == device]
        assert seen == sorted(seen) and seen[-1] == n
    # retained: a panel subscribing later gets its latest ack at once
    assert retained_acks(broker, mqtt_root) == {"p0": n, "p1": n, "p2": n}
    assert recorder.wait(20) == 0
    assert gw.terminate() == 0, gw.output()

    live = schema.open_database(live_url)
    assert stored_events(live) == expected_events(fleet, n)
    # replay the recording into a fresh database: the same store results
    replay_url = "sqlite:///%s" % (tmp_path / "replay.db")
    out = subprocess.run(
        [RATING, "replay", str(rec_file), "--db", replay_url, "--root", mqtt_root],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "%d events stored" % (3 * n) in out.stdout and "1 dead letters" in out.stdout
    rep = schema.open_database(replay_url)
    assert stored_events(rep) == stored_events(live)
    dl = "SELECT topic, payload, reason FROM dead_letters ORDER BY id"
    assert rep.query(dl) == live.query(dl) and len(rep.query(dl)) == 1
    ps = "SELECT site, device, online, last_seq, pending FROM panel_state ORDER BY site, device"
    assert rep.query(ps) == live.query(ps)
    assert store.all_acks(rep) == store.all_acks(live)
    live.close()
    rep.close()


@pytest.mark.e2e
def test_gw_ingest_sigkill_mid_batch_loses_nothing_and_acks_only_committed(broker, mqtt_root, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "k.db")
    n = 1500
    with interrupted_stream(
        broker, mqtt_root, url, "gwk-" + mqtt_root.replace("/", "-"), panels=4, n=n, acks_before=20
    ) as (gw, fleet):
        gw.kill()  # SIGKILL, mid-stream: batches in flight
        killed_at = list(fleet.acks_seen)
        assert killed_at, "no ack before the kill"
        time.sleep(0.3)  # acks published before the kill may still be on their way
        db = schema.open_database(url)
        assert_acks_within_store(db, fleet)
        stored_at_kill = db.scalar("SELECT COUNT(*) AS n FROM raw_events")
        db.close()
        assert stored_at_kill < 4 * n, "killed too late to test anything"


@pytest.mark.e2e
def test_gw_ingest_sigterm_finishes_the_batch_and_a_restart_continues(broker, mqtt_root, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "t.db")
    with interrupted_stream(
        broker, mqtt_root, url, "gwt-" + mqtt_root.replace("/", "-"), panels=3, n=1000, acks_before=10
    ) as (gw, fleet):
        assert gw.terminate() == 0, gw.output()
        assert "stopped;" in gw.output()
        time.sleep(0.3)
        db = schema.open_database(url)
        assert_acks_within_store(db, fleet)
        # the last batch was committed AND acked before exit: the acks reach what is stored
        assert {d: store.last_ack(db, SITE, d) for d in fleet.devices} == {d: contiguous(db, d) for d in fleet.devices}
        db.close()


@pytest.mark.e2e
def test_gw_ingest_broker_restart_reconnects(own_broker, mqtt_root, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "b.db")
    gw = Gateway(own_broker.url, url, mqtt_root, "gwb").start()
    fleet = Fleet(own_broker, mqtt_root, SITE, 2)
    try:
        fleet.send_all(100)
        assert fleet.wait_acked(100, timeout=20), (fleet.acked, gw.output())
        own_broker.restart(down_seconds=0.5)
        deadline = time.monotonic() + 20
        while gw.output().count("connected to the broker") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.output().count("connected to the broker") == 2, gw.output()
        assert fleet.subscribed.wait(10)
        fleet.send(fleet.devices[0], range(101, 201))
        fleet.send(fleet.devices[1], range(101, 201))
        # panels resend what is not acked (the firmware rule), e.g. if the broker was down
        assert fleet.wait_acked(200, timeout=30, resend_after=3), fleet.acked
        assert gw.terminate() == 0
    finally:
        fleet.close()
        gw.kill()
    assert_stored(url, fleet, 200)


@pytest.mark.e2e
def test_gw_ingest_embedded_broker(mqtt_root, tmp_path):
    port = free_port()
    url = "sqlite:///%s" % (tmp_path / "e.db")
    # the embedded broker admits only the database's accounts: one panel with its password
    db = schema.open_database(url)
    login = (accounts.panel_username(SITE, "p0"), accounts.issue_for_usb(db, SITE, "p0", 0)[0])
    db.close()
    gw = Gateway(None, url, mqtt_root, "gwe", extra=["--port", str(port)]).start()
    fleet = Fleet(types.SimpleNamespace(host="127.0.0.1", port=port), mqtt_root, SITE, 1, login=login)
    try:
        fleet.send_all(50)
        assert fleet.wait_acked(50, timeout=20), fleet.acked
        assert gw.terminate() == 0, gw.output()
    finally:
        fleet.close()
        gw.kill()
    assert_stored(url, fleet, 50)


@pytest.mark.e2e
def test_gw_ingest_live_postgres(broker, mqtt_root, pg_url):
    gw = Gateway(broker.url, pg_url, mqtt_root, "gwp-" + mqtt_root.replace("/", "-")).start()
    fleet = Fleet(broker, mqtt_root, SITE, 2)
    try:
        fleet.send_all(200)
        fleet.send(fleet.devices[0], range(1, 50))  # duplicates
        assert fleet.wait_acked(200, timeout=30), fleet.acked
        assert gw.terminate() == 0, gw.output()
    finally:
        fleet.close()
        gw.kill()
    assert_stored(pg_url, fleet, 200)


@pytest.mark.e2e
def test_gw_ingest_cli_status_and_deadletters(tmp_path):
    rec = tmp_path / "r.jsonl"
    lines = [
        {"topic": "rating/v1/s1/p1/event", "payload": json.loads(event_body(s)), "received_ms": 1717000000000 + s}
        for s in (1, 2, 4)
    ]
    lines.append({"topic": "rating/v1/s1/p1/event", "payload": "not json \udcff", "received_ms": 1717000000009})
    rec.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    url = "sqlite:///%s" % (tmp_path / "s.db")
    run = lambda *a: subprocess.run([RATING, *a], cwd=REPO, capture_output=True, text=True, timeout=30)
    out = run("replay", str(rec), "--db", url)
    assert out.returncode == 0 and "3 events stored" in out.stdout, out.stderr
    out = run("status", "--db", url, "--format", "json")
    report = json.loads(out.stdout)
    (panel,) = report["panels"]
    # seq 3 has been missing for far longer than the grace period (those times are in 2024)
    assert (panel["lost"], panel["lost_ranges"], panel["acked_seq"]) == (1, "3", 2)
    assert report["dead_letters"] == 1
    out = run("status", "--db", url)
    assert "s1/p1" in out.stdout and "1 (3)" in out.stdout
    out = run("deadletter", "list", "--db", url, "--format", "json")
    (dl,) = json.loads(out.stdout)["dead_letters"]
    assert dl["payload_hex"] == b"not json \xff".hex() and "payload" in dl["reason"]
    out = run("deadletter", "list", "--db", url, "--since", "1h")
    assert "no dead letters since" in out.stdout  # they arrived (received_ms) in 2024
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"topic": "x"}\n')
    out = run("replay", str(bad), "--db", url)
    assert out.returncode == 2 and "bad.jsonl:1" in out.stderr


@pytest.mark.e2e
def test_gw_ingest_service_pushes_configs_retained_once(broker, mqtt_root, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "c.db")
    site_file = os.path.join(REPO, "docs", "examples", "two-offices.toml")
    out = subprocess.run(
        [RATING, "site", "apply", site_file, "--db", url], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    conf = tmp_path / "gw.toml"
    conf.write_text("config_push_s = 0.2\n")
    live = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda c_, u, m: live.append(m.topic)
    watcher.connect(broker.host, broker.port)
    watcher.loop_start()
    watcher.subscribe(mqtt_root + "/+/+/config", 1)
    time.sleep(0.3)
    gw = Gateway(broker.url, url, mqtt_root, "gwc", extra=["--config", str(conf)]).start()
    try:
        time.sleep(1.5)
        assert gw.terminate() == 0, gw.output()
    finally:
        gw.kill()
        watcher.disconnect()
        watcher.loop_stop()
    got = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda c_, u, m: got.__setitem__(m.topic, (m.retain, messages.decode_config(m.payload)))
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.subscribe(mqtt_root + "/+/+/config", 1)
    time.sleep(0.7)
    c.disconnect()
    c.loop_stop()
    assert len(got) >= 3, got  # every panel of the example file
    assert all(retain and cfg["ver"] == 1 and cfg["question"] for retain, cfg in got.values())
    db = schema.open_database(url)
    pushed = db.query("SELECT site, device, ver FROM config_pushes ORDER BY site, device")
    db.close()
    assert {"%s/%s/%s/config" % (mqtt_root, r["site"], r["device"]) for r in pushed} == set(got)
    assert all(r["ver"] == 1 for r in pushed)
    assert sorted(live) == sorted(got)  # pushed once each, confirmed, not again every 0.2 s


@pytest.mark.e2e
def test_live_malformed_event_does_not_stall_and_resends_are_counted(broker, mqtt_root, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "live.db")
    gw = Gateway(broker.url, url, mqtt_root, "gw-" + mqtt_root.replace("/", "-")).start()
    fleet = Fleet(broker, mqtt_root, "s1", 1)
    topic = ev_topic("p0", root=mqtt_root)
    try:
        fleet.publish(st_topic("p0", root=mqtt_root), state_body(5))  # it journaled 1..5
        fleet.send("p0", [1, 2])
        fleet.publish(topic, bad_event(3))
        fleet.send("p0", [4, 5])
        assert fleet.wait_acked(5, timeout=15), fleet.acked
        resent_at = int(time.time() * 1000)
        fleet.publish(topic, bad_event(3))  # a resend of the whole unacked tail
        fleet.send("p0", [4, 5])
        assert fleet.drain()
        time.sleep(1.0)
    finally:
        fleet.close()
        assert gw.terminate() == 0, gw.output()
    d = schema.open_database(url)
    (dl,) = store.dead_letters(d)
    assert (dl["seen"], dl["seq"]) == (2, 3)
    assert store.panel_state(d, "s1", "p0")["last_seen_ms"] >= resent_at
    d.close()
