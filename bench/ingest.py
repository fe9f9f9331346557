"""Ingest benchmark: the gateway's sustained stored-events/s next to a bare paho subscriber.

    .venv/bin/python bench/ingest.py [--events 200000] [--panels 200] [--broker mqtt://HOST:PORT]

Both consumers are measured the same way, one after the other, in one run: the consumer's
persistent session is created, the consumer goes away, all events are published (QoS 1,
bounded in flight: MQTT-FACTS pitfalls 2-3) and queued by the broker, then the consumer comes
back and drains the backlog. Draining a backlog measures what the consumer sustains, not what the
publisher manages to send. The bare subscriber only counts messages (paho, QoS 1, auto-ack);
the gateway (`rating gateway run`, SQLite in a temp folder) validates, stores in transactions,
publishes acks and PUBACKs after commit. Its rate is taken from the stored row count.

Without --broker a private Mosquitto with gateway/mosquitto.conf's queue limits is started on
a free loopback port (falls back to the embedded amqtt broker if mosquitto is not installed;
then the figures say more about amqtt than about the gateway).
"""

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from protocol import messages  # noqa: E402
from simulator.services import free_port, mosquitto_binary, wait_port  # noqa: E402

RATING = os.path.join(REPO, ".venv", "bin", "rating")
ROOT = "bench/v1"
SITE = "bench"
T0 = 1717000000000


def start_broker(tmp):
    port = free_port()
    binary = mosquitto_binary()
    if binary:
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n"
                "max_queued_bytes 0\nmax_inflight_messages 100\nlog_dest stdout\nlog_type error\n" % port
            )
        proc = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kind = "mosquitto"
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.broker", "--port", str(port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kind = "embedded amqtt"
    if not wait_port(port, 10):
        raise SystemExit("broker did not start")
    return proc, "127.0.0.1", port, kind


def publish_all(host, port, n_events, n_panels):
    """Publish n_events spread round-robin over n_panels, QoS 1, at most 2000 unconfirmed."""
    done = threading.Semaphore(0)
    pending = [0]
    lock = threading.Lock()
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.max_inflight_messages_set(50)

    def on_publish(client, userdata, mid, rc, props):
        with lock:
            pending[0] -= 1
        done.release()

    c.on_publish = on_publish
    c.connect(host, port)
    c.loop_start()
    topics = ["%s/%s/p%d/event" % (ROOT, SITE, i) for i in range(n_panels)]
    seq = [0] * n_panels
    t = time.monotonic()
    for i in range(n_events):
        p = i % n_panels
        seq[p] += 1
        s = seq[p]
        body = messages.encode_event(s, 1, s * 1000, T0 + p * 10 + s * 1000, "yes" if s % 2 else "seller_short")
        while True:
            with lock:
                if pending[0] < 2000:
                    pending[0] += 1
                    break
            done.acquire(timeout=1)
        c.publish(topics[p], body, qos=1)
    while True:
        with lock:
            if pending[0] == 0:
                break
        done.acquire(timeout=1)
    elapsed = time.monotonic() - t
    c.disconnect()
    c.loop_stop()
    return elapsed


def bare_subscriber(host, port, n_events, n_panels, run=0):
    """Backlog drain rate of a paho subscriber that only counts (QoS 1, persistent session)."""
    cid = "bench-bare-%d-%d" % (os.getpid(), run)
    state = {"n": 0, "first": None, "last": None}
    all_in = threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        now = time.monotonic()
        if state["first"] is None:
            state["first"] = now
        state["n"] += 1
        state["last"] = now
        if state["n"] >= n_events:
            all_in.set()

    def make():
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
        c.on_message = on_message
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_connect = lambda c_, u, f, rc, p: None if c_.subscribe(ROOT + "/+/+/event", 1) else None
        c.connect(host, port)
        c.loop_start()
        return c

    c = make()
    subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    pub_s = publish_all(host, port, n_events, n_panels)
    t = time.monotonic()
    c = make()
    all_in.wait(600)
    c.disconnect()
    c.loop_stop()
    n = state["n"]
    rate = (n - 1) / (state["last"] - state["first"]) if n > 1 else 0
    return {"received": n, "rate": rate, "total_s": time.monotonic() - t, "publish_s": pub_s}


def gateway(host, port, n_events, n_panels, tmp, extra, run=0):
    os.makedirs(tmp, exist_ok=True)
    db_path = os.path.join(tmp, "bench.db")
    conf = os.path.join(tmp, "gw.toml")
    with open(conf, "w") as f:
        # a broker backlog is not a panel's send window: every event counts against its panel's
        # rate budget (the check is paid all the same); a panel's burst covers the whole backlog
        f.write("panel_burst = %d\n" % (n_events // n_panels + 1000))
    args = [
        RATING,
        "gateway",
        "run",
        "--broker",
        "mqtt://%s:%d" % (host, port),
        "--db",
        db_path,
        "--root",
        ROOT,
        "--client-id",
        "bench-gw-%d-%d" % (os.getpid(), run),
        "--config",
        conf,
    ] + extra

    def start():
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = proc.stdout
        assert out is not None
        for line in out:
            if "connected to the broker" in line:
                threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
                return proc
        raise SystemExit("gateway did not connect")

    proc = start()  # creates the persistent session and the schema
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    pub_s = publish_all(host, port, n_events, n_panels)
    conn = sqlite3.connect(db_path)
    proc = start()
    t = time.monotonic()
    first = None
    samples = []
    while True:
        n = conn.execute("SELECT COUNT(*) FROM raw_events").fetchone()[0]
        now = time.monotonic()
        if n and first is None:
            first = (now, n)
        samples.append((now, n))
        if n >= n_events or now - t > 600:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    conn.close()
    last_t, last_n = samples[-1]
    first_t, first_n = first or (last_t, last_n)
    rate = (last_n - first_n) / (last_t - first_t) if last_t > first_t else 0
    return {"stored": last_n, "rate": rate, "total_s": last_t - t, "publish_s": pub_s}


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--panels", type=int, default=200)
    ap.add_argument(
        "--broker", help="mqtt://HOST:PORT of a broker with raised queue limits (default: start a private Mosquitto)"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternate bare/gateway this many times and report the median ratio (the machine's load drifts)",
    )
    ap.add_argument("--gateway-arg", action="append", default=[], help="extra `rating gateway run` argument")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="rating-bench-")
    broker_proc = None
    try:
        if args.broker:
            from gateway.service import broker_address

            host, port, _, _ = broker_address(args.broker)
            kind = "given"
        else:
            broker_proc, host, port, kind = start_broker(tmp)
        print("broker: %s on %s:%d; %d events from %d panels" % (kind, host, port, args.events, args.panels))
        ratios, ok = [], True
        for r in range(args.repeat):
            bare = bare_subscriber(host, port, args.events, args.panels, r)
            print(
                "run %d: bare paho subscriber: %d received, %.0f msgs/s (publish took %.1f s)"
                % (r + 1, bare["received"], bare["rate"], bare["publish_s"]),
                flush=True,
            )
            gw = gateway(host, port, args.events, args.panels, os.path.join(tmp, str(r)), args.gateway_arg, r)
            print(
                "run %d: gateway (SQLite):     %d stored,   %.0f events/s (publish took %.1f s)"
                % (r + 1, gw["stored"], gw["rate"], gw["publish_s"]),
                flush=True,
            )
            ratios.append(gw["rate"] / bare["rate"] if bare["rate"] else 0)
            print("run %d: ratio gateway / bare subscriber: %.2f" % (r + 1, ratios[-1]), flush=True)
            ok = ok and gw["stored"] == args.events and bare["received"] >= args.events
        print("median ratio over %d run(s): %.2f (target >= 0.5)" % (len(ratios), statistics.median(ratios)))
        if not ok:
            print("INCOMPLETE: not every event arrived")
        return 0 if ok else 1
    finally:
        if broker_proc:
            broker_proc.terminate()
            broker_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
