"""Chain load: N panels (MQTT clients speaking the panel protocol) through our own Mosquitto (a
login per panel) into `rating gateway run` for a compressed stretch of days (simulator/loadgen.py).

    .venv/bin/python bench/load.py [--panels 10000] [--days 7] [--events-per-day 20]

Reports the ingest rate (distinct events acked per second, first event sent -> last ack in),
connect time, resends, and that every event was stored exactly once. Reference, measured in the
same run on the same broker right after the load (the gateway stopped): one paho client
publishing the same number of event-sized messages at QoS 0 with nobody subscribed, i.e. what
the broker and one Python publisher manage without the gateway or acks in the loop.
"""

import argparse
import os
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gateway import accounts, schema  # noqa: E402
from protocol import messages, topics  # noqa: E402
from simulator import loadgen, services  # noqa: E402

ROOT = "rating/v1"


def raw_publish_rate(host, port, logins, site, device, n):
    """Messages/s of one paho client publishing n event payloads at QoS 0 on a panel's topic."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    user = accounts.panel_username(site, device)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-%d" % os.getpid())
    c.username_pw_set(user, logins.passwords[user])
    up = threading.Event()
    c.on_connect = lambda *_a: up.set()
    c.connect(host, port, 60)
    c.loop_start()
    if not up.wait(30):
        raise SystemExit("the reference client did not connect")
    topic = topics.device_topic(ROOT, site, device, "event")
    body = messages.encode_event(999999, 1, 3600000, 1740960000000, "seller_short")
    t0 = time.monotonic()
    info = None
    for _ in range(n):
        info = c.publish(topic, body, 0)
    if info is not None:
        info.wait_for_publish(120)
    elapsed = time.monotonic() - t0
    c.loop_stop()
    c.disconnect()
    return n / elapsed


def main():
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--panels", type=int, default=10000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--events-per-day", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=3000.0)
    a = ap.parse_args()
    plan = loadgen.Plan(a.panels, a.days, a.events_per_day, seed=1)
    tmp = tempfile.mkdtemp(prefix="rating-bench-load-")
    db_url = "sqlite:///" + os.path.join(tmp, "load.db")
    loadgen.raise_file_limit(plan.panels + 1024)
    logins = accounts.demo_logins(ROOT, plan.keys())
    broker = services.Broker("mosquitto", logins=logins).start()
    gw = services.Gateway(
        "mqtt://gateway@%s:%d" % (broker.host, broker.port),
        db_url,
        ROOT,
        tmp,
        client_id="bench-load-gw",
        password_file=broker.secret_file("gateway"),
    )
    total = plan.panels * plan.n_events()
    print(
        "%d cores; %s broker; %d panels x %d days x %d events/day = %d events; load average %.1f"
        % (os.cpu_count() or 1, broker.kind, plan.panels, plan.days, a.events_per_day, total, os.getloadavg()[0]),
        flush=True,
    )
    gen = loadgen.LoadGen(plan, broker.host, broker.port, ROOT, logins=logins, log=lambda line: print(line, flush=True))
    try:
        gw.start()
        gw.wait_connected()
        gen.connect_all()
        res = gen.run(a.timeout)
        gw.stop()
        db = schema.open_database(db_url)
        try:
            problems = loadgen.verify(plan, db)
        finally:
            db.close()
        print(
            "load: %d panels connected in %.1f s; %d of %d events acked in %.1f s = %.0f events/s; "
            "%d published, %d resent after %d ack timeouts, %d reconnects"
            % (
                plan.panels,
                res.connect_s,
                res.events,
                total,
                res.load_s,
                res.rate(),
                res.published,
                res.resends,
                res.ack_timeouts,
                res.reconnects,
            ),
            flush=True,
        )
        gen.close()  # the panels gone, the gateway stopped: nobody reads the reference's messages
        site, device = plan.keys()[0]
        ref = raw_publish_rate(broker.host, broker.port, logins, site, device, min(total, 200000))
    finally:
        gen.close()
        gw.stop()
        broker.close()
    print("reference: raw paho publish (QoS 0, one client, no subscriber) to the same broker: %.0f msgs/s" % ref)
    print("ratio ingest / raw publish: %.2f" % (res.rate() / ref))
    if problems or res.unacked:
        print("CHECK FAILED: %d unacked; %s" % (res.unacked, "; ".join(problems[:20])))
        return 1
    print("check: every event stored exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
