"""Dead letters: every message that cannot be stored gets a row, once per (topic, payload) with
a count; migration 004 merges old duplicates in linear time; odd topics still become letters."""

import hashlib
import json
import subprocess
import time

import pytest
from gw_ingest_support import (
    GARBAGE,
    RATING,
    REPO,
    ROOT,
    T0,
    event_body,
)

from gateway import ingest, schema, store


def test_same_dead_letter_is_stored_once_with_a_count(any_db):
    ing = ingest.Ingestor(any_db, ROOT)
    topic = "%s/s1/p1/event" % ROOT
    ing.handle(topic, GARBAGE, T0)
    ing.handle(topic, GARBAGE, T0 + 5)  # redelivered within the same batch
    ing.handle("%s/s1/p2/event" % ROOT, GARBAGE, T0 + 6)  # same bytes, other panel: another letter
    ing.flush()
    ing.handle(topic, GARBAGE, T0 + 90)  # and again in a later batch
    ing.flush()
    rows = any_db.query("SELECT topic, payload, seen, received_ms, last_seen_ms FROM dead_letters ORDER BY topic")
    assert [(r["topic"], bytes(r["payload"]), r["seen"], r["received_ms"], r["last_seen_ms"]) for r in rows] == [
        (topic, GARBAGE, 3, T0, T0 + 90),
        ("%s/s1/p2/event" % ROOT, GARBAGE, 1, T0 + 6, T0 + 6),
    ]
    # every refused message is still counted (the ingest stats and the count agree)
    assert ing.stats["dead_letters"] == 4 == store.dead_letter_count(any_db)
    assert store.dead_letter_count(any_db, distinct=True) == 2
    (newest, older) = store.dead_letters(any_db)
    assert newest["topic"] == topic and newest["seen"] == 3


@pytest.mark.e2e
def test_replay_twice_stores_the_dead_letter_once(tmp_path):
    rec = tmp_path / "r.jsonl"
    lines = [
        {"topic": "rating/v1/s1/p1/event", "payload": json.loads(event_body(1)), "received_ms": T0},
        {"topic": "rating/v1/s1/p1/event", "payload": "not json", "received_ms": T0 + 1},
    ]
    rec.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    url = "sqlite:///%s" % (tmp_path / "s.db")
    for _ in range(2):
        out = subprocess.run(
            [RATING, "replay", str(rec), "--db", url], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [RATING, "deadletter", "list", "--db", url, "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(out.stdout)
    (dl,) = data["dead_letters"]
    assert dl["seen"] == 2 and dl["payload_text"] == "not json"
    assert data["total"] == 1


def test_existing_dead_letters_migrate_and_merge(db_before_004):
    """A database made before dead letters had a key, holding the same letter twice: migrating
    merges them into one row with the count, and a new arrival of it joins that row."""
    d = db_before_004
    ins = "INSERT INTO dead_letters (topic, payload, reason, received_ms) VALUES (?, ?, ?, ?)"
    d.execute(ins, ("rating/v1/s1/p1/event", GARBAGE, "payload: not JSON", T0))
    d.execute(ins, ("rating/v1/s1/p1/event", GARBAGE, "payload: not JSON", T0 + 50))
    d.execute(ins, ("rating/v1/s1/p1/event", b"\xff other", "payload: not JSON", T0 + 60))
    assert schema.migrate(d) != []
    rows = d.query(
        "SELECT topic, payload, seen, received_ms, last_seen_ms, msg_key FROM dead_letters ORDER BY received_ms"
    )
    assert [(bytes(r["payload"]), r["seen"], r["received_ms"], r["last_seen_ms"]) for r in rows] == [
        (GARBAGE, 2, T0, T0 + 50),
        (b"\xff other", 1, T0 + 60, T0 + 60),
    ]
    want = hashlib.sha256(b"rating/v1/s1/p1/event\x00" + GARBAGE).hexdigest()
    assert rows[0]["msg_key"] == want == store.dead_letter_key("rating/v1/s1/p1/event", GARBAGE)
    ing = ingest.Ingestor(d, ROOT)
    ing.handle("rating/v1/s1/p1/event", GARBAGE, T0 + 100)
    ing.flush()
    assert d.scalar("SELECT COUNT(*) AS n FROM dead_letters") == 2
    assert d.scalar("SELECT seen FROM dead_letters WHERE msg_key = ?", (want,)) == 3


def test_dead_letter_merge_is_not_quadratic(db_before_004):
    """Before 004 a stalled panel's resent garbage was stored once per arrival: tens of
    thousands of copies of a letter. The merge ran a per-row MIN(id) that PostgreSQL answered
    by walking the primary key past every other letter's copies (16 000 rows: ~30 s; grows with
    the square), while the gateway cannot start."""

    d = db_before_004
    k = 8000
    rows = [("rating/v1/s1/p1/event", GARBAGE, "payload: not JSON", T0 + i) for i in range(k)]
    rows += [("rating/v1/s1/p2/event", b"other", "payload: not JSON", T0 + k + i) for i in range(k)]
    with d.transaction():
        d.executemany("INSERT INTO dead_letters (topic, payload, reason, received_ms) VALUES (?, ?, ?, ?)", rows)
    started = time.monotonic()
    assert schema.migrate(d) != []
    took = time.monotonic() - started
    got = d.query("SELECT topic, seen, received_ms, last_seen_ms FROM dead_letters ORDER BY id")
    assert got == [
        {"topic": "rating/v1/s1/p1/event", "seen": k, "received_ms": T0, "last_seen_ms": T0 + k - 1},
        {"topic": "rating/v1/s1/p2/event", "seen": k, "received_ms": T0 + k, "last_seen_ms": T0 + 2 * k - 1},
    ]
    assert took < 5, "migration took %.1f s" % took


def test_topic_with_surrogates_becomes_a_dead_letter(tmp_path):
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
