"""Fault runs: panels pressing and resending like the firmware, through a real broker into the
real gateway process, while a fault strikes - the gateway SIGKILLed, the broker restarted, a
stock Mosquitto (queue limit 1000, no persistence) while the gateway is stopped, the disk full,
INSERT revoked. Whatever happens, every press is stored exactly once with its content, no
dead letter is made of a fault, no ack covers what is not stored. Each run prints its figures
(events pressed, stored, duplicates, worst ack delay); the short version runs in `make test`,
the long one in `make soak` (figures: bench/README.md, "Fault runs")."""

import os
import time

import pytest
from gw_fault_support import (
    Panels,
    StockBroker,
    figures,
    fill_sqlite,
    pg_admin,
    pg_drop_tablespace,
    pg_fill,
    pg_gateway_role,
    pg_reachable_dir,
    pg_small_tablespace,
    press_and_wait,
    small_disk,
)
from gw_ingest_support import Gateway

from gateway import schema

SHORT = {"panels": 10, "seconds": 4.0, "rate": 5.0, "repeat": 1}
LONG = {"panels": 40, "seconds": 60.0, "rate": 5.0, "repeat": 5}
RUNS = [pytest.param(SHORT, id="short"), pytest.param(LONG, id="long", marks=pytest.mark.slow)]


def _check(result):
    assert result["lost"] == 0 and result["stored"] == result["pressed"], result
    assert result["duplicates"] == 0 and result["wrong"] == 0, result
    assert result["dead_letters"] == 0 and result["refused_acks"] == 0, result


def _run(name, broker, db_url, root, run, fault, gateway=None):
    gw = gateway or Gateway(broker.url, db_url, root, "gwf-" + root.replace("/", "-")).start()
    panels = Panels(broker, root, run["panels"])
    state = {"gw": gw}
    try:
        press_and_wait(panels, run["seconds"], run["rate"], fault=lambda: fault(state), fault_at=0.2)
        result = figures(name, panels, db_url)
    finally:
        panels.close()
        state["gw"].kill()
    _check(result)
    return result


def _spaced(run, action):
    """`action` run["repeat"] times, spread over the pressing."""
    gap = run["seconds"] * 0.6 / run["repeat"]
    for _ in range(run["repeat"]):
        action()
        time.sleep(gap)


@pytest.mark.parametrize("run", RUNS)
def test_gateway_sigkill_loses_no_press(broker, mqtt_root, tmp_path, run):
    url = "sqlite:///%s" % (tmp_path / "k.db")

    def fault(state):
        def kill_and_start():
            state["gw"].kill()
            state["gw"] = state["gw"].start()

        _spaced(run, kill_and_start)

    _run("gateway SIGKILL x%d" % run["repeat"], broker, url, mqtt_root, run, fault)


@pytest.mark.parametrize("run", RUNS)
def test_broker_restart_loses_no_press(own_broker, mqtt_root, tmp_path, run):
    url = "sqlite:///%s" % (tmp_path / "b.db")
    _run(
        "broker restart x%d" % run["repeat"],
        own_broker,
        url,
        mqtt_root,
        run,
        lambda state: _spaced(run, lambda: own_broker.restart(down_seconds=0.5)),
    )


@pytest.mark.parametrize("run", RUNS)
def test_stock_broker_with_the_gateway_stopped_loses_no_press(mqtt_root, tmp_path, run):
    """Mosquitto's default queue limit (1000) drops what the stopped gateway's session would
    get beyond it: the panels' ack timeouts bring those presses again."""
    broker = StockBroker().start()
    url = "sqlite:///%s" % (tmp_path / "s.db")
    stopped_s = run["seconds"] * 0.5

    def fault(state):
        assert state["gw"].terminate() == 0
        time.sleep(stopped_s)
        state["gw"] = state["gw"].start()

    try:
        # more presses while stopped than the stock queue holds
        heavy = dict(run, rate=max(run["rate"], 1500 / (run["panels"] * stopped_s)))
        _run("stock broker, gateway stopped %.0f s" % stopped_s, broker, url, mqtt_root, heavy, fault)
    finally:
        broker.close()


@pytest.mark.parametrize("run", [pytest.param(LONG, id="long", marks=pytest.mark.slow)])
def test_disk_full_loses_no_press(broker, mqtt_root, tmp_path, run):
    """SQLite on a small disk that fills up while the panels press; the operator then adds
    space. Until then the gateway stores and acks nothing, and makes no dead letter."""
    disk = tmp_path / "disk"
    full_s = run["seconds"] * 0.4
    with small_disk(disk, 8192) as grow:
        url = "sqlite:///%s" % (disk / "rating.db")
        schema.open_database(url).close()

        def fault(state):
            fill_sqlite(disk / "rating.db")
            time.sleep(full_s)
            grow(262144)

        _run("disk full %.0f s (SQLite)" % full_s, broker, url, mqtt_root, run, fault)


@pytest.mark.parametrize("run", RUNS)
def test_postgres_disk_full_loses_no_press(broker, mqtt_root, pg_store_url, run):
    """raw_events on a PostgreSQL tablespace whose disk fills up; dead_letters, on another disk,
    would still take rows: the case where every event used to become an acked dead letter."""
    schema.open_database(pg_store_url).close()
    disk = pg_reachable_dir()
    full_s = run["seconds"] * 0.4
    with small_disk(disk, 4096) as grow, pg_admin(pg_store_url) as admin:
        try:
            space = pg_small_tablespace(admin, disk, ["raw_events"])
        except Exception as exc:  # a server on another machine cannot see our folder
            pytest.skip("cannot put a tablespace on the small disk: %s" % exc)
        try:

            def fault(state):
                pg_fill(admin)
                time.sleep(full_s)
                grow(262144)

            _run("disk full %.0f s (PostgreSQL)" % full_s, broker, pg_store_url, mqtt_root, run, fault)
        finally:
            admin.execute("DELETE FROM raw_events WHERE site = 'fill'")
            pg_drop_tablespace(admin, space, ["raw_events"])
    os.rmdir(disk)


@pytest.mark.parametrize("run", RUNS)
def test_revoked_insert_privilege_loses_no_press(broker, mqtt_root, pg_store_url, run):
    """PostgreSQL: INSERT on raw_events revoked from the gateway's role for a while (it used to
    dead-letter and ack every event: 1,853 of 1,853 lost)."""
    schema.open_database(pg_store_url).close()
    revoked_s = run["seconds"] * 0.4
    with pg_gateway_role(pg_store_url) as (gw_url, role), pg_admin(pg_store_url) as admin:

        def fault(state):
            admin.execute("REVOKE INSERT ON raw_events FROM %s" % role)
            time.sleep(revoked_s)
            admin.execute("GRANT INSERT ON raw_events TO %s" % role)

        gw = Gateway(broker.url, gw_url, mqtt_root, "gwr-" + mqtt_root.replace("/", "-")).start()
        _run("INSERT revoked %.0f s" % revoked_s, broker, pg_store_url, mqtt_root, run, fault, gateway=gw)
