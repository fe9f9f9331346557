"""Several gateways benchmark: stored events/s with 1, 2 and 3 `rating gateway run --share`
processes on one PostgreSQL against one Mosquitto, next to a bare paho subscriber (the reference,
measured in the same run the same way).

    .venv/bin/python bench/shared.py [--events 60000] [--panels 200] [--gateways 1,2,3]

Method (as bench/ingest.py): each consumer's persistent session is created first, the consumer
goes away, all events are published (QoS 1, bounded in flight) and queued by the broker - with
shared subscriptions the broker deals them round-robin to the group's sessions -, then the
consumers come back and drain the backlog. The gateways' rate is taken from the stored row count
(first row to last), so it is what they sustain together, acks and PUBACKs after commit included.
Every run checks that each event is stored exactly once.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ingest as bench_ingest  # noqa: E402
from support import Gateway, pg_database, start_broker  # noqa: E402

ROOT, SITE = bench_ingest.ROOT, bench_ingest.SITE


def gateways(host, port, n_events, n_panels, n_gateways, group):
    """Drain rate of `n_gateways` sharing the subscriptions on a fresh PostgreSQL database."""
    from gateway import db as dbmod
    from gateway import schema

    url, drop, why = pg_database()
    if url is None:
        raise SystemExit("needs PostgreSQL (%s)" % why)
    assert drop is not None
    schema.open_database(url).close()
    # a broker backlog is not a panel's send window: the burst covers it (as bench/ingest.py)
    settings = "panel_burst = %d\n" % (n_events // n_panels + 1000)
    gws = [Gateway(host, port, url, ROOT, ["--share", group], settings) for _ in range(n_gateways)]
    try:
        for g in gws:  # the sessions and their shared subscriptions
            g.start()
        for g in gws:
            g.stop()
        pub_s = bench_ingest.publish_all(host, port, n_events, n_panels)
        db = dbmod.connect(url)
        for g in gws:
            g.start()
        t = time.monotonic()
        first, last = None, None
        while True:
            n = db.scalar("SELECT COUNT(*) FROM raw_events") or 0
            now = time.monotonic()
            if n and first is None:
                first = (now, n)
            last = (now, n)
            if n >= n_events or now - t > 600:
                break
            time.sleep(0.05)
        twice = db.scalar(
            "SELECT COUNT(*) FROM (SELECT site, device, seq FROM raw_events GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) x"
        )
        acked = db.scalar("SELECT SUM(acked_seq) FROM acks") or 0
        db.close()
        for g in gws:
            g.stop()
        first = first or last
        rate = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else 0
        return {"stored": last[1], "twice": twice, "acked": int(acked), "rate": rate, "publish_s": pub_s}
    finally:
        for g in gws:
            g.stop()
            shutil.rmtree(g.tmp, ignore_errors=True)
        drop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--events", type=int, default=60000)
    ap.add_argument("--panels", type=int, default=200)
    ap.add_argument("--gateways", default="1,2,3", help="how many gateways in each measurement (default 1,2,3)")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.gateways.split(",")]
    tmp = tempfile.mkdtemp(prefix="rating-bench-shared-")
    broker_proc = None
    ok = True
    try:
        broker_proc, host, port, kind = start_broker(tmp)
        if kind != "mosquitto":
            raise SystemExit("needs Mosquitto (shared subscriptions, MQTT v5)")
        print(
            "broker: %s on %s:%d; %d events from %d panels; %d cores"
            % (kind, host, port, args.events, args.panels, os.cpu_count() or 0)
        )
        bare = bench_ingest.bare_subscriber(host, port, args.events, args.panels)
        print(
            "reference: bare paho subscriber: %d received, %.0f msgs/s" % (bare["received"], bare["rate"]), flush=True
        )
        for i, n in enumerate(counts):
            r = gateways(host, port, args.events, args.panels, n, "bench%d" % i)
            good = r["stored"] == args.events and r["twice"] == 0 and r["acked"] == args.events
            ok = ok and good
            print(
                "%d gateway(s), PostgreSQL: %d stored, %d twice, acks cover %d; %.0f events/s (%.2f of the bare"
                " subscriber)%s"
                % (
                    n,
                    r["stored"],
                    r["twice"],
                    r["acked"],
                    r["rate"],
                    r["rate"] / bare["rate"] if bare["rate"] else 0,
                    "" if good else "  INCOMPLETE",
                ),
                flush=True,
            )
        return 0 if ok else 1
    finally:
        if broker_proc:
            broker_proc.terminate()
            broker_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
