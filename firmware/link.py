"""Wi-Fi + MQTT for one panel: connect with backoff and jitter, last will, birth state,
heartbeat, own ack/config subscriptions, and in-order (re)sending of unacked events.

Driven by Panel.step(): Link.step(now) never blocks longer than one socket timeout (the HAL's
MQTT client has timeouts on every socket operation) and does nothing between its deadlines.
Times are uptime ms (clock.Uptime: never wraps).

The link does not know the journal. It reads events through an `outbox` (the app's adapter):
    outbox.acked() -> highest seq the gateway acknowledged
    outbox.head()  -> highest seq appended
    outbox.next_after(seq) -> (seq, wire_bytes) of the first unacked event after seq, or None

QoS (README.md, "QoS decision"): events and state are published with QoS 0. Delivery is
guaranteed end to end by the journal + the gateway's cumulative retained `ack`: an event is
resent (in order) after every reconnect and whenever no ack covers it within the ack timeout,
until an ack does.

Wi-Fi (README.md, "Link"): the ESP32 driver reconnects by itself once a connect was asked for
(ports/esp32/network_wlan.c), and a second WLAN.connect() while it is connecting raises
"Wifi Internal Error". So the link asks once, then only polls isconnected(); it asks again
only when the driver says it is not trying ("idle") or after _WIFI_KICK_MS without a join
(disconnecting first). The MQTT backoff counts broker failures only and starts over when
Wi-Fi comes back: a panel is online seconds after its access point, not minutes.

Failures are logged on the console: a new reason at once, the same one again at most every
_LOG_EVERY_MS (with how often it came meanwhile).
"""

from firmware import const
from protocol import panel

# link states (the simulator reads them); const: compared as plain numbers in the bytecode
OFF = const(0)
JOINING = const(1)
UP = const(2)
_MAX_INBOUND = const(4)  # incoming packets handled per poll
_BACKOFF_MIN_MS = const(1000)  # first retry after a broker failure
_BACKOFF_MAX_MS = const(120000)  # broker retries never further apart than this
_JITTER_PCT = const(25)  # +-25 %: a store's panels do not reconnect in lockstep
_STABLE_MS = const(30000)  # a connection up this long resets the backoff
_WIFI_KICK_MS = const(120000)  # not joined for this long although asked: disconnect, ask again
_WIFI_LOOK_MS = const(15000)  # while joining, the driver's status is read (and logged) this often
_LOG_EVERY_MS = const(60000)  # the same failure is logged at most this often
_BURST = const(10)  # event publishes per step (bounds the resend burst)
_ACK_TIMEOUT_MAX_MS = const(600000)  # ack timeouts double up to this while the gateway is silent


class Link:
    POLL_MS = 50  # look for incoming ack/config this often while connected
    INFLIGHT_MAX = 50  # events published but not yet covered by an ack
    ACK_GRACE_MS = 1000  # after connecting, wait this long for the retained ack
    EVENT_QOS = 0
    STATE_QOS = 0
    SUB_QOS = 1
    WILL_QOS = 1

    def __init__(self, hal, cfg, outbox, on_ack=None, on_config=None, state_fn=None, boot=0):
        self.hal = hal
        self.boot = boot  # this boot's number: goes into the will with conn
        self.outbox = outbox
        self.on_ack = on_ack
        self.on_config = on_config
        self.state_fn = state_fn
        m = cfg["mqtt"]
        root, site, device = m["root"], cfg["site"], cfg["device"]
        # protocol.topics.device_topic's names; root and ids were checked by config.load, so
        # the panel does not keep protocol.topics in RAM for four string formats
        base = "%s/%s/%s/" % (root, site, device)
        self.t_event = base + "event"
        self.t_state = base + "state"
        self.t_ack = base + "ack"
        self.t_config = base + "config"
        self.client_id = "%s-%s" % (site, device)
        self.wifi = cfg["wifi"]
        self.mqtt_cfg = m
        # A password rotated over the air (firmware/secret.py): (ver, password) pairs. `pw` is in
        # use instead of /config.json's once a login proved it (/pw.json); `pw_new` was delivered
        # (/pw.new) and is tried first at every connect until a login with it succeeds (then it
        # is kept for good); after a failed one the current password is used next.
        self.pw, self.pw_new = cfg.get("pw") or (None, None)
        self.pw_old = False
        self.set_timings(cfg["timings"])
        self.state = OFF
        self.client = None
        self.retry_at = 0
        self.backoff_ms = _BACKOFF_MIN_MS
        self.join_deadline = 0  # JOINING: when to look at the Wi-Fi driver's status again
        self.kick_at = 0  # ... and when to start it over (disconnect, connect)
        self.wifi_asked = False  # connect() was asked of the driver (it then keeps trying)
        self.up_since = 0
        self.sent = 0  # highest seq published on this connection
        self.ack_seen = False  # a (retained) ack arrived on this connection
        self.ack_wait_since = None  # when the oldest unacked publish started waiting
        self.ack_timeout_ms = self.base_ack_timeout_ms
        self.next_poll = 0
        self.next_heartbeat = 0
        self.last_tx = 0
        self.state_due = False
        self.now = 0
        self.rx = 0
        self.last_error = None
        self.log_what = None  # the failure logged last, when it may be logged again, times since
        self.log_next = 0
        self.log_quiet = 0
        # counters for state/tests/bench
        self.connects = 0
        # connect attempts since boot: the will and the state carry it, so the gateway can tell
        # a replaced connection's late will from the live connection (protocol README, "state").
        # Counted per attempt, not per success: a half-made connection may still leave a will.
        self.conn = 0
        self.published = 0
        self.resends = 0
        self.ack_timeouts = 0
        self.oversize = 0  # incoming messages larger than the protocol allows, skipped

    def set_timings(self, timings):
        self.base_ack_timeout_ms = timings["ack_timeout_s"] * 1000
        self.ack_timeout_ms = self.base_ack_timeout_ms
        self.heartbeat_ms = timings["heartbeat_s"] * 1000

    @property
    def online(self):
        return self.state == UP

    # ---- the step ----
    def step(self, now):
        self.now = now
        hal = self.hal
        st = self.state
        if st == UP:
            if not hal.wifi_isconnected():  # (the backoff starts over when Wi-Fi is back)
                self._fail(now, "wifi lost", "mqtt lost")
                return
            try:
                self._serve(now)
            except Exception as e:  # OSError, a torn packet: the connection is gone
                if now - self.up_since >= _STABLE_MS:
                    self.backoff_ms = _BACKOFF_MIN_MS
                self._fail(now, e, "mqtt lost")
            return
        if hal.wifi_isconnected():
            if st == JOINING:  # (re)joined: the broker gets a fresh try at once
                self.state = OFF
                self.retry_at = now
                self.backoff_ms = _BACKOFF_MIN_MS
                hal.log("link: wifi up")
            if now >= self.retry_at:
                self._connect(now)
            return
        if st == OFF:
            self.state = JOINING
        self._join(now)

    def _join(self, now):
        """Wi-Fi is down: leave the joining to the driver, which keeps trying once asked. Look
        at its status now and then (the reason goes to the console); ask again only when it is
        not trying ("idle") or has not joined for _WIFI_KICK_MS (disconnecting first)."""
        if self.wifi_asked and now < self.join_deadline:
            return
        hal = self.hal
        why = hal.wifi_status()
        self.join_deadline = now + _WIFI_LOOK_MS
        if self.wifi_asked:
            self._say(now, "wifi not joined: %s" % why)
            if why != "idle" and now < self.kick_at:
                return
        self.kick_at = now + _WIFI_KICK_MS
        try:
            if self.wifi_asked and why != "idle":  # stuck: a connect while connecting raises
                hal.wifi_disconnect()
            hal.wifi_connect(self.wifi["ssid"], self.wifi["password"])
            self.wifi_asked = True
        except Exception as e:  # e.g. "Wifi Internal Error"; asked again at the next look
            self._say(now, "wifi connect failed: %s" % e)

    def _say(self, now, what):
        """Log a link problem: a new one at once, the same again at most every LOG_EVERY_MS."""
        if what == self.log_what and now < self.log_next:
            self.log_quiet += 1
            return
        more = " (%d more since)" % self.log_quiet if what == self.log_what and self.log_quiet else ""
        self.hal.log("link: %s%s" % (what, more))
        self.log_what = what
        self.log_next = now + _LOG_EVERY_MS
        self.log_quiet = 0

    # ---- connecting ----
    def _connect(self, now):
        m = self.mqtt_cfg
        new = None if self.pw_old else self.pw_new
        pw = new or self.pw
        try:
            c = self.hal.mqtt(
                self.client_id,
                m["host"],
                m["port"],
                m.get("user"),
                pw[1] if pw else m.get("password"),
                m.get("keepalive") or 60,
                bool(m.get("ssl")),
            )
            c.set_callback(self._on_message)
            self.client = c
            self.conn += 1
            c.connect(True, (self.t_state, panel.will_payload(self.boot, self.conn), True, self.WILL_QOS))
            self.pw_old = False
            if new is not None:  # the new password works: from now on it is the one (state pwv)
                self.pw = new
                self.pw_new = None
                # pw.new becomes pw.json in one rename: a power cut leaves pw.new, tried first
                # again at the next boot
                import os

                try:
                    os.rename(self.hal.path("pw.new"), self.hal.path("pw.json"))
                except Exception as e:
                    self.hal.log("link: new password not kept: %s" % e)
            self.state = UP  # before subscribe: retained messages arrive inside subscribe()
            self.up_since = now
            self.ack_seen = False
            self.sent = self.outbox.acked()
            self.ack_wait_since = None
            self.ack_timeout_ms = self.base_ack_timeout_ms
            c.subscribe(self.t_ack, self.SUB_QOS)
            c.subscribe(self.t_config, self.SUB_QOS)
            self._publish_state(now)  # birth
        except Exception as e:
            # a login with the new password failed: the current one next (the broker may not
            # have switched yet), at once when it was refused (CONNACK 4/5); the new one is
            # tried again at the connect after that
            self.pw_old = new is not None
            self._fail(now, e, "mqtt connect failed")
            if new is not None and "user/password" in str(e):
                self.retry_at = now
            return
        self.connects += 1
        self.last_error = None
        self.log_what = None  # the next failure is news again
        self.next_poll = now
        self.hal.log("link: mqtt up %s:%s" % (m["host"], m["port"]))

    def _fail(self, now, why, what):
        """The broker failed us (connect refused or timed out, connection lost): close, log,
        wait backoff +- jitter, try again."""
        c, self.client = self.client, None
        if c is not None:
            try:
                c.close()
            except Exception:
                pass
        self.state = OFF
        self.last_error = str(why) or why.__class__.__name__
        b = self.backoff_ms
        spread = b * _JITTER_PCT // 100
        self.retry_at = now + b - spread + self.hal.random(2 * spread + 1)
        self.backoff_ms = min(b * 2, _BACKOFF_MAX_MS)
        self._say(now, "%s: %s" % (what, self.last_error))

    def disconnect(self):
        """Clean shutdown (the broker does not publish the will)."""
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:
                pass
        self.client = None
        self.state = OFF

    # ---- connected ----
    def _serve(self, now):
        c = self.client
        if c is None:
            raise OSError("no client")
        if now >= self.next_poll:
            self.next_poll = now + self.POLL_MS
            for _ in range(_MAX_INBOUND):
                before = self.rx
                c.check_msg()
                if self.rx == before:
                    break
        self._check_ack_timeout(now)
        self._pump(now)
        if self.state_due or now >= self.next_heartbeat:
            self._publish_state(now)
        # keepalive (PINGREQ when quiet, half-open detection) is the client's, in check_msg()

    def _can_send(self):
        if self.state != UP:
            return False
        if not self.ack_seen and self.now - self.up_since < self.ACK_GRACE_MS:
            return False
        return self.sent < self.outbox.head() and self.sent - self.outbox.acked() < self.INFLIGHT_MAX

    def _pump(self, now):
        """Publish unacked events after `sent`, in seq order, at most BURST per step."""
        acked = self.outbox.acked()
        if self.sent < acked:
            self.sent = acked
        n = 0
        while n < _BURST and self._can_send():
            rec = self.outbox.next_after(self.sent)
            if rec is None:  # the rest was dropped (journal overflow) or acked meanwhile
                self.sent = self.outbox.head()
                if self.ack_wait_since is None:  # or unreadable now: the ack timeout retries
                    self.ack_wait_since = now
                break
            seq, data = rec
            c = self.client
            if c is None:
                raise OSError("no client")
            c.publish(self.t_event, data, False, self.EVENT_QOS)
            self.sent = seq
            self.published += 1
            self.last_tx = now
            n += 1
            if self.ack_wait_since is None:
                self.ack_wait_since = now

    def kick(self):
        """The app appended an event: publish it in this same step if the window allows."""
        if self.state == UP:
            try:
                self._pump(self.now)
            except Exception as e:
                self._fail(self.now, e, "mqtt lost")

    def _check_ack_timeout(self, now):
        if self.ack_wait_since is None:
            return
        acked = self.outbox.acked()
        if self.sent <= acked:
            self.ack_wait_since = None
            return
        if now - self.ack_wait_since >= self.ack_timeout_ms:
            # No ack covers what we sent: the broker may have dropped the gateway's queue, or
            # the gateway is down. Rewind and resend everything unacked, in order (MQTT-FACTS 1).
            self.ack_timeouts += 1
            self.resends += self.sent - acked
            self.hal.log(
                "link: no ack for seq %d..%d in %d s, resending" % (acked + 1, self.sent, self.ack_timeout_ms // 1000)
            )
            self.sent = acked
            self.ack_wait_since = None
            self.ack_timeout_ms = min(self.ack_timeout_ms * 2, _ACK_TIMEOUT_MAX_MS)

    def _publish_state(self, now):
        self.state_due = False
        self.next_heartbeat = now + self.heartbeat_ms
        if self.state_fn is None:
            return
        try:
            s = self.state_fn()
            s["conn"] = self.conn
            if self.pw is not None:  # the version of the password rotated over the air in use
                s["pwv"] = self.pw[0]
            if self.pw_new is not None:  # ... and of the one held for the next login
                s["pwn"] = self.pw_new[0]
            data = panel.encode_state(s)
        except Exception as e:  # a firmware bug must not take the link down: say it and go on
            self.hal.log("link: state not sent: %s" % e)
            return
        c = self.client
        if c is None:
            raise OSError("no client")
        c.publish(self.t_state, data, True, self.STATE_QOS)
        self.last_tx = now

    def publish_state_soon(self):
        self.state_due = True

    # ---- incoming ----
    def _on_message(self, topic, msg):
        self.rx += 1
        if msg is None:  # larger than the protocol allows: the client read past it unkept
            self.oversize += 1
            self._say(self.now, "oversize message skipped")
            self.publish_state_soon()
            return
        # the broker sends only what we subscribed to: our own ack and config topics (bytes)
        if topic.endswith(b"/ack"):
            try:
                seq = panel.decode_ack(msg)
            except Exception as e:
                self.hal.log("link: bad ack ignored: %s" % e)
                return
            self.ack_seen = True
            before = self.outbox.acked()
            if self.on_ack is not None:
                self.on_ack(seq)
            if seq > self.outbox.head():  # refused (a forged ack): nothing trimmed, say so
                self._say(self.now, "ack %d above our seq refused" % seq)
                self.publish_state_soon()
            elif self.outbox.acked() > before:
                # progress: the gateway is alive; restart the ack clock for what is still out
                self.ack_timeout_ms = self.base_ack_timeout_ms
                self.ack_wait_since = self.now if self.sent > self.outbox.acked() else None
        elif topic.endswith(b"/config"):
            if self.on_config is not None:
                self.on_config(msg)
