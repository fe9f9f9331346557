"""Pure load: N panels as MQTT clients speaking the panel protocol, through the real broker into
the real gateway(s), for a compressed stretch of simulated days.

    plan = Plan(panels=200, days=1, events_per_day=100, seed=1)
    result = drive(plan, host, port, root, logins=None)   # -> Result: rates, resends, acks
    problems = verify(plan, db)                            # every event stored exactly once

No firmware runs here (simulator/runner.py does that): each panel is a paho client with the
firmware's link rules, the part the gateway sees: a birth state (retained, with the offline
will), events in seq order on its event topic (QoS 0, as the firmware), at most WINDOW sent but
not acked, the retained ack on its ack topic read as the cumulative ack, and everything unacked
resent after ACK_TIMEOUT_S without an ack (the firmware's journal rewind). The generator talks
only to the broker: one gateway or several on shared subscriptions look the same to it.

All clients run in one thread on one selector (no paho network thread per client), so 10,000
panels cost 10,000 sockets, not 10,000 threads; the soft file limit is raised to the hard one.

Events: per panel and day `events_per_day` events in pairs (a seller's press, the customer's
answer 10 s later) spread over opening hours, in simulated time from `start_ms`; seeded.
"""

import collections
import random
import selectors
import time
from typing import Any

from protocol import messages, topics

DAY_MS = 86400000
OPEN_MS = 9 * 3600000  # 09:00 UTC
OPEN_SPAN_MS = 11 * 3600000  # to 20:00
ANSWERS = ("yes", "yes", "yes", "unsure", "no")


class Plan:
    """What the load is: which panels, how many events, when (simulated)."""

    def __init__(self, panels=200, days=1, events_per_day=100, seed=1, start_ms=1740960000000, per_site=3):
        if panels < 1 or days < 1 or events_per_day < 2:
            raise ValueError("panels and days must be at least 1, events_per_day at least 2")
        self.panels, self.days, self.events_per_day = panels, days, events_per_day
        self.seed, self.start_ms, self.per_site = seed, start_ms, per_site

    def keys(self):
        """[(site, device)]: store-00001/p1, p2, p3, store-00002/p1, ..."""
        return [("store-%05d" % (i // self.per_site + 1), "p%d" % (i % self.per_site + 1)) for i in range(self.panels)]

    def sites(self):
        return sorted({s for s, _d in self.keys()})

    def n_events(self):
        """Events per panel over the plan."""
        return (self.events_per_day // 2) * 2 * self.days

    def event(self, index, seq):
        """(ev, payload bytes) of panel `index`'s event `seq` (1-based); pure and seeded, so the
        expected store can be recomputed from the plan."""
        pairs = self.events_per_day // 2
        k = (seq - 1) // 2  # the poll
        day, nth = divmod(k, pairs)
        rng = random.Random(self.seed * 1000003 + index * 7919 + k)
        at = self.start_ms + day * DAY_MS + OPEN_MS + nth * (OPEN_SPAN_MS // pairs) + rng.randrange(60000)
        if seq % 2:
            ev = "seller_short"
        else:
            ev = rng.choice(ANSWERS)
            at += 10000
        boot_ms = self.start_ms - 3600000
        return ev, messages.encode_event(seq, 1, at - boot_ms, at, ev)


class Result:
    def __init__(self):
        self.events = 0  # distinct events acked
        self.published = 0  # event messages sent, resends included
        self.resends = 0
        self.ack_timeouts = 0
        self.connect_s = 0.0
        self.load_s = 0.0  # first event sent -> last ack in
        self.unacked = 0  # events never acked (the run timed out)
        self.reconnects = 0  # connections the broker dropped

    def rate(self):
        return self.events / self.load_s if self.load_s > 0 else 0.0

    def as_dict(self):
        d = dict(self.__dict__)
        d["events_per_s"] = round(self.rate(), 1)
        return d


class _Panel:
    __slots__ = (
        "index",
        "site",
        "device",
        "client",
        "t_event",
        "head",
        "sent",
        "acked",
        "wait_since",
        "up",
        "sock",
        "mask",
        "retry_at",
    )

    def __init__(self, index, site, device, head):
        self.index, self.site, self.device, self.head = index, site, device, head
        self.client: Any = None  # paho.mqtt.client.Client once connecting
        self.t_event = ""
        self.sent: int = 0
        self.acked: int = 0
        self.wait_since: float | None = None  # real time of the oldest unacked publish
        self.up = False  # CONNACK seen
        self.sock: Any = None
        self.mask = 0  # the selector events registered for sock
        self.retry_at: float | None = None  # real time to reconnect after a lost connection


class LoadGen:
    WINDOW = 20  # sent but not acked per panel (the firmware's INFLIGHT_MAX order)
    ACK_TIMEOUT_S = 10.0  # real seconds without an ack before everything unacked is resent
    MAX_INFLIGHT = 20000  # unacked events over all panels: what the broker queues for the gateway
    CONNECT_BATCH = 200  # connects in flight at once

    def __init__(self, plan, host, port, root, logins=None, qos=0, log=None):
        self.plan, self.host, self.port, self.root = plan, host, port, topics.check_root(root)
        self.logins, self.qos = logins, qos
        self.log = log or (lambda line: None)
        self.sel = selectors.DefaultSelector()
        n = plan.n_events()
        self.panels = [_Panel(i, s, d, n) for i, (s, d) in enumerate(plan.keys())]
        self.result = Result()
        self.inflight = 0
        self._due = set()  # panels that may send now (connected, acked, timed out)
        self._starved = collections.deque()  # ... that wait for room under MAX_INFLIGHT
        self.closed = False

    # ---- clients --------------------------------------------------------------------------
    def _client(self, p):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="load-%s-%s" % (p.site, p.device), clean_session=True)
        if self.logins is not None:
            from gateway import accounts

            user = accounts.panel_username(p.site, p.device)
            c.username_pw_set(user, self.logins.passwords[user])
        c.will_set(topics.device_topic(self.root, p.site, p.device, "state"), messages.OFFLINE_WILL, 1, True)
        c.user_data_set(p)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        c.on_socket_close = self._on_socket_close
        c.max_queued_messages_set(0)
        c.max_inflight_messages_set(self.WINDOW)
        p.t_event = topics.device_topic(self.root, p.site, p.device, "event")
        p.client = c
        return c

    def _on_connect(self, c, p, flags, rc, props=None):
        if rc.is_failure:
            if rc.value in (4, 5, 134, 135):  # bad user name or password, not authorised
                raise RuntimeError("the broker refused %s/%s: %s" % (p.site, p.device, rc))
            return  # busy: the broker closes the socket, _on_disconnect retries
        p.up = True
        p.retry_at = None
        # like the firmware after a (re)connect: resend everything not acked, in order
        self.inflight -= p.sent - p.acked
        p.sent = p.acked
        p.wait_since = None
        self._due.add(p)
        c.subscribe(topics.device_topic(self.root, p.site, p.device, "ack"), 1)
        state = {
            "online": True,
            "boot": 1,
            "up": 3600000,
            "t": self.plan.start_ms,
            "fw": "loadgen",
            "seq": 0,
            "pending": 0,
            "dropped": 0,
            "heap": 100000,
            "rssi": -50,
            "faults": [],
            "cfg": None,
            "cfg_err": None,
            "conn": 1,
        }
        c.publish(topics.device_topic(self.root, p.site, p.device, "state"), messages.encode_state(state), 0, True)

    def _on_disconnect(self, c, p, flags, rc, props=None):
        if p.up:
            self.result.reconnects += 1
        p.up = False
        p.retry_at = time.monotonic() + 1.0

    def _on_socket_close(self, c, p, sock):
        if p.sock is not None:
            try:
                self.sel.unregister(p.sock)
            except (KeyError, ValueError):
                pass
            p.sock = None

    def _reconnect(self, now):
        for p in self.panels:
            if p.retry_at is not None and now >= p.retry_at and p.client is not None:
                p.retry_at = now + 5.0
                try:
                    p.client.reconnect()
                except OSError:
                    continue
                self._watch(p)

    def _on_message(self, c, p, msg):
        if not msg.topic.endswith("/ack"):
            return
        try:
            n = int(messages.decode_ack(msg.payload) or 0)
        except Exception:
            return
        if n > p.acked:
            gained = min(n, p.head) - p.acked
            self.inflight -= max(0, min(gained, p.sent - p.acked))
            self.result.events += gained
            p.acked = min(n, p.head)
            p.wait_since = time.monotonic() if p.sent > p.acked else None
            if p.sent < p.acked:
                p.sent = p.acked
            self._due.add(p)

    def _io(self, timeout):
        touched = []
        for key, mask in self.sel.select(timeout):
            p = key.data
            if mask & selectors.EVENT_READ:
                p.client.loop_read()
            if mask & selectors.EVENT_WRITE:
                p.client.loop_write()
            touched.append(p)
        for p in touched:  # callbacks queue packets (PUBACKs, subscribes) instead of writing
            self._watch(p)

    def _watch(self, p):
        s = p.client.socket()
        if s is None:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if p.client.want_write() else 0)
        if p.sock is s and p.mask == events:
            return
        p.mask = events
        if p.sock is not s:
            if p.sock is not None:
                try:
                    self.sel.unregister(p.sock)
                except (KeyError, ValueError):
                    pass
            try:
                old = self.sel.get_key(s)  # a closed socket's number, reused
            except KeyError:
                old = None
            if old is not None:
                self.sel.unregister(s)
                old.data.sock = None
            self.sel.register(s, events, p)
            p.sock = s
        else:
            self.sel.modify(s, events, p)

    # ---- the run --------------------------------------------------------------------------
    def connect_all(self, timeout=600.0):
        t0 = time.monotonic()
        deadline = t0 + timeout
        last_misc = t0
        todo = collections.deque(self.panels)
        while True:
            waiting = sum(1 for p in self.panels if p.client is not None and not p.up)
            while todo and waiting < self.CONNECT_BATCH:
                p = todo.popleft()
                self._client(p).connect(self.host, self.port, 60)
                self._watch(p)
                waiting += 1
            if not todo and waiting == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("%d panels not connected after %.0f s" % (waiting + len(todo), timeout))
            self._io(0.05)
            now = time.monotonic()
            if now - last_misc > 1.0:  # keepalive pings: a long connect phase must not time out the first ones
                for p in self.panels:
                    if p.sock is not None:
                        p.client.loop_misc()
                self._reconnect(now)
                last_misc = now
        self.result.connect_s = time.monotonic() - t0
        self.log("load: %d panels connected in %.1f s" % (len(self.panels), self.result.connect_s))

    def _pump(self, p, now):
        if p.wait_since is not None and now - p.wait_since > self.ACK_TIMEOUT_S:
            # no ack covers what was sent: rewind and resend everything unacked, in order
            self.result.ack_timeouts += 1
            self.result.resends += p.sent - p.acked
            self.inflight -= p.sent - p.acked
            p.sent = p.acked
            p.wait_since = None
        while p.sent < p.head and p.sent - p.acked < self.WINDOW and self.inflight < self.MAX_INFLIGHT:
            seq = p.sent + 1
            _ev, data = self.plan.event(p.index, seq)
            p.client.publish(p.t_event, data, self.qos, False)
            p.sent = seq
            self.result.published += 1
            self.inflight += 1
            if p.wait_since is None:
                p.wait_since = now

    def run(self, timeout=3600.0):
        """Send every panel's events, honouring acks; -> Result."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last_misc = t0
        total = len(self.panels) * self.plan.n_events()
        while self.result.events < total:
            now = time.monotonic()
            if now > deadline:
                break
            while self._starved and self.inflight < self.MAX_INFLIGHT - self.WINDOW * len(self._due):
                self._due.add(self._starved.popleft())
            due, self._due = self._due, set()
            for p in due:
                if not p.up or p.acked >= p.head:
                    continue
                self._pump(p, now)
                self._watch(p)
                if p.sent < p.head and p.sent - p.acked < self.WINDOW:
                    self._starved.append(p)  # stopped by MAX_INFLIGHT
            self._io(0.0 if self._due else 0.01)
            if now - last_misc > 1.0:
                for p in self.panels:
                    if p.sock is not None:
                        p.client.loop_misc()
                    if p.wait_since is not None and now - p.wait_since > self.ACK_TIMEOUT_S:
                        self._due.add(p)  # _pump rewinds it
                self._reconnect(now)
                last_misc = now
        self.result.load_s = time.monotonic() - t0
        self.result.unacked = total - self.result.events
        return self.result

    def close(self):
        if self.closed:
            return
        self.closed = True
        for p in self.panels:
            if p.client is not None:
                try:
                    p.client.disconnect()
                    p.client.loop_write()
                except Exception:
                    pass
        self.sel.close()


def raise_file_limit(need):
    """The soft limit on open files up to the hard one (10,000 panels are 10,000 sockets)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def verify(plan, db):
    """Problems (readable lines): every planned event stored exactly once with its event name,
    nothing else stored for these panels. Reads the store through gateway.store."""
    from gateway import store

    stored = store.event_kinds(db)
    problems = []
    n = plan.n_events()
    for i, key in enumerate(plan.keys()):
        have = stored.get(key, {})
        missing = [s for s in range(1, n + 1) if s not in have]
        extra = sorted(set(have) - set(range(1, n + 1)))
        wrong = [s for s in range(1, n + 1) if s in have and have[s] != plan.event(i, s)[0]]
        if missing or extra or wrong:
            problems.append(
                "%s/%s: %d missing, %d not planned, %d with another event name (of %d)"
                % (key[0], key[1], len(missing), len(extra), len(wrong), n)
            )
    return problems


def run(plan, out_dir, broker_url=None, db_url=None, root="rating/v1", log=None, timeout=3600.0):
    """The load through a broker into the gateway; -> (Result, problems).

    Without broker_url: our own Mosquitto (the embedded broker where none is installed) with a
    login per panel (gateway.accounts.demo_logins) and one `rating gateway run` into db_url
    (default SQLite in out_dir). With broker_url: that broker, anonymous, and whatever
    gateways the caller runs on it into db_url (which must then be given)."""
    import os

    from gateway import accounts, schema
    from simulator import services

    log = log or (lambda line: None)
    os.makedirs(out_dir, exist_ok=True)
    raise_file_limit(plan.panels + 1024)  # before the broker starts: it inherits the limit
    broker = gateway = None
    logins = None
    try:
        if broker_url is None:
            db_url = db_url or "sqlite:///" + os.path.join(os.path.abspath(out_dir), "load.db")
            logins = accounts.demo_logins(root, plan.keys())
            broker = services.Broker("mosquitto", logins=logins).start()
            host, port = broker.host, broker.port
            gateway = services.Gateway(
                "mqtt://gateway@%s:%d" % (host, port),
                db_url,
                root,
                out_dir,
                client_id="rating-gateway-load-%d" % os.getpid(),
                password_file=broker.secret_file("gateway"),
                # ingest under a steady stream is measured with a deployment's batching (panels
                # here do not wait for each ack the way the runner does)
                batch_quiet_ms=services.Gateway.DEPLOYMENT_QUIET_MS,
            )
            gateway.start()
            gateway.wait_connected()
        else:
            from protocol import mqtturl

            if db_url is None:
                raise ValueError("with a broker of your own, give the gateways' database (--db)")
            host, port, _u, _p, _tls = mqtturl.parse(broker_url, tls=False)
        gen = LoadGen(plan, host, port, root, logins=logins, log=log)
        try:
            gen.connect_all()
            result = gen.run(timeout)
        finally:
            gen.close()
        if gateway is not None:
            gateway.stop()
        db = schema.open_database(db_url)
        try:
            problems = verify(plan, db)
        finally:
            db.close()
        if result.unacked:
            problems.insert(0, "%d events still unacked after %.0f s" % (result.unacked, timeout))
        return result, problems
    finally:
        if gateway is not None:
            gateway.stop()
        if broker is not None:
            broker.close()
