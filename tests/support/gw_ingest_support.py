"""Helpers for the gateway's ingest tests (tests/gateway/): a gateway subprocess, a panel fleet over
real MQTT, and the small builders of topics, events and acks the ingest tests share."""

import os
import signal
import subprocess
import threading
import time

import paho.mqtt.client as mqtt

from gateway import store
from protocol import messages, topics

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
REPO = os.path.dirname(HERE)
RATING = os.path.join(REPO, ".venv", "bin", "rating")
T0 = 1717000000000  # a wall clock inside protocol's plausible range
ROOT = topics.DEFAULT_ROOT
GRACE = store.LOST_GRACE_MS
GARBAGE = b"\x00\x01 not an event"  # nothing to read a seq from


def ev_topic(device, site="s1", root=ROOT):
    return "%s/%s/%s/event" % (root, site, device)


def acks_of(acks):
    """{device: acked seq} of an Ingestor.flush() result."""
    return {topic.split("/")[-2]: messages.decode_ack(payload) for topic, payload, retain, qos in acks}


def bad_event(seq):
    """A well-formed JSON event whose seq is fine but whose event name this gateway does not know
    (a newer firmware, say): protocol validation fails, the seq can be read."""
    return b'{"v":1,"seq":%d,"boot":1,"up":%d,"t":null,"ev":"maybe"}' % (seq, seq * 1000)


def state_body(seq, pending=None, dropped=0, t=None, up=5000, boot=1, **kw):
    """A panel's state: it has journaled up to `seq` and holds `pending` events (default: all
    of them, so its journal floor is 1)."""
    s = dict(
        online=True,
        boot=boot,
        up=up,
        t=t,
        fw="1.0",
        seq=seq,
        pending=seq if pending is None else pending,
        dropped=dropped,
        heap=50000,
        rssi=-60,
        faults=[],
        cfg=None,
        cfg_err=None,
    )
    s.update(kw)
    return messages.encode_state(s)


def st_topic(device, site="s1", root=ROOT):
    return "%s/%s/%s/state" % (root, site, device)


def event_body(seq, device_no=0, boot=1):
    """Deterministic event content: every 7th has no wall clock (t null)."""
    evs = ("seller_short", "yes", "seller_short", "no", "unsure", "seller_long", "yes")
    ev = evs[(seq + device_no) % len(evs)]
    t = None if seq % 7 == 3 else T0 + device_no * 100000 + seq * 1000
    hold = 1500 if ev == "seller_long" else None
    return messages.encode_event(seq, boot, seq * 1000, t, ev, hold)


class Gateway:
    """`rating gateway run` as a subprocess; start() waits until it is connected."""

    def __init__(self, broker_url, db_url, root, client_id, extra=()):
        self.args = [RATING, "gateway", "run", "--db", db_url, "--root", root, "--client-id", client_id]
        if broker_url:
            self.args += ["--broker", broker_url]
        self.args += list(extra)
        self.proc = None
        self.lines = []

    def start(self, timeout=20):
        self.lines = []
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        connected = threading.Event()

        def reader(proc=self.proc, lines=self.lines):
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if "connected to the broker" in line:
                    connected.set()

        threading.Thread(target=reader, daemon=True).start()
        if not connected.wait(timeout):
            self.kill()
            raise AssertionError("gateway did not connect:\n" + "\n".join(self.lines))
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout=20):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def output(self):
        return "\n".join(self.lines)


class Fleet:
    """Many simulated panels on one MQTT client: publish events (bounded in flight, MQTT-FACTS
    pitfall 2), watch the retained acks, resend what is not acked - like the firmware."""

    MAX_PENDING = 500

    def __init__(self, broker, root, site, n_devices, login=None):
        self.root, self.site = root, site
        self.devices = ["p%d" % i for i in range(n_devices)]
        self.acked = {d: 0 for d in self.devices}
        self.acks_seen = []  # (device, seq) in arrival order
        self.lock = threading.Lock()
        self.pending = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if login:  # (user, password): a broker with accounts lets one login be one panel only
            self.client.username_pw_set(*login)
        self.client.max_inflight_messages_set(50)
        self.client.on_message = self._on_ack
        self.client.on_publish = self._on_publish
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("%s/%s/+/ack" % (root, site), 1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "fleet: no SUBACK from the broker"

    def _on_ack(self, client, userdata, msg):
        device = msg.topic.split("/")[-2]
        seq = messages.decode_ack(msg.payload)
        with self.lock:
            self.acks_seen.append((device, seq))
            if seq > self.acked.get(device, 0):
                self.acked[device] = seq

    def _on_publish(self, client, userdata, mid, rc, props):
        with self.lock:
            self.pending.discard(mid)

    def publish(self, topic, body, qos=1, retain=False):
        while True:
            with self.lock:
                if len(self.pending) < self.MAX_PENDING:
                    break
            time.sleep(0.002)
        info = self.client.publish(topic, body, qos=qos, retain=retain)
        with self.lock:
            if not info.is_published():
                self.pending.add(info.mid)
        return info

    def send(self, device, seqs):
        d = self.devices.index(device)
        for s in seqs:
            self.publish(topics.device_topic(self.root, self.site, device, "event"), event_body(s, d))

    def send_all(self, n, order=None, pace_s=0.0):
        """pace_s: a pause after each round over the panels, so a stream lasts long enough for
        a test to interrupt the gateway in the middle of it even on a busy machine."""
        for s in order or range(1, n + 1):
            for device in self.devices:
                self.send(device, [s])
            if pace_s:
                time.sleep(pace_s)

    def drain(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.pending:
                    return True
            time.sleep(0.01)
        return False

    def wait_acked(self, n, timeout=30, resend_after=None):
        """Until every device's ack reached n; with resend_after, resend unacked events then."""
        deadline = time.monotonic() + timeout
        last_resend = time.monotonic()
        while time.monotonic() < deadline:
            with self.lock:
                behind = {d: a for d, a in self.acked.items() if a < n}
            if not behind:
                return True
            if resend_after and time.monotonic() - last_resend > resend_after:
                for d, a in behind.items():
                    self.send(d, range(a + 1, n + 1))
                last_resend = time.monotonic()
            time.sleep(0.05)
        return False

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def stored_events(db):
    return db.query(
        "SELECT site, device, seq, boot, up_ms, t_ms, ev, hold_ms, payload FROM raw_events ORDER BY site, device, seq"
    )
