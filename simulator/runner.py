"""The end-to-end runner: the real firmware on virtual panels -> a real MQTT broker -> the real
gateway (`rating gateway run`, a subprocess) -> SQLite, driven in simulated time.

    doc, system, world = run(scenario, out_dir, broker=None, db=None, progress=True)

1. The World (simulator.world) says what happens; the site file is applied to a fresh database
   (the deployment step), the broker (own Mosquitto, else the embedded amqtt) and the gateway
   start.
2. An event-driven scheduler walks simulated time: contact edges of every press (with bounce),
   the fault schedule, and each panel's own deadlines (buttons, window, NTP, heartbeat, ack
   timeout, reconnect). A panel is stepped only then, or when its MQTT socket has data. A
   panel whose ack deadline comes before the gateway's ack is parked: simulated time goes on
   for the others until the parked panel's next input or own deadline, and only then waits
   (bounded, real time) for its ack (_park), so a healthy run has no spurious resends; faults
   let the timeouts fire for real.
3. Faults: Wi-Fi drops (the HAL's access point goes away), broker outages (the broker process
   stops and starts), reboots and power cuts (the Panel is rebuilt from its surviving flash; a
   power cut tears the journal write of the press in progress), boots without a clock until
   NTP answers, gateway restarts (kill -9 + start), journal overflow (a long drop + a small
   journal).
4. Drain: simulated time goes on until every panel is online with nothing unacked. Then the
   hourly counts are published on the counts topic, the gateway stops, the expert's verdicts
   from the truth go through gateway.review, the derived tables are rebuilt and
   gateway.report.build_report makes the KPIs.
5. `system` holds what the gateway derived (polls, force-majeure reports, unsolicited presses,
   report KPIs) and `problems`: every event stored exactly once, lost events exactly those the
   scenario forced (and reported lost by the gateway), KPIs equal to the truth.
"""

import heapq
import json
import os
import random
import select
import shutil
import socket
import sys
import time

from simulator import check, physics, pure, sitefile, truth
from simulator import world as W
from simulator.pure import event_time
from simulator.scenario import sub_seed


class RunError(RuntimeError):
    """The run could not be carried out (a process did not start, the gateway died)."""


class Track:
    """The scheduler's bookkeeping of one virtual panel (the panel itself knows none of it)."""

    __slots__ = (
        "wake_at",
        "wake_why",
        "nodelay",
        "spin_t",
        "spins",
        "last_pub_real",
        "wifi_down_until",
        "cut_fault",
        "parked_since",
        "sock",
        "unacked_since_real",
        "ack_seen_real",
    )

    def __init__(self):
        self.wake_at = None  # simulated ms of the panel's one live "wake" item on the heap
        self.wake_why = None  # what the firmware said it waits for then ("ack", "rx", ...)
        self.nodelay = None  # the socket TCP_NODELAY was set on
        self.spin_t, self.spins = None, 0  # livelock guard (see _reschedule)
        self.last_pub_real = 0.0  # real time of the panel's last publish
        self.wifi_down_until = None  # simulated ms its access point comes back
        self.cut_fault = None  # the power-cut fault armed on its next journal write
        self.parked_since = None  # real time the panel was parked at its ack deadline (Runner._park)
        self.sock = None  # its MQTT socket as last seen (Runner._socks)
        # real time of the oldest publish not yet acked (None: all acked). Kept conservatively:
        # a partial ack leaves it; a reconnect or an ack-timeout resend starts it anew (all that
        # is out is published again)
        self.unacked_since_real = None
        self.ack_seen_real = None  # real time a hold saw data arrive on its socket (Runner._unpark)


class Runner:
    HOLD_ACK_S = 1.0  # real seconds a parked panel's ack may take at least (see _hold_limit)
    HOLD_MAX_S = 30.0  # ... at most, however slow the gateway has been answering
    ACK_SLACK = 20  # ... or this many times the smoothed publish -> ack time
    HOLD_FAULT_S = 0.05  # ... while the broker or the gateway is down on purpose
    POLL_EVERY_S = 0.002  # look at the panels' sockets at least this often (real time)
    KEEPALIVE_EVERY_S = 5.0  # let paho ping the broker (it counts real seconds)
    DRAIN_REAL_S = 120.0  # the end-of-run drain must finish within this (real seconds)
    COUNTS_WAIT_S = 15.0  # per attempt
    COUNTS_TRIES = 3
    KEEPALIVE_S = 60  # the panels' MQTT keepalive (config.json)
    SPIN_MAX = 200  # steps of one panel at one instant before time is nudged on

    def __init__(self, sc, out_dir, broker=None, db=None, progress=True, root=None, log=None):
        self.sc = sc
        self.out = os.path.abspath(out_dir)
        self.broker_url = broker
        self.db_url = db or "sqlite:///" + os.path.join(self.out, "gateway.db")
        self.progress = progress
        self.root = root or sc.meta["root"]
        self.log = log or (lambda line: None)
        self.world = None
        self.panels = []
        self.track = {}  # (site, device) -> Track
        self.heap = []
        self._order = 0
        self._inputs = 0  # items on the heap that are not panel wake-ups
        self.now = sc.start_ms
        self.broker = None
        self.logins = None  # gateway.accounts.Logins of our own broker (no anonymous access)
        self.gateway = None
        self.broker_down_until = None
        self.stats = {
            "steps": 0,
            "wakes": 0,
            "edges": 0,
            "holds": 0,  # real-time waits of simulated time for a parked panel's ack
            "hold_s": 0.0,
            "parks": 0,  # ack deadlines passed while the ack was still on its way (no wait)
            "park_acks": 0,  # ... whose ack then came before the panel's next input
            "hold_expired": 0,  # holds that gave up (the panel's ack timeout then fired)
            "holds_over_100ms": 0,  # ... of the holds, those over 100 ms, and their seconds
            "holds_over_100ms_s": 0.0,
            "hold_max_s": 0.0,
            "selects": 0,
            "select_s": 0.0,
            "keepalive_s": 0.0,
            "fault_wait_s": 0.0,  # real waits for the gateway/broker around faults
            "ack_timeouts": 0,  # the firmware's own count, summed over panels and boots
            "resends": 0,
            "wifi_drops": 0,
            "broker_outages": 0,
            "reboots": 0,
            "power_cuts": 0,
            "gateway_restarts": 0,
            "no_clock_boots": 0,
        }
        self.problems = []
        self.warnings = []
        self.timing = {}
        self._ready = set()  # sockets the last select found readable
        self._last_poll = self._last_ka = 0.0  # real times of the last socket poll / keepalive
        self._drain_started = None  # real time the drain began
        self.parked = {}  # (site, device) -> VirtualPanel whose ack deadline passed before its ack came
        self.ack_rtt = 0.0  # smoothed real time from a panel's publish to its ack (seconds)
        self.gap_real = 0.0  # real time of the last gateway kill / broker stop
        self._socks = {}  # the panels' MQTT sockets -> VirtualPanel, kept by _track_socket

    # ---- set-up -------------------------------------------------------------------------------
    def _db_file(self):
        url = self.db_url
        if url.startswith("sqlite:///"):
            return url[len("sqlite:///") :]
        return None

    def _prepare(self):
        from gateway import schema, store
        from gateway import site as site_mod

        os.makedirs(self.out, exist_ok=True)
        path = self._db_file()
        if path:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
        shutil.rmtree(os.path.join(self.out, "panels"), ignore_errors=True)
        if os.path.exists(os.path.join(self.out, "gateway.log")):
            os.remove(os.path.join(self.out, "gateway.log"))
        w = self.world = W.generate(self.sc)
        text = sitefile.site_toml(w)
        with open(os.path.join(self.out, "site.toml"), "w") as f:
            f.write(text)
        db = schema.open_database(self.db_url)
        try:
            if store.has_events(db):
                raise RunError(
                    "the database %s already holds events; give the run an empty one "
                    "(--db) or leave --db out (SQLite in --out)" % self.db_url
                )
            site_mod.apply(db, site_mod.parse(text, "site.toml"), int(time.time() * 1000), "site.toml", "simulator")
        finally:
            db.close()

    def _start_services(self):
        from simulator import services

        password_file = None
        if self.broker_url and self.broker_url != "embedded":
            host, port = _host_port(self.broker_url)
        else:
            # our own broker: Mosquitto where installed, else (or when asked) the embedded one;
            # no anonymous access: every panel, the gateway and the counts feed get a login
            from gateway import accounts

            panels = [(site["id"], panel["id"]) for site, panel in self.sc.panels()]
            self.logins = accounts.demo_logins(self.root, panels, counts_sites=sorted({s for s, _d in panels}))
            kind = "embedded" if self.broker_url == "embedded" else "mosquitto"
            self.broker = services.Broker(kind, logins=self.logins).start()
            password_file = self.broker.secret_file("gateway")
            self.broker_url = "mqtt://gateway@%s:%d" % (self.broker.host, self.broker.port)
            host, port = self.broker.host, self.broker.port
        self.host, self.port = host, port
        # a client id of its own: on a shared broker another run's persistent session (other
        # topic root) must not be resumed; restarts of this gateway do resume this one
        self.gateway = services.Gateway(
            self.broker_url,
            self.db_url,
            self.root,
            self.out,
            client_id="rating-gateway-sim-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000),
            password_file=password_file,
        )
        self.gateway.start()  # run() waits for its connection after making the panels

    def _panel_cfg(self, site, panel):
        from firmware import config

        fw = self.sc.firmware
        raw = {
            "site": site["id"],
            "device": panel["id"],
            "wifi": {"ssid": "shop", "password": "pw"},
            "mqtt": {"host": self.host, "port": self.port, "root": self.root, "keepalive": self.KEEPALIVE_S},
            "ntp": {"host": "ntp.sim", "resync_h": 6},
            "timings": {
                "debounce_ms": int(fw["debounce_ms"]),
                "long_ms": int(fw["long_ms"]),
                "stuck_ms": int(fw["stuck_ms"]),
                "heartbeat_s": int(fw["heartbeat_s"]),
                "ack_timeout_s": int(fw["ack_timeout_s"]),
                "window_s": int(self.sc.method["window_s"]),
            },
            "journal": {"capacity": int(fw["journal_capacity"])},
        }
        if self.logins is not None:
            raw["mqtt"]["user"], raw["mqtt"]["password"] = self.logins.panel(site["id"], panel["id"])
        try:
            return config.load(json.dumps(raw))
        except config.ConfigError as exc:
            raise RunError(
                "the panels' config.json from the scenario is not valid: %s; fix [firmware] in the scenario" % exc
            ) from None

    def _make_panels(self):
        from simulator.vpanel import VirtualPanel

        sc, w = self.sc, self.world
        assert w is not None, "_prepare makes the world first"
        fw = sc.firmware
        origin = sc.start_ms - 3600000
        ntp_first = {(f["site"], f["device"]): f["duration"] for f in w.faults if f["kind"] == "ntp_delay"}
        for site, panel in sc.panels():
            key = (site["id"], panel["id"])
            presses = sorted(w.presses[key], key=lambda p: (event_time(p, fw), p.t))
            vp = VirtualPanel(
                key[0],
                key[1],
                self._panel_cfg(site, panel),
                os.path.join(self.out, "panels", "%s__%s" % key),
                origin,
                presses,
                seed=sub_seed(sc.seed, "hal", *key) & 0x7FFFFFFF or 1,
            )
            self.track[vp.key] = Track()
            rng = random.Random(sub_seed(sc.seed, "bounce", *key))
            for p in w.presses[key]:
                for t, level in physics.edges(p, rng, sc.faults):
                    self._push(t, "edge", (vp, p.button, level, p))
            delay = ntp_first.get(key)
            if delay:
                self.stats["no_clock_boots"] += 1
            self._push(sc.start_ms, "boot", (vp, sc.start_ms + delay if delay else None))
            self.panels.append(vp)
        self.by_key = {vp.key: vp for vp in self.panels}
        self.victims = {}
        for f in w.faults:
            if f["kind"] == "ntp_delay":
                continue
            self._push(f["t"], "fault", f)
            if f["kind"] == "power_cut":
                self.victims[(f["site"], f["device"], f["victim_t"])] = f

    # ---- the heap -----------------------------------------------------------------------------
    def _push(self, t, kind, arg):
        self._order += 1
        if kind != "wake":
            self._inputs += 1
        heapq.heappush(self.heap, (t, self._order, kind, arg))

    def _reschedule(self, vp):
        tr = self.track[vp.key]
        t, why = vp.deadline()
        if t is None:
            tr.wake_at = None
            return
        t = max(t, self.now)
        # livelock guard: a panel that keeps asking for a step at the same instant without
        # doing anything would stop simulated time (and with it its own socket reads)
        if t == tr.spin_t:
            tr.spins += 1
            if tr.spins > self.SPIN_MAX:
                self.stats["spin_breaks"] = self.stats.get("spin_breaks", 0) + 1
                t += vp.panel.link.POLL_MS
        else:
            tr.spin_t, tr.spins = t, 0
        if tr.wake_at is None or t != tr.wake_at:
            tr.wake_at = t
            tr.wake_why = why
            self._push(t, "wake", vp)

    def _step(self, vp, t):
        tr = self.track[vp.key]
        was_parked = tr.parked_since is not None
        if was_parked:
            self._unpark(vp)
        p = vp.panel
        if p is not None:
            link = p.link
            before = (link.published, link.outbox.acked(), link.resends, link.connects)
            vp.step(t)
            self._after_step(tr, link, before, was_parked)
        self.stats["steps"] += 1
        if vp.power_died:
            self._power_cut(vp)
        self._track_socket(vp)
        self._reschedule(vp)

    def _after_step(self, tr, link, before, was_parked):
        """What a step did to the panel's publishes and acks, in real time: the smoothed
        publish -> ack time (_hold_limit) and the oldest unacked publish (_ack_may_come)."""
        published, acked, resends, connects = before
        now = time.monotonic()
        seen, tr.ack_seen_real = tr.ack_seen_real, None
        if link.outbox.acked() != acked:
            # how slow the gateway is answering now, from acks whose arrival time is known: the
            # panel was not parked (a wake within POLL_EVERY_S of the ack's arrival) or a hold
            # saw it come; not across a gateway kill / broker stop (the fault's delay, not the
            # gateway's), not an ack a parked panel found waiting (it came at some time before)
            arrived = seen if seen is not None else (None if was_parked else now)
            if arrived is not None and tr.last_pub_real > self.gap_real:
                self.ack_rtt += 0.1 * (arrived - tr.last_pub_real - self.ack_rtt)
            if link.sent <= link.outbox.acked():
                tr.unacked_since_real = None
        if link.resends != resends or link.connects != connects:
            tr.unacked_since_real = None  # everything out is published again from now on
        if link.published != published:
            tr.last_pub_real = now
            if tr.unacked_since_real is None:
                tr.unacked_since_real = now

    # ---- faults -------------------------------------------------------------------------------
    def _fault(self, f):
        kind = f["kind"]
        if kind == "wifi_drop":
            self._wifi_drop(f)
        elif kind == "broker_outage":
            self._broker_outage(f)
        elif kind == "gateway_restart":
            gateway = self._gw()
            self.stats["gateway_restarts"] += 1
            self.gap_real = time.monotonic()  # what the gateway had not committed is gone
            real = time.monotonic()
            gateway.kill()
            gateway.start()
            if self.broker_down_until is None:
                gateway.wait_connected()
            self.stats["fault_wait_s"] += time.monotonic() - real
        elif kind == "reboot":
            vp = self.by_key[(f["site"], f["device"])]
            if vp.panel is None:
                return
            self.stats["reboots"] += 1
            vp.power_off()
            self._track_socket(vp)
            self._boot_later(vp, f)
        elif kind == "power_cut":
            vp = self.by_key[(f["site"], f["device"])]
            if vp.panel is not None and not f.get("done"):
                # the victim press did not tear a write (e.g. it never reached flash): cut now
                self._power_cut(vp, f)

    def _wifi_drop(self, f):
        vp = self.by_key[(f["site"], f["device"])]
        tr = self.track[vp.key]
        vp.hal.wifi_up = False
        tr.wifi_down_until = max(tr.wifi_down_until or 0, f["t"] + f["duration"])
        self.stats["wifi_drops"] += 1
        self._push(tr.wifi_down_until, "wifi_up", vp)
        if vp.panel is not None:
            self._step(vp, self.now)

    def _broker_outage(self, f):
        if self.broker is None:
            self.log("broker outage at %s skipped: the broker is not ours (--broker)" % check._when(f["t"]))
            return
        until = f["t"] + f["duration"]
        self.stats["broker_outages"] += 1
        self.gap_real = time.monotonic()  # QoS 0 events in flight now are gone
        if self.broker_down_until is None:
            real = time.monotonic()
            self._gw().mark()
            self.broker.outage()
            self.stats["fault_wait_s"] += time.monotonic() - real
            self.broker_down_until = until
            self._push(until, "broker_up", until)
        elif until > self.broker_down_until:
            self.broker_down_until = until
            self._push(until, "broker_up", until)
        for vp in self.panels:
            self._reschedule(vp)

    def _power_cut(self, vp, f=None):
        f = f or self.track[vp.key].cut_fault
        assert f is not None, "a power cut without its fault"
        f["done"] = True
        self.stats["power_cuts"] += 1
        vp.power_off()
        self._track_socket(vp)
        # the power may die before the victim's event even reached the journal (an ack's
        # meta write used up the budget): that press is lost the same way
        for p in list(vp.expected[:3]):
            if p.role == "victim" and p.t == f.get("victim_t"):
                vp.expected.remove(p)
                vp.torn.append(p)
        self._boot_later(vp, f)

    def _boot_later(self, vp, f):
        """The power comes back f["duration"] later; with no_clock, NTP answers ntp_delay after."""
        up_at = self.now + f["duration"]
        self._push(up_at, "boot", (vp, up_at + f["ntp_delay"] if f["no_clock"] else None))
        if f["no_clock"]:
            self.stats["no_clock_boots"] += 1

    # ---- sockets ------------------------------------------------------------------------------
    def _track_socket(self, vp):
        """Keep `_socks` (what _poll_sockets selects on) up to date after anything that may have
        connected, reconnected or powered off the panel: a step, a reboot, a power cut. Building
        the map anew for every poll (every 2 ms) cost ~5 % of the runner's CPU."""
        tr = self.track[vp.key]
        s = vp.socket()
        if s is tr.sock:
            return
        if tr.sock is not None:
            self._socks.pop(tr.sock, None)
        tr.sock = s
        if s is None:
            return
        self._socks[s] = vp
        if tr.nodelay is not s:
            # Nagle + delayed ACKs would add ~40 ms to every event -> ack round trip
            # (measured); a real panel's lwIP stack sends small packets at once too
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            tr.nodelay = s

    def _poll_sockets(self, timeout):
        socks = self._socks
        self.stats["selects"] += 1
        if not socks:
            if timeout:
                time.sleep(min(timeout, 0.01))
            return 0
        real = time.monotonic()
        try:
            ready, _, _ = select.select(list(socks), [], [], timeout)
        except (OSError, ValueError):
            # a socket closed under us (paho's keepalive check): its panel notices at its next
            # step, which the wake below brings; until then it is not selected on
            ready = [s for s in socks if s.fileno() >= 0]
            for s in [s for s in socks if s.fileno() < 0]:
                vp = socks.pop(s)
                self.track[vp.key].sock = None
        self.stats["select_s"] += time.monotonic() - real
        self._ready = set(ready)
        for s in ready:
            vp = socks[s]
            tr = self.track[vp.key]
            t = max(self.now, vp.poll_at())
            if tr.wake_at is None or t < tr.wake_at:
                tr.wake_at = t
                tr.wake_why = "rx"
                self._push(t, "wake", vp)
        return len(ready)

    def _gw(self):
        if self.gateway is None:
            raise RunError("the gateway was not started")
        return self.gateway

    def _faults_active(self):
        return self.broker_down_until is not None or not self._gw().running

    # ---- the loop -----------------------------------------------------------------------------
    def _loop(self):
        """Walk the heap in simulated time until the run is drained (see the module's step 2)."""
        bar = _Progress(self.sc, len(self.panels)) if self.progress else None
        self._last_poll = self._last_ka = time.monotonic()
        self._drain_started = None
        iterations = 0
        while True:
            self._real_time_chores()
            if self._run_over():
                break
            if not self.heap:
                if self.parked:  # nothing else to do: step them (their ack or their timeout)
                    waiting = list(self.parked.values())
                    self._unpark_all()
                    for vp in waiting:
                        self._step(vp, self.now)
                    continue
                self._poll_sockets(0.01)
                continue
            t, _, kind, arg = self.heap[0]
            if kind == "wake" and self._skip_or_park(t, arg):
                continue
            if self.parked and self._unpark_for(kind, arg):
                continue  # the wait may have put new items on the heap: look again
            heapq.heappop(self.heap)
            if kind != "wake":
                self._inputs -= 1
            if t > self.now:
                self.now = t
                if bar is not None:
                    bar.at(t)
            self._HANDLERS[kind](self, t, arg)
            iterations += 1
            if iterations % 512 == 0:
                self._check_gateway_alive()
        if bar is not None:
            bar.close()

    def _real_time_chores(self):
        """Read the panels' sockets and let paho ping the broker, both on real-time clocks."""
        real = time.monotonic()
        if real - self._last_poll >= self.POLL_EVERY_S:
            self._poll_sockets(0)
            self._last_poll = real
        if real - self._last_ka >= self.KEEPALIVE_EVERY_S:
            for vp in self.panels:
                vp.keepalive()
            self._last_ka = time.monotonic()
            self.stats["keepalive_s"] += self._last_ka - real

    def _run_over(self):
        """True once all inputs and faults are done and every journal is acked (or the drain
        timed out, which is recorded as a problem)."""
        if self._inputs_left() or self.now < self.sc.end_ms:
            return False
        real = time.monotonic()
        if self._drain_started is None:
            self._drain_started = real
            self.timing["run_s"] = real - self._t0
        if self._drained():
            return True
        if real - self._drain_started > self.DRAIN_REAL_S:
            self.problems.append(
                "drain: after %.0f s some panels still hold unacked events: %s" % (self.DRAIN_REAL_S, self._undrained())
            )
            return True
        return False

    def _skip_or_park(self, t, vp):
        """For the wake item on top of the heap: True when it must not run now, either stale
        (dropped here) or an ack deadline reached while the ack may still be on its way: the
        panel is parked (see _park) and simulated time goes on without it."""
        tr = self.track[vp.key]
        if tr.wake_at != t or vp.panel is None:
            heapq.heappop(self.heap)
            return True
        if tr.wake_why != "ack" or not vp.online() or _readable(vp.socket()):
            return False
        if not self._ack_may_come(tr):
            return False
        heapq.heappop(self.heap)
        self._park(vp)
        return True

    def _ack_may_come(self, tr):
        """An ack is not coming when something still unacked was published before the last
        gateway kill / broker stop (even if later events were published after it: a lost
        publish leaves a gap the gateway's cumulative ack does not pass), or when the last
        publish is longer ago (real time) than the hold limit: then the panel's ack timeout
        must fire."""
        since = tr.unacked_since_real
        return since is not None and since > self.gap_real and time.monotonic() - tr.last_pub_real < self._hold_limit()

    def _hold_limit(self):
        """How long (real seconds) an ack may take: HOLD_ACK_S, or more on a machine where the
        gateway answers slowly (a loaded machine must not turn every ack into a resend)."""
        if self.broker_down_until is not None:  # (a gateway restart is a kill + start at once)
            return self.HOLD_FAULT_S
        return min(self.HOLD_MAX_S, max(self.HOLD_ACK_S, self.ACK_SLACK * self.ack_rtt))

    def _park(self, vp):
        """The panel's ack deadline has come, its ack not yet: rather than stopping simulated
        time (the ack is usually a few real ms away), the panel is left unstepped until the
        ack is in its socket. Nothing of the panel may happen meanwhile, so its next input
        (edge, fault, boot) and its next own deadline besides the ack wait for the ack first
        (_unpark); the firmware then reads the ack before it looks at its ack timeout."""
        tr = self.track[vp.key]
        if tr.parked_since is None:
            tr.parked_since = time.monotonic()
            self.parked[vp.key] = vp
            self.stats["parks"] += 1
        t, why = vp.deadline(ack=False)
        tr.wake_at, tr.wake_why = (None, None) if t is None else (max(t, self.now), why)
        if tr.wake_at is not None:
            self._push(tr.wake_at, "wake", vp)

    def _unpark(self, vp):
        """Before anything happens to a parked panel: wait (real time, bounded) until its ack
        is in its socket or cannot come any more."""
        tr = self.track[vp.key]
        if tr.parked_since is None:
            return
        s = vp.socket()
        real0 = time.monotonic()
        waited = False
        while s is not None and not _readable(s):
            real = time.monotonic()
            left = self._hold_limit() - (real - tr.parked_since)
            if left <= 0 or tr.unacked_since_real is None or tr.unacked_since_real <= self.gap_real:
                self.stats["hold_expired"] += 1
                break
            waited = True
            # on this socket alone: the others' data waits anyway, simulated time stands still
            self.stats["selects"] += 1
            try:
                select.select([s], [], [], min(0.05, left))
            except (OSError, ValueError):
                break
        else:
            if s is not None:
                self.stats["park_acks"] += 1
            if waited:
                tr.ack_seen_real = time.monotonic()  # the ack's arrival, for the smoothed ack time
        if waited:
            held = time.monotonic() - real0
            self.stats["holds"] += 1
            self.stats["hold_s"] += held
            if held > 0.1:  # the long tail: a loaded machine, a slow commit
                self.stats["holds_over_100ms"] += 1
                self.stats["holds_over_100ms_s"] += held
            self.stats["hold_max_s"] = max(self.stats["hold_max_s"], held)
        tr.parked_since = None
        del self.parked[vp.key]

    def _unpark_for(self, kind, arg):
        """Before a heap item runs: unpark the panel it concerns (every panel for a broker
        outage or gateway restart); True when any was unparked."""
        vp = self._panel_of(kind, arg)
        if vp is None:
            n = len(self.parked)
            self._unpark_all()
            return n > 0
        if vp.key in self.parked:
            self._unpark(vp)
            return True
        return False

    def _unpark_all(self):
        for vp in list(self.parked.values()):
            self._unpark(vp)

    def _panel_of(self, kind, arg):
        """The panel a heap item concerns; None for items that concern every panel (broker
        outages, gateway restarts)."""
        if kind in ("wake", "wifi_up"):
            return arg
        if kind in ("edge", "boot"):
            return arg[0]
        if kind == "fault" and arg.get("device") is not None:
            return self.by_key.get((arg["site"], arg["device"]))
        return None

    def _check_gateway_alive(self):
        gateway = self._gw()
        if gateway.proc is not None and not gateway.running:
            raise RunError(
                "the gateway exited (code %s); see %s:\n%s"
                % (gateway.proc.returncode, gateway.log_path, gateway.tail())
            )

    # ---- what the heap's items do -------------------------------------------------------------
    def _on_wake(self, t, vp):
        self.track[vp.key].wake_at = None
        self.stats["wakes"] += 1
        self._step(vp, t)

    def _on_edge(self, t, arg):
        vp, button, level, press = arg
        self.stats["edges"] += 1
        vp.set_pin(button, level)
        if press.role == "victim" and level == 1 and press.t == t:
            f = self.victims.get((vp.site, vp.device, press.t))
            if f is not None and vp.panel is not None:
                self.track[vp.key].cut_fault = f
                rng = random.Random(sub_seed(self.sc.seed, "cut", vp.site, vp.device, press.t))
                vp.arm_power_cut(rng.randint(1, 40))  # tears the 48-byte record
        if vp.panel is not None:
            self._step(vp, t)

    def _on_fault(self, t, f):
        self._fault(f)

    def _on_boot(self, t, arg):
        vp, ntp_ok_at = arg
        if vp.panel is None:
            vp.boot(t, ntp_ok_at)
            self._step(vp, t)

    def _on_wifi_up(self, t, vp):
        if self.track[vp.key].wifi_down_until == t:
            vp.hal.wifi_up = True
            if vp.panel is not None:
                self._reschedule(vp)

    def _on_broker_up(self, t, _arg):
        if self.broker_down_until != t or self.broker is None:
            return
        real = time.monotonic()
        self.broker.start()
        self.broker_down_until = None
        # the gateway reconnects on its own backoff (real seconds); until it is back no ack can
        # come, so simulated time waits for it
        gateway = self._gw()
        if gateway.running:
            gateway.wait_connected()
        self.stats["fault_wait_s"] += time.monotonic() - real
        for vp in self.panels:
            self._reschedule(vp)

    _HANDLERS = {
        "wake": _on_wake,
        "edge": _on_edge,
        "fault": _on_fault,
        "boot": _on_boot,
        "wifi_up": _on_wifi_up,
        "broker_up": _on_broker_up,
    }

    def _inputs_left(self):
        return self._inputs > 0

    def _drained(self):
        if self._faults_active():
            return False
        for vp in self.panels:
            if not vp.online() or vp.pending() != 0:
                return False
        return True

    def _undrained(self):
        out = []
        for vp in self.panels:
            if not vp.online() or vp.pending():
                out.append(
                    "%s/%s (%s, %s unacked, last error %s)"
                    % (
                        vp.site,
                        vp.device,
                        "online" if vp.online() else "offline",
                        vp.pending(),
                        vp.panel.link.last_error if vp.panel else "powered off",
                    )
                )
        return "; ".join(out)

    # ---- after the run ------------------------------------------------------------------------
    def _publish_counts(self, msgs):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from protocol import topics

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-counts-%d" % os.getpid())
        if self.logins is not None:
            c.username_pw_set("counts.demo", self.logins.passwords["counts.demo"])
        c.max_inflight_messages_set(50)
        c.connect(self.host, self.port, 30)
        c.loop_start()
        try:
            infos = []
            for site, _t, payload in msgs:
                infos.append(c.publish(topics.counts_topic(self.root, site), payload, qos=1))
                if len(infos) >= 1000:  # MQTT-FACTS pitfall 2: bound what is unacknowledged
                    for i in infos:
                        i.wait_for_publish(10)
                    infos = []
            for i in infos:
                i.wait_for_publish(10)
        finally:
            c.loop_stop()
            c.disconnect()

    def _deliver_counts(self):
        """Publish the hourly counts like a POS/people-counter integration would: QoS 1, then
        re-send what the gateway has not stored (counts are idempotent per site and interval).
        A re-send is reported as a warning, so a broker that lost messages stays visible."""
        from gateway import db as dbmod
        from gateway import store

        msgs = sitefile.counts_messages(self.world)
        keys = [(m[0], *self._counts_key(m[2])) for m in msgs]  # decoded once, not per look
        pending = msgs
        for _attempt in range(self.COUNTS_TRIES):
            self._publish_counts(pending)
            db = dbmod.connect(self.db_url)
            try:
                deadline = time.monotonic() + self.COUNTS_WAIT_S
                while True:
                    have = set((r["site"], r["from_ms"], r["to_ms"]) for r in store.counts(db) if r["device"] == "")
                    missing = [m for m, key in zip(msgs, keys, strict=True) if key not in have]
                    if not missing or time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
            finally:
                db.close()
            if not missing:
                return
            self.warnings.append(
                "counts: the gateway had stored %d of %d hourly counts messages after %.0f s; "
                "re-sending the missing ones" % (len(msgs) - len(missing), len(msgs), self.COUNTS_WAIT_S)
            )
            pending = missing
        self.problems.append(
            "counts: the gateway stored %d of %d hourly counts messages after %d attempts"
            % (len(msgs) - len(missing), len(msgs), self.COUNTS_TRIES)
        )

    @staticmethod
    def _counts_key(payload):
        from protocol import messages

        d = messages.decode_counts(payload)
        return d["from"], d["to"]

    def _mark_lost(self, stored):
        """Presses the system cannot know: torn by a power cut, dropped by a full journal."""
        w = self.world
        for vp in self.panels:
            for p in vp.torn:
                p.lost = pure.POWER_CUT
            for p in vp.expected:
                self.problems.append(
                    "%s/%s: the press at %s (%s, %s) never became an event"
                    % (vp.site, vp.device, check._when(p.t), p.button, p.role)
                )
                p.lost = "no event (firmware missed it)"
            have = stored.get(vp.key, {})
            for seq, p in vp.assigned:
                if seq not in have:
                    p.lost = "dropped by a full journal"
        return w

    def _collect(self, db):
        """What the gateway stored and derived, plus the stored-once and lost-event checks."""
        from gateway import store

        # (site, device, seq) is the store's primary key: an event is stored at most once per
        # seq; a press stored twice would show below as a seq no press made
        stored = store.event_kinds(db)
        now = int(time.time() * 1000)
        self.lost_report = {}
        for vp in self.panels:
            have = stored.get(vp.key, {})
            seqs = {seq: p for seq, p in vp.assigned}
            for seq in sorted(set(have) - set(seqs)):
                self.problems.append("event %s/%s/%d stored but no press made it" % (vp.site, vp.device, seq))
            for seq in sorted(set(have) & set(seqs)):
                if have[seq] != seqs[seq].ev:
                    self.problems.append(
                        "event %s/%s/%d stored as %s, pressed %s" % (vp.site, vp.device, seq, have[seq], seqs[seq].ev)
                    )
            missing = sorted(set(seqs) - set(have))
            j = vp.panel.journal if vp.panel is not None else None
            dropped = j.dropped if j is not None else None
            gaps = store.gaps(db, vp.site, vp.device, now)
            n_lost, ranges = store.lost_summary(gaps)
            self.lost_report[vp.key] = {
                "missing": len(missing),
                "journal_dropped": dropped,
                "gateway_lost": n_lost,
                "ranges": ranges,
            }
            if missing != [] or dropped or n_lost:
                forced = any(
                    o.get("site") == vp.site and o.get("device") == vp.device for o in self.sc.faults["overflow"]
                )
                if not forced:
                    self.problems.append(
                        "%s/%s: %d events never stored (seqs %s) but the scenario forced no "
                        "journal overflow there" % (vp.site, vp.device, len(missing), _ranges(missing))
                    )
                # the journal counts every unacked record it overwrote; some of those may
                # already have reached the gateway (sent, not yet acked): an upper bound
                if len(missing) > (dropped or 0):
                    self.problems.append(
                        "%s/%s: %d events missing in the store, but the panel's journal "
                        "dropped only %s" % (vp.site, vp.device, len(missing), dropped)
                    )
                not_dropped = [g for g in gaps if g["status"] == "lost" and g["why"] != "dropped"]
                if not_dropped:
                    self.problems.append(
                        "%s/%s: the gateway reports lost events it does not know the panel "
                        "dropped: %s" % (vp.site, vp.device, not_dropped)
                    )
                if n_lost != len(missing):
                    self.problems.append(
                        "%s/%s: the gateway reports %d lost events (%s), %d are missing (%s)"
                        % (vp.site, vp.device, n_lost, ranges or "-", len(missing), _ranges(missing))
                    )
        return stored

    def _expert(self, db, doc):
        """The expert's verdicts (from the truth) through gateway.review, as a person would."""
        from gateway import review

        now = int(time.time() * 1000)
        n = 0
        for p in doc["polls"]:
            if p["invalid"]:
                try:
                    review.record(
                        db,
                        review.POLL,
                        review.format_id(p["site"], p["device"], p["open_seq"]),
                        "invalid",
                        "simulated expert: not a real customer answer",
                        "sim-expert",
                        now,
                    )
                    n += 1
                except review.ReviewError as exc:
                    self.problems.append("expert: %s" % exc)
        for f in doc["fms"]:
            verdict = "confirm" if f["confirmed"] else "reject"
            try:
                review.record(
                    db,
                    review.FM,
                    review.format_id(f["site"], f["device"], f["seq"]),
                    verdict,
                    "" if f["confirmed"] else "simulated expert: nothing wrong on the video",
                    "sim-expert",
                    now,
                )
                n += 1
            except review.ReviewError as exc:
                self.problems.append("expert: %s" % exc)
        return n

    def _system(self, db):
        from gateway import derive

        rows = derive.derived(db)
        polls = [
            {
                "site": r["site"],
                "device": r["device"],
                "open_seq": r["open_seq"],
                "opened_at": r["opened_ms"],
                "answer": r["answer"],
                "extra_presses": r["extra_presses"],
                "employee": r["employee"],
                "kind": r["kind"],
                "provisional": r["provisional"],
                "time_source": r["time_source"],
            }
            for r in rows["polls"]
        ]
        fms = [
            {
                "site": r["site"],
                "device": r["device"],
                "seq": r["seq"],
                "start": r["start_ms"],
                "end": r["end_ms"],
                "presses": r["presses"],
                "employee": r["employee"],
            }
            for r in rows["force_majeure"]
        ]
        uns = {"%s/%s" % vp.key: 0 for vp in self.panels}
        for (site, device), n in rows["unsolicited"].items():
            uns["%s/%s" % (site, device)] = n
        return {"polls": polls, "fms": fms, "unsolicited": uns, "anomalies": rows["anomalies"]}

    def _final_heartbeat(self):
        """Every panel publishes its state once more (as its next heartbeat would), so the
        gateway's panel_state shows the drained end: online, nothing pending."""
        for vp in self.panels:
            if vp.online():
                vp.panel.link.publish_state_soon()
                self._step(vp, self.now)

    def _check_states(self, db):
        from gateway import store

        for vp in self.panels:
            st = store.panel_state(db, vp.site, vp.device)
            if st is None or not st["online"] or st["pending"] != 0:
                # not a check failure: with amqtt the will of a connection the panel already
                # replaced can arrive after the new connection's states (seen in `rating demo`)
                self.warnings.append(
                    "%s/%s: the gateway's last state of the panel says %s, but it is online "
                    "with nothing pending"
                    % (
                        vp.site,
                        vp.device,
                        "nothing" if st is None else "online=%s pending=%s" % (st["online"], st["pending"]),
                    )
                )

    def finish(self):
        from gateway import derive, report, schema

        lap = _Laps(self.timing, "finish_")
        self._final_heartbeat()
        for vp in self.panels:
            timeouts, resent = vp.link_counts()
            self.stats["ack_timeouts"] += timeouts
            self.stats["resends"] += resent
        self.stats["panel_days"] = len(self.panels) * self.sc.days
        self.stats["ack_rtt_ms"] = round(self.ack_rtt * 1000, 2)
        self._deliver_counts()
        lap("counts_s")
        self._gw().stop()
        lap("gateway_stop_s")
        db = schema.open_database(self.db_url)
        try:
            stored = self._collect(db)
            self._check_states(db)
            w = self._mark_lost(stored)
            doc = truth.build(w)
            doc["runner"] = {
                "stats": self.stats,
                "lost": {"%s/%s" % k: v for k, v in self.lost_report.items()},
                "broker": self.broker.kind if self.broker else self.broker_url,
                "firmware_problems": [m for vp in self.panels for m in vp.mismatches],
                "warnings": self.warnings,
            }
            self.problems += [m for vp in self.panels for m in vp.mismatches]
            self.stats["verdicts"] = self._expert(db, doc)
            lap("collect_s")
            now = int(time.time() * 1000)
            derive.rebuild(db, now)
            lap("rebuild_s")
            system = self._system(db)
            rep_site = report.build_report(db, by="site", now_ms=now)
            rep_emp = report.build_report(db, by="employee", now_ms=now)
            system["report"] = {"site": rep_site, "employee": rep_emp}
            self.problems += check.compare_report(check.report_kpis(doc), rep_site, rep_emp)
            with open(os.path.join(self.out, "report-gateway.txt"), "w") as f:
                f.write(report.render_table(rep_site) + "\n\n" + report.render_table(rep_emp) + "\n")
            with open(os.path.join(self.out, "report.json"), "w") as f:
                json.dump({"site": rep_site, "employee": rep_emp}, f, indent=1, default=str)
            lap("report_s")
        finally:
            db.close()
        system["problems"] = self.problems
        return doc, system, w

    def close(self):
        if self.gateway is not None:
            self.gateway.stop()
        for vp in self.panels:
            vp.power_off()
        if self.broker is not None:
            self.broker.close()

    def run(self):
        self._t0 = time.monotonic()
        lap = _Laps(self.timing, "setup_")
        self._prepare()
        lap("world_s")
        self._start_services()
        lap("services_s")
        self._make_panels()  # (CPU) while the gateway process starts on the other core
        lap("panels_s")
        self._gw().wait_connected()
        lap("gateway_s")
        self.timing["setup_s"] = time.monotonic() - self._t0
        self._loop()
        t1 = time.monotonic()
        self.timing["drain_s"] = t1 - self._t0 - self.timing.get("run_s", t1 - self._t0)
        result = self.finish()
        self.timing["finish_s"] = time.monotonic() - t1
        self.timing["total_s"] = time.monotonic() - self._t0
        import resource

        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the gateway(s), stopped brokers
        self.timing["cpu_runner_s"] = me.ru_utime + me.ru_stime
        self.timing["cpu_gateway_s"] = kids.ru_utime + kids.ru_stime
        doc = result[0]
        doc["runner"]["timing"] = self.timing
        from simulator.cli import write_outputs

        write_outputs(self.out, doc, sitefile.site_toml(self.world))
        return result


class _Laps:
    """Seconds of the phases of a step, into `timing` (prefix + name), for bench/simspeed.py."""

    def __init__(self, timing, prefix):
        self.timing, self.prefix, self.t = timing, prefix, time.monotonic()

    def __call__(self, name):
        now = time.monotonic()
        self.timing[self.prefix + name] = now - self.t
        self.t = now


class _Progress:
    """A tqdm bar counting simulated panel-days."""

    def __init__(self, sc, panels):
        from tqdm import tqdm

        self.sc, self.total, self.shown = sc, sc.days * panels, 0
        self.panels = panels
        self.bar = tqdm(
            total=self.total, unit="panel-day", desc=sc.meta["name"], leave=False, dynamic_ncols=True, mininterval=0.5
        )

    def at(self, t):
        sc = self.sc
        done = min(self.total, int((min(t, sc.end_ms) - sc.start_ms) / 86400000.0 * self.panels))
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done

    def close(self):
        self.bar.update(self.total - self.shown)
        self.bar.close()


def _host_port(url):
    from protocol import mqtturl

    host, port, _u, _p, _tls = mqtturl.parse(url, tls=False)
    return host, port


def _readable(sock):
    """True when the socket has data (or EOF) to read now."""
    if sock is None:
        return False
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _ranges(seqs):
    if not seqs:
        return "-"
    out, start, prev = [], seqs[0], seqs[0]
    for s in seqs[1:] + [None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(str(start) if start == prev else "%d-%d" % (start, prev))
        if s is not None:
            start = prev = s
    return ",".join(out)


def run(sc, out_dir, broker=None, db=None, progress=True, root=None):
    """Run the scenario end to end; -> (truth doc, system dict, world). See the module doc."""
    r = Runner(
        sc, out_dir, broker=broker, db=db, progress=progress, root=root, log=lambda line: print(line, file=sys.stderr)
    )
    try:
        return r.run()
    finally:
        r.close()
