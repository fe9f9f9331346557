"""Several gateways on one PostgreSQL (MQTT v5 shared subscriptions, `rating gateway run --share`):
one panel's events spread over gateways are acked to the end, nothing is lost or stored twice
when one gateway is SIGKILLed, and SQLite refuses the set-up with one line."""

import re
import subprocess
import threading
import time

import pytest
from gw_fault_support import Panels, figures, press_and_wait
from gw_ingest_support import RATING, REPO, Gateway, ev_topic, event_body

from gateway import ingest, schema, service, store
from protocol import messages


def _gateway(db_url):
    """One gateway's ingest core on its own connection, as `--share` runs it."""
    return ingest.Ingestor(schema.open_database(db_url), shared=True)


class _SlowEventWrites:
    """A gateway's database connection whose event INSERT takes a while: the transaction that
    wrote seq 2 is still open when the other gateway commits seq 1 (the race, made certain)."""

    def __init__(self, db):
        self._db = db
        self.wrote = threading.Event()

    def __getattr__(self, name):
        return getattr(self._db, name)

    def executemany(self, sql, rows):
        n = self._db.executemany(sql, rows)
        if sql.startswith("INSERT INTO raw_events"):
            self.wrote.set()
            time.sleep(0.5)
        return n


def test_one_panels_events_spread_over_two_gateways_are_acked_to_the_end(pg_store_url):
    """Seq 2 reaches one gateway and seq 1 the other while the first is still writing: the panel's
    lock makes the second wait and read what the first committed, so its ack covers both. (Each
    on its own, the first acked nothing - 1 was missing - and the second only 1: stuck at 1.)"""
    schema.open_database(pg_store_url).close()
    slow = _SlowEventWrites(schema.open_database(pg_store_url))
    a = ingest.Ingestor(slow, shared=True)
    b = _gateway(pg_store_url)
    a.handle(ev_topic("d1"), event_body(2), 1002)
    b.handle(ev_topic("d1"), event_body(1), 1001)
    got = {}
    writer = threading.Thread(target=lambda: got.setdefault("a", a.flush()))
    writer.start()
    assert slow.wrote.wait(10)
    got["b"] = b.flush()
    writer.join(10)
    acks = [messages.decode_ack(p) or 0 for k in ("a", "b") for _t, p, _r, _q in got[k]]
    assert max(acks) == 2, got
    assert store.last_ack(b.db, "s1", "d1") == 2
    slow.close()
    b.db.close()


def test_a_resent_event_gets_the_ack_another_gateway_committed(pg_store_url):
    """A panel that missed its ack resends; the gateway it reaches now never stored that event
    itself, but answers with the ack the other one committed, not an older one it remembers."""
    schema.open_database(pg_store_url).close()
    a, b = _gateway(pg_store_url), _gateway(pg_store_url)
    a.handle(ev_topic("d1"), event_body(1), 1000)
    assert a.flush()
    for seq in range(2, 6):
        b.handle(ev_topic("d1"), event_body(seq), 1000 + seq)
    b.flush()
    a.handle(ev_topic("d1"), event_body(5), 2000)  # the resend
    acks = a.flush()
    assert [messages.decode_ack(p) for _t, p, _r, _q in acks] == [5]
    assert a.stats["duplicates"] == 1
    a.db.close()
    b.db.close()


@pytest.mark.parametrize(
    ("db", "broker", "problem"),
    [
        ("sqlite:///{tmp}/r.db", "mqtt://127.0.0.1:1", "PostgreSQL"),
        ("postgresql://u@127.0.0.1:1/x", "", "external MQTT v5 broker"),
    ],
)
def test_several_gateways_need_postgresql_and_an_external_broker(tmp_path, db, broker, problem):
    args = [RATING, "gateway", "run", "--share", "g1", "--db", db.format(tmp=tmp_path)]
    if broker:
        args += ["--broker", broker]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: share: "), out.stderr
    assert problem in out.stderr
    assert not (tmp_path / "r.db").exists()


def test_shared_subscriptions_name_the_group():
    s = service.GatewaySettings(broker="mqtt://127.0.0.1:1883", db="postgresql://u@h/x", share="hall-1").check()
    assert service.subscriptions(s) == ["$share/hall-1/" + f for f in service.subscriptions(service.GatewaySettings())]
    with pytest.raises(service.SettingsError, match="share"):
        service.GatewaySettings(broker="mqtt://h:1", db="postgresql://u@h/x", share="a/b").check()


SHORT = {"panels": 10, "seconds": 4.0, "rate": 5.0, "gateways": 2}
LONG = {"panels": 40, "seconds": 60.0, "rate": 5.0, "gateways": 3}


@pytest.mark.parametrize(
    "run", [pytest.param(SHORT, id="short"), pytest.param(LONG, id="long", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("restart", [False, True], ids=["stays-down", "restarted"])
def test_a_gateway_sigkilled_among_several_loses_and_doubles_nothing(
    broker, mqtt_root, pg_store_url, tmp_path, run, restart
):
    """Real Mosquitto, real PostgreSQL, gateways sharing the subscriptions, panels pressing and
    resending like the firmware; one gateway is SIGKILLed mid-run (and restarted with its
    client id, or left down): every press is stored once with its content, all are acked.
    Left down, its session lasts a few seconds here (session_expiry_s): until then Mosquitto
    deals it every other message, and the panels' resends, alternating the same way, could
    keep missing the live gateway for as long as the session lasts."""
    schema.open_database(pg_store_url).close()
    tag = mqtt_root.split("/")[0]
    conf = tmp_path / "gw.toml"
    conf.write_text("session_expiry_s = %d\n" % (60 if restart else 5))
    gws = [
        Gateway(
            broker.url, pg_store_url, mqtt_root, "%s-gw%d" % (tag, i), extra=["--share", tag, "--config", str(conf)]
        )
        for i in range(run["gateways"])
    ]
    for g in gws:
        g.start()
    panels = Panels(broker, mqtt_root, run["panels"])

    def fault():
        gws[0].kill()
        if restart:
            gws[0].start()

    try:
        press_and_wait(panels, run["seconds"], run["rate"], fault=fault, fault_at=0.4, settle_s=90.0)
        result = figures(
            "%d gateways sharing, one SIGKILLed%s" % (run["gateways"], " and restarted" if restart else ""),
            panels,
            pg_store_url,
        )
        stored = []
        for g in gws[1:]:  # the survivors really shared the work: each stored some events
            assert g.terminate() == 0
            m = re.search(r"events stored (\d+)", g.output())
            stored.append(int(m.group(1)) if m else 0)
    finally:
        panels.close()
        for g in gws:
            g.kill()
    assert result["lost"] == 0 and result["stored"] == result["pressed"], result
    assert result["duplicates"] == 0 and result["wrong"] == 0, result
    assert result["dead_letters"] == 0 and result["refused_acks"] == 0, result
    assert all(n > 0 for n in stored), stored


def test_one_gateway_at_a_time_holds_the_duty_of_configs_and_the_retained_check(pg_store_url):
    """The duty lock: held by one connection until it ends (a SIGKILLed gateway's with it), then
    the next gateway that asks takes it over."""
    first, second = schema.open_database(pg_store_url), schema.open_database(pg_store_url)
    assert first.try_session_lock(service.DUTY_LOCK)
    assert first.try_session_lock(service.DUTY_LOCK)  # still its own
    assert not second.try_session_lock(service.DUTY_LOCK)
    first.close()
    deadline = time.monotonic() + 10  # the server ends the closed connection's session at once, or nearly
    while not second.try_session_lock(service.DUTY_LOCK):
        assert time.monotonic() < deadline, "the duty lock was never released"
        time.sleep(0.05)
    second.close()


def _second(broker, db_url, root, *extra):
    args = [RATING, "gateway", "run", "--broker", broker.url, "--db", db_url, "--root", root, "--client-id", "second"]
    return subprocess.run([*args, *extra], cwd=REPO, capture_output=True, text=True, timeout=30)


def test_a_second_gateway_on_one_sqlite_database_is_refused(broker, mqtt_root, tmp_path):
    """Each gateway would get every message and trust its own cache of the panels: SQLite takes
    one gateway (a flock next to the database), and says what to do instead."""
    url = "sqlite:///%s" % (tmp_path / "one.db")
    first = Gateway(broker.url, url, mqtt_root, "first-" + mqtt_root.split("/")[0]).start()
    try:
        out = _second(broker, url, mqtt_root)
        assert out.returncode == 2, out
        assert out.stderr.count("\n") == 1 and "another gateway runs on" in out.stderr and "PostgreSQL" in out.stderr
    finally:
        first.kill()
    # a killed gateway's claim ends with it
    again = Gateway(broker.url, url, mqtt_root, "first-" + mqtt_root.split("/")[0]).start()
    again.kill()


def test_gateways_with_and_without_share_do_not_mix_on_postgresql(broker, mqtt_root, pg_store_url):
    schema.open_database(pg_store_url).close()
    tag = mqtt_root.split("/")[0]
    shared = Gateway(broker.url, pg_store_url, mqtt_root, tag + "-a", extra=["--share", tag]).start()
    try:
        out = _second(broker, pg_store_url, mqtt_root)
        assert out.returncode == 2 and "another gateway with --share runs on this database" in out.stderr, out
    finally:
        shared.kill()
    alone = Gateway(broker.url, pg_store_url, mqtt_root, tag + "-b").start()
    try:
        out = _second(broker, pg_store_url, mqtt_root, "--share", tag)
        assert out.returncode == 2 and "another gateway without --share runs" in out.stderr, out
    finally:
        alone.kill()
