"""Defects found in review of the ingest path: bad input that crashed `rating record`,
`rating replay` or the Ingestor instead of becoming a dead letter."""

import json
import subprocess
import time

import paho.mqtt.client as mqtt
from gw_ingest_support import RATING, REPO

from gateway import cli_gateway, ingest, schema


def test_gw_ingest_review_record_then_replay_keeps_odd_bodies_exactly(broker, mqtt_root, tmp_path):
    """A non-UTF-8 body and a JSON body with a lone surrogate escape must be recorded (README:
    kept exactly as \\udcXX escapes) and replay to dead letters with the original bytes."""
    rec_file = tmp_path / "rec.jsonl"
    bodies = [b"not json \xff\xfe", b'{"v":1,"seq":1,"boot":1,"up":1,"t":null,"ev":"\\ud800"}']
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
            str(len(bodies)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "recording" in recorder.stdout.readline()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.connect(broker.host, broker.port)
        c.loop_start()
        for body in bodies:
            c.publish("%s/s1/p1/event" % mqtt_root, body, qos=1).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()
        assert recorder.wait(20) == 0, recorder.stderr.read()
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    url = "sqlite:///%s" % (tmp_path / "r.db")
    out = subprocess.run(
        [RATING, "replay", str(rec_file), "--db", url, "--root", mqtt_root],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    db = schema.open_database(url)
    try:
        got = sorted(bytes(r["payload"]) for r in db.query("SELECT payload FROM dead_letters"))
    finally:
        db.close()
    assert len(got) == 2
    assert got[0] == bodies[0]  # non-UTF-8: byte-exact
    assert json.loads(got[1]) == json.loads(bodies[1])  # a JSON value: the same value


def test_gw_ingest_review_replay_line_with_surrogate_in_json_value(tmp_path):
    """A replay file whose payload JSON value holds a lone surrogate must not crash replay."""
    f = tmp_path / "in.jsonl"
    f.write_text(
        json.dumps(
            {
                "topic": "rating/v1/s1/p1/event",
                "received_ms": 1717000000000,
                "payload": {"v": 1, "seq": 1, "boot": 1, "up": 1, "t": None, "ev": "\ud800"},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    lines = cli_gateway.read_replay(str(f))
    db = schema.open_database("sqlite:///%s" % (tmp_path / "r.db"))
    try:
        stats = cli_gateway.replay(db, lines, "rating/v1", 1717000000000)
        assert stats["dead_letters"] == 1 and stats["events"] == 0
    finally:
        db.close()


def test_gw_ingest_review_topic_with_surrogates_becomes_a_dead_letter(tmp_path):
    """Ingestor.handle never raises for bad input and flush() must not fail forever on it: a
    topic holding lone surrogates (a replay file line with \\udcXX in the topic) is a dead letter,
    and the good message of the same batch is stored and acked."""
    db = schema.open_database("sqlite:///%s" % (tmp_path / "t.db"))
    try:
        ing = ingest.Ingestor(db)
        ing.handle("rating/v1/s1/\udcff/event", b"{}", 1717000000000)
        ing.handle("rating/v1/s1/p1/event", b'{"v":1,"seq":1,"boot":1,"up":1,"t":null,"ev":"yes"}', 1717000000001)
        acks = ing.flush()
        assert [t for t, *_ in acks] == ["rating/v1/s1/p1/ack"]
        assert db.scalar("SELECT COUNT(*) FROM raw_events") == 1
        rows = db.query("SELECT topic FROM dead_letters")
        assert len(rows) == 1 and rows[0]["topic"].startswith("rating/v1/s1/")
        assert len(ing) == 0
    finally:
        db.close()


def test_gw_ingest_review_counts_csv_huge_numbers_are_line_errors(tmp_path):
    """A count or an epoch too large for a BIGINT must be a line-numbered error, not a crash
    (SQLite OverflowError / PostgreSQL out of range) halfway through the import."""
    from gateway import counts

    text = (
        "site,from,to,transactions\n"
        "s1,1717000000000,1717000060000,99999999999999999999\n"
        "s1,1717000000000,99999999999999999999,1\n"
    )
    try:
        counts.parse(text, "c.csv")
    except counts.CountsError as exc:
        assert "line 2: transactions" in str(exc) and "line 3: to" in str(exc), str(exc)
    else:
        raise AssertionError("huge numbers were accepted")


def test_gw_ingest_review_failed_commit_leaves_no_open_transaction(tmp_path):
    """A COMMIT that fails (here: a deferred foreign key; in the field: disk full, I/O error)
    must not leave SQLite inside the transaction: the batch's writes would linger, ride along
    with the next batch's commit, and every later BEGIN would fail - ingest stuck for good."""
    import pytest

    db = schema.open_database("sqlite:///%s" % (tmp_path / "c.db"))
    try:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER"
            " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
        with pytest.raises(Exception):
            with db.transaction():
                db.execute("INSERT INTO child (id, p) VALUES (1, 42)")
        assert not db.conn.in_transaction
        with db.transaction():  # the retry works
            db.execute("INSERT INTO parent (id) VALUES (42)")
            db.execute("INSERT INTO child (id, p) VALUES (1, 42)")
        assert db.scalar("SELECT COUNT(*) FROM child") == 1
    finally:
        db.close()


def test_gw_ingest_review_message_taken_while_publish_waits_before_first_batch(broker, mqtt_root, tmp_path):
    """_publish, waiting for room under max_unconfirmed, dispatches arriving messages into the
    Ingestor. If that happens before the main loop's first batch (e.g. re-publishing many acks
    on connect), the loop's batch age was computed from None: TypeError, the gateway died."""
    import threading

    from gateway import service
    from protocol import messages

    settings = service.load_settings(
        None,
        broker=broker.url,
        db="sqlite:///%s" % (tmp_path / "s.db"),
        root=mqtt_root,
        client_id="gw-rv-" + mqtt_root.replace("/", "-"),
        max_unconfirmed=1,
    )
    svc = service.GatewayService(settings).start()
    errors = []
    try:
        body = b'{"v":1,"seq":1,"boot":1,"up":1,"t":null,"ev":"yes"}'
        svc._unconfirmed[-1] = ("x", b"", "ack")  # one publish the broker has not confirmed yet
        svc.q.put(("msg", "%s/s1/p1/event" % mqtt_root, body, 1717000000000, 0, 1, 0))
        svc.q.put(("puback", -1))
        svc._publish("%s/s1/p9/ack" % mqtt_root, messages.encode_ack(0), "ack")
        assert len(svc.ingestor) == 1

        def serve():
            try:
                svc.run()
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)
                svc.close()

        t = threading.Thread(target=serve)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not errors and svc.ingestor.stats["events"] < 1:
            time.sleep(0.02)
        svc.stop()
        t.join(15)
        assert not t.is_alive()
    finally:
        if svc.client:
            svc.close()
    assert not errors, errors
    assert svc.ingestor.stats["events"] == 1


def test_gw_ingest_review_replay_huge_received_ms_is_a_line_error(tmp_path):
    """received_ms too large for the store (or any date) is refused naming the line, instead of
    an OverflowError traceback from the database halfway through the replay."""
    import pytest

    from gateway.cli_common import CliError

    f = tmp_path / "in.jsonl"
    f.write_text(
        '{"topic":"rating/v1/s1/p1/event","payload":"x","received_ms":1717000000000}\n'
        '{"topic":"rating/v1/s1/p1/event","payload":"x","received_ms":10000000000000000000}\n',
        encoding="utf-8",
    )
    with pytest.raises(CliError, match=":2: received_ms"):
        cli_gateway.read_replay(str(f))


def test_gw_ingest_review_record_keeps_bodies_byte_exact():
    """Replay must feed the Ingestor the bytes the live gateway saw (raw_events.payload and
    dead letters keep raw bytes): a JSON body the compact re-encoding would change (spaces,
    1.0e0, duplicate keys, a newline) is recorded as the raw string."""
    for body in (
        b'{"v":1,"seq":1,"boot":1,"up":1,"t":null,"ev":"yes"}',
        b'{"v": 1, "seq": 1}',
        b'{"v":1,"seq":1.0e0}',
        b'{"v":1,"seq":1,"seq":2}',
        b'{"v":1}\n',
        b"[1, 2]",
        '{"q":"Доволен?"}'.encode(),
        b'"just a string"',
        b"\xff\x00",
    ):
        assert cli_gateway.record_to_body(json.loads(json.dumps(cli_gateway.body_to_record(body)))) == body
    # what the panels send (compact JSON) stays readable as a JSON value in the file
    assert isinstance(cli_gateway.body_to_record(b'{"v":1,"seq":1}'), dict)
