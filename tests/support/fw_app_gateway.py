"""A stand-in gateway for the firmware app tests: a paho client (own network thread) that
records a panel's events and states and answers with retained cumulative acks, the way the
real gateway does (ack = highest seq such that every seq up to it has been stored).

    gw = FakeGateway(broker, root, site, device)
    gw.ignore_first = {3, 4}   # drop the first delivery of these seqs (lost gateway queue)
    gw.acking = False          # a gateway that stores nothing / is down
    gw.events  -> decoded events in arrival order; gw.stored -> set of seqs; gw.acked -> int
    gw.states  -> decoded state messages (the will shows as {"v": 1, "online": False})
"""

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import messages, topics


class FakeGateway:
    def __init__(self, broker, root, site, device):
        self.topic = {k: topics.device_topic(root, site, device, k) for k in topics.KINDS}
        self.events = []
        self.states = []
        self.stored = set()
        self.acked = 0
        self.acking = True
        self.ignore_first = set()
        self._ignored = set()
        self.lock = threading.Lock()
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-%s-%s" % (site, device))
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.reconnect_delay_set(0.1, 0.5)
        c.connect(broker.host, broker.port, 30)
        c.loop_start()
        self.c = c
        assert self.connected.wait(5), "fake gateway could not connect"

    def _on_connect(self, client, _u, _f, rc, _p):
        client.subscribe([(self.topic["event"], 1), (self.topic["state"], 1)])
        self.connected.set()

    def _on_message(self, client, _u, msg):
        if msg.topic == self.topic["state"]:
            with self.lock:
                self.states.append(messages.decode_state(msg.payload))
            return
        ev = messages.decode_event(msg.payload)
        with self.lock:
            self.events.append(ev)
            seq = ev["seq"]
            if seq in self.ignore_first and seq not in self._ignored:
                self._ignored.add(seq)
                return
            if not self.acking:
                return
            self.stored.add(seq)
            n = self.acked
            while n + 1 in self.stored:
                n += 1
            if n != self.acked:
                self.acked = n
                client.publish(self.topic["ack"], messages.encode_ack(n), qos=1, retain=True)

    def publish_config(self, payload):
        self.c.publish(self.topic["config"], payload, qos=1, retain=True).wait_for_publish(5)

    def seqs(self):
        with self.lock:
            return [e["seq"] for e in self.events]

    def first_arrival_order(self):
        seen, order = set(), []
        for s in self.seqs():
            if s not in seen:
                seen.add(s)
                order.append(s)
        return order

    def close(self):
        # clear the retained messages this test left (topic roots are unique anyway)
        for kind in ("ack", "config"):
            self.c.publish(self.topic[kind], b"", qos=1, retain=True)
        time.sleep(0.05)
        self.c.loop_stop()
        self.c.disconnect()
