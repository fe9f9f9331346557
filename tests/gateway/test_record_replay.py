"""`rating record` / `rating replay`: bodies kept byte-exact (odd JSON, non-UTF-8, surrogates),
bad lines are one-line errors naming the line."""

import json
import subprocess

import paho.mqtt.client as mqtt
import pytest
from gw_ingest_support import RATING, REPO

from gateway import cli_gateway, schema


@pytest.mark.e2e
def test_record_then_replay_keeps_odd_bodies_exactly(broker, mqtt_root, tmp_path):
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


def test_replay_line_with_surrogate_in_json_value(tmp_path):
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


def test_replay_huge_received_ms_is_a_line_error(tmp_path):
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


def test_record_keeps_bodies_byte_exact():
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
