"""`rating gateway run`: the MQTT shell around gateway.ingest.Ingestor.

Threads: paho's network thread only enqueues what arrives (messages, PUBACK confirmations,
connects); the main thread owns the database and does everything else, in order:

    messages -> Ingestor.handle -> (batch full, or the queue went quiet, or BATCH_MS passed)
    -> Ingestor.flush (one transaction, COMMIT) -> publish the panels' retained acks
    -> only then PUBACK the MQTT messages of that batch to the broker.

The MQTT PUBACK is sent manually after commit (paho `manual_ack`), so a gateway killed
mid-batch leaves those messages with the broker, which redelivers them to the persistent
session (fixed client id, clean_session=False). The panel's end-to-end ack is the second line
of defence: a panel keeps every event until an ack covers it.
"""

import collections
import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, fields

from gateway import brokerlink, ingest, retained, rotation, schema, store
from gateway import db as dbmod
from gateway import limits as limits_mod
from gateway.i18n import _
from gateway.worker import Worker, WriteTurn
from protocol import ProtocolError, mqtturl, topics

log = logging.getLogger("gateway.service")


class SettingsError(ValueError):
    """A gateway setting is wrong; the message names the field and what to do."""


@dataclass
class GatewaySettings:
    broker: str = ""  # mqtt://host:port; empty: start the embedded broker
    broker_port: int = 1883  # the embedded broker's port
    # the embedded broker's address: loopback by default; "0.0.0.0" or a LAN address lets panels
    # on the shop's Wi-Fi in (always with accounts: the embedded broker has no anonymous access)
    broker_host: str = "127.0.0.1"
    db: str = ""  # database URL; empty: SQLite in data_dir
    data_dir: str = ""  # empty: $RATING_DATA or ./rating-data
    root: str = topics.DEFAULT_ROOT
    client_id: str = "rating-gateway"
    batch_max: int = 500  # messages per transaction at most
    batch_ms: int = 50  # a buffered message waits at most this long for its commit
    inflight: int = 50  # paho's outgoing QoS 1 window (MQTT-FACTS pitfall 3: keep 20-100)
    max_unconfirmed: int = 2000  # outgoing publishes not yet PUBACKed (pitfall 2: < 65535)
    config_push_s: float = 5.0  # how often panels' configs are checked and pushed
    derive_tick_s: float = 10.0  # how often panels' windows are advanced by the clock
    # under a backlog acks go out at most this often (a panel's ack timeout is seconds); a
    # simulation running ~10^4 x real time sets it to a few ms
    ack_coalesce_ms: int = 100
    # a batch is committed when no further message came for this long (0: as soon as the inbox
    # is empty); the simulator, waiting in real time for each ack, sets 0
    batch_quiet_ms: float = 2.0
    # paho's reconnect backoff after a lost broker: the first try after reconnect_min_s,
    # doubling up to reconnect_max_s; the simulator, which restarts its own broker at once,
    # sets 0.05 and 1
    reconnect_min_s: float = 1.0
    reconnect_max_s: int = 10
    tcp_nodelay: bool = False  # no Nagle delay on the broker connection (simulations)
    # login and TLS towards `broker` (gateway/brokerlink.py): the password is read from a file
    broker_password_file: str = ""
    broker_cafile: str = ""  # mqtts://: the CA of the broker's certificate (empty: the system's)
    broker_certfile: str = ""  # optional client certificate (and its key)
    broker_keyfile: str = ""
    # per-panel limits (gateway/limits.py) on what is not in the panel's send window
    panel_rate: float = 50.0  # messages a second
    panel_burst: int = 2000  # ... at once
    dead_letters_per_panel: int = 100  # stored one by one per panel and window; the rest counted
    dead_letters_total: int = 2000  # ... for all panels together
    limit_window_s: int = 600
    dead_letter_days: float = 90.0  # retention of dead letters and refusal counts; 0: forever
    # the retention of raw events (docs/partitions.md): archive folder and months kept; the worker
    # archives the months that are over and purges what is archived and derived. Empty / 0: off
    raw_archive_dir: str = ""
    raw_keep_months: int = 0
    retained_check_s: float = 600.0  # how often the retained acks and configs are checked
    inbox_max: int = 50000  # messages waiting in memory; QoS 0 ones beyond are dropped (resent)
    # several gateways on one PostgreSQL: MQTT v5 shared subscriptions ($share/<share>/...), the
    # panels' messages spread over them; empty: this gateway alone gets every message
    share: str = ""
    # --share: how long the broker keeps a stopped gateway's session. Mosquitto 2 goes on dealing a
    # disconnected member its share of the messages until then (dropping the panels' QoS 0 ones:
    # they come again only with the panels' resends), so a restart fits in, a dead one not long
    session_expiry_s: int = 60

    _WHOLE = (
        "broker_port",
        "batch_max",
        "batch_ms",
        "inflight",
        "max_unconfirmed",
        "ack_coalesce_ms",
        "panel_burst",
        "dead_letters_per_panel",
        "dead_letters_total",
        "limit_window_s",
        "inbox_max",
        "session_expiry_s",
    )
    _SECONDS = ("config_push_s", "derive_tick_s", "panel_rate", "retained_check_s")

    def check(self):
        for f in self._WHOLE:
            value = getattr(self, f)
            if type(value) is not int or value < 1:
                raise SettingsError(
                    _("%(name)s: must be a whole number >= 1, got %(value)r") % {"name": f, "value": value}
                )
        for f in self._SECONDS:
            value = getattr(self, f)
            if type(value) not in (int, float) or value <= 0:
                raise SettingsError(_("%(name)s: must be a number > 0, got %(value)r") % {"name": f, "value": value})
        if type(self.batch_quiet_ms) not in (int, float) or not 0 <= self.batch_quiet_ms <= self.batch_ms:
            raise SettingsError(
                _("batch_quiet_ms: must be a number of ms from 0 to batch_ms, got %r") % (self.batch_quiet_ms,)
            )
        if type(self.reconnect_max_s) is not int or not 1 <= self.reconnect_max_s <= 3600:
            raise SettingsError(
                _("reconnect_max_s: must be a whole number of seconds from 1 to 3600, got %r") % (self.reconnect_max_s,)
            )
        if type(self.reconnect_min_s) not in (int, float) or not 0.01 <= self.reconnect_min_s <= self.reconnect_max_s:
            raise SettingsError(
                _("reconnect_min_s: must be a number of seconds from 0.01 to reconnect_max_s (%(max)d), got %(value)r")
                % {"max": self.reconnect_max_s, "value": self.reconnect_min_s}
            )
        if type(self.raw_keep_months) is not int or self.raw_keep_months < 0:
            raise SettingsError(_("raw_keep_months: must be a whole number of months >= 0 (0: keep forever)"))
        if bool(self.raw_keep_months) != bool(self.raw_archive_dir):
            raise SettingsError(_("raw_keep_months and raw_archive_dir go together: set both (or neither)"))
        if type(self.dead_letter_days) not in (int, float) or self.dead_letter_days < 0:
            raise SettingsError(_("dead_letter_days: must be a number of days >= 0 (0: keep forever)"))
        self._check_ranges()
        if self.broker:
            broker_address(self.broker)
            if self.broker_host != GatewaySettings.broker_host:
                raise SettingsError(_("broker_host: only for the embedded broker (no `broker` URL); drop one of them"))
        if not self.broker_host or not self.broker_host.isascii() or " " in self.broker_host:
            raise SettingsError(_("broker_host: an IP address or host name to listen on, got %r") % (self.broker_host,))
        try:
            brokerlink.check_settings(self)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        return self

    def _check_ranges(self):
        if self.broker_port > 65535:
            raise SettingsError(_("broker_port: must be 1..65535, got %d") % self.broker_port)
        if not 1 <= self.inflight <= 1000:
            raise SettingsError(_("inflight: must be 1..1000 (20-100 is fastest), got %d") % self.inflight)
        if self.max_unconfirmed > 60000:
            raise SettingsError(
                _("max_unconfirmed: must stay below 60000 (paho reuses message ids above 65535), got %d")
                % self.max_unconfirmed
            )
        try:
            topics.check_root(self.root)
        except ProtocolError as exc:
            raise SettingsError(str(exc)) from None
        if not self.client_id or not self.client_id.isascii() or len(self.client_id) > 64:
            raise SettingsError(
                _("client_id: must be a non-empty ASCII name of at most 64 characters, got %r") % (self.client_id,)
            )
        self._check_share()

    def _check_share(self):
        if not self.share:
            return
        try:
            topics.check_id(self.share, "share")
        except ProtocolError as exc:
            raise SettingsError(_("%s (the shared subscription's group name)") % exc) from None
        if not self.db_url().startswith(("postgresql://", "postgres://")):
            raise SettingsError(
                _(
                    "share: several gateways need one PostgreSQL database (SQLite lets one process write"
                    " and each gateway would keep its own file); give --db postgresql://... or leave --share out"
                )
            )
        if not self.broker:
            raise SettingsError(
                _(
                    "share: several gateways need one external MQTT v5 broker (Mosquitto 2); the embedded"
                    " broker serves one gateway: give --broker mqtt[s]://HOST:PORT or leave --share out"
                )
            )
        if self.session_expiry_s > 0xFFFFFFFE:
            raise SettingsError(_("session_expiry_s: at most 4294967294 seconds, got %d") % self.session_expiry_s)

    def db_url(self):
        if self.db:
            return self.db
        if self.data_dir:
            return "sqlite:///" + os.path.join(os.path.abspath(self.data_dir), dbmod.DEFAULT_DB_FILE)
        return dbmod.default_url()

    def limits(self) -> limits_mod.Limits:
        return limits_mod.Limits(
            limits_mod.LimitSettings(
                rate=float(self.panel_rate),
                burst=self.panel_burst,
                letters=self.dead_letters_per_panel,
                letters_total=self.dead_letters_total,
                window_ms=self.limit_window_s * 1000,
            )
        )


def load_settings(path, **overrides):
    """GatewaySettings from a TOML file (top-level keys = the field names) plus CLI overrides
    (None values ignored). Errors name the file and the field."""
    values = {}
    if path:
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except FileNotFoundError:
            raise SettingsError("config file %s not found" % path) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError("config file %s is not valid TOML: %s" % (path, exc)) from None
        known = {f.name: f for f in fields(GatewaySettings)}
        for key, value in values.items():
            if key not in known:
                raise SettingsError("%s: unknown setting %r; known: %s" % (path, key, ", ".join(sorted(known))))
            want = type(getattr(GatewaySettings, key))
            if want is bool:
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, want) and not isinstance(value, bool) or (want is float and type(value) is int)
            if not ok:
                raise SettingsError(
                    "%s: %s must be %s, got %r"
                    % (
                        path,
                        key,
                        {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}[want],
                        value,
                    )
                )
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        brokerlink.check_command_line_url(overrides.get("broker"))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    try:
        return GatewaySettings(**values).check()
    except SettingsError as exc:
        raise SettingsError("%s%s" % ("%s: " % path if path else "", exc)) from None


def broker_address(url):
    """(host, port, user, password) of the broker URL (protocol.mqtturl, the one parser):
    mqtt[s]://[user[:password]@]host[:port]; mqtts:// is TLS (brokerlink.uses_tls), port 8883 by default."""
    try:
        return mqtturl.parse(url)[:4]
    except ProtocolError as exc:
        raise SettingsError(str(exc)) from None


def _now_ms():
    return int(time.time() * 1000)


class _Inbox:
    """What paho's thread hands to the main thread: a deque plus a wake-up event. Cheaper than
    queue.Queue (no lock per item), which matters at tens of thousands of messages a second."""

    def __init__(self):
        self._items = collections.deque()
        self._ready = threading.Event()

    def __len__(self):
        return len(self._items)

    def put(self, item):
        self._items.append(item)
        if not self._ready.is_set():
            self._ready.set()

    def get_nowait(self):
        try:
            return self._items.popleft()
        except IndexError:
            raise queue.Empty from None

    def get(self, timeout):
        if self._items:
            return self._items.popleft()
        self._ready.clear()
        if not self._items:  # a put() between the check and clear() would be missed otherwise
            self._ready.wait(timeout)
        return self.get_nowait()

    def empty(self):
        return not self._items


class GatewayService:
    """One gateway process: broker connection, batches, acks, the retained check, shutdown.
    Derivation, the configs due and the retention run on a background worker (gateway/worker.py)."""

    UNREACHABLE_REPEAT_S = 300.0  # an unchanged "unreachable" line is repeated this often
    TAKEOVER_S = 5.0  # a connection closed this soon after it was accepted counts as taken over
    DB_RETRY_S = 1.0
    SHUTDOWN_CONFIRM_S = 5.0
    BACKLOG_BATCH = 100  # a batch this big means the gateway is working through a backlog
    BACKLOG_HOLD_S = 0.25  # ... and the worker starts nothing for this long after it
    DUTY_CHECK_S = 5.0  # --share: how often the duty lock is looked at

    def __init__(self, settings, out=None):
        self.settings = settings
        self.out = out  # where progress lines go (None: logging only)
        self.q = _Inbox()
        self.stop_event = threading.Event()
        self.embedded = None
        self.client = None
        self.db = None
        self.ingestor: ingest.Ingestor | None = None
        self.worker: Worker | None = None
        self.turn = WriteTurn()  # the ingest thread writes first, the worker in between
        self._gen = 0  # connection generation, bumped by paho's thread on each connect
        self._sub_mid = None
        self._session_present = False
        self._closing = False
        self._unconfirmed = {}  # mid -> (topic, payload, kind) of our outgoing QoS 1 publishes
        self._puback_later = []  # (gen, mid, qos) of messages in the uncommitted batch
        self.connected = threading.Event()
        self._acks_due = {}  # ack topic -> payload, committed, not yet published
        self._acks_sent = 0.0
        self._last_batch = 0  # messages in the last committed batch
        self._batch_started: float | None = None  # when the first message of the open batch came
        self._audit: retained.Audit | None = None
        self._audit_deadline = 0.0
        self._next_audit = float("inf")  # set on connect
        self._config_wanted: dict[str, bytes] | None = None  # configs in force, as last read
        self._configs_pushed: dict[str, bytes] = {}  # configs this run published and got confirmed
        self.shed = 0  # QoS 0 messages dropped because the inbox was full
        # passwords rotated over the air (gateway/rotation.py): (site, device) -> (ver, plaintext)
        # delivered by this run, until the panel logged in with it; in memory only
        self._secrets: dict[tuple[str, str], tuple[int, str]] = {}
        self._next_rotation = 0.0
        self._broker_url = ""  # redacted, for the lines the operator reads
        self._unreachable = None  # (since, last error, last said: monotonic s) while the broker is unreachable
        self._connected_at = None  # monotonic time of the last accepted connection
        self._short_lived = 0  # connections in a row the broker closed right after accepting them
        self._sole_fd = None  # SQLite: the flock that keeps a second gateway off the database
        self._duty = False  # --share: this gateway pushes configs and checks retained (_on_duty)
        self._duty_checked = -float("inf")

    # ---- paho thread: enqueue only ---------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if self.settings.tcp_nodelay:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reason_code.is_failure:
            self._say(
                _("gateway: broker %(url)s refused the connection: %(reason)s")
                % {"url": self._broker_url, "reason": reason_code}
            )
            return
        if self._unreachable is not None:
            self._say(
                _("gateway: broker %(url)s reachable again after %(s)d s")
                % {"url": self._broker_url, "s": round(time.monotonic() - self._unreachable[0])}
            )
            self._unreachable = None
        self._connected_at = time.monotonic()
        self._gen += 1
        self._session_present = bool(flags.session_present)
        result, self._sub_mid = client.subscribe([(f, 1) for f in subscriptions(self.settings)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        # "connected" only once the broker confirmed the subscriptions: from here on nothing
        # published to our topics can pass us by
        if mid == self._sub_mid:
            if any(rc.is_failure for rc in reason_codes):
                log.error("broker refused the subscriptions: %s", reason_codes)
                return
            self.q.put(("connected", self._gen, self._session_present))

    def _on_connect_fail(self, client, userdata):
        # paho calls this inside its `except OSError` around the connect: the error is at hand
        error = sys.exc_info()[1]
        text = str(error) if error is not None else "no answer"
        now = time.monotonic()
        if (
            self._unreachable is None
            or self._unreachable[1] != text
            or now - self._unreachable[2] >= self.UNREACHABLE_REPEAT_S
        ):
            since = now if self._unreachable is None else self._unreachable[0]
            self._say(
                _(
                    "gateway: broker %(url)s unreachable (%(error)s); retrying every %(s)d s, nothing is lost "
                    "meanwhile (panels keep their events until acked)"
                )
                % {"url": self._broker_url, "error": text, "s": self.settings.reconnect_max_s}
            )
            self._unreachable = (since, text, now)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if self._closing:
            return
        lived = None if self._connected_at is None else time.monotonic() - self._connected_at
        self._connected_at = None
        if lived is not None and lived < self.TAKEOVER_S:
            self._short_lived += 1
        else:
            self._short_lived = 0
        if self._short_lived >= 2:
            # MQTT 3.1.1: a broker drops the older of two connections with one client id, without
            # a reason; both reconnect and knock each other off, every second or two
            self._say(
                _(
                    "gateway: broker %(url)s closed the connection %(s)s s after accepting it, %(n)d times in "
                    "a row: another client is probably connected with the client id '%(id)s' (a second "
                    "gateway, or `rating record`); give each its own --client-id and broker account"
                )
                % {"url": self._broker_url, "s": "%.1f" % lived, "n": self._short_lived, "id": self.settings.client_id}
            )
        elif lived is not None:
            self._say(
                _("gateway: lost the broker %(url)s (%(reason)s); reconnecting")
                % {"url": self._broker_url, "reason": reason_code}
            )

    def _on_message(self, client, userdata, msg):
        if self._closing:
            return  # not PUBACKed: the broker keeps it for the next run
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        payload = msg.payload
        if topic.endswith(("/ack", "/config")):  # our own topics: the retained check (QoS 0)
            self.q.put(("retained", topic, payload[: store.DEAD_LETTER_KEEP + 1], msg.retain))
            return
        if len(payload) > store.DEAD_LETTER_KEEP:
            # no valid message is this big: keep what a dead letter keeps, not the whole body
            # (two 50 MB messages used to add 345 MB of RSS on their way to the database)
            payload = store.clip(payload)
        if msg.qos == 0 and len(self.q) >= self.settings.inbox_max:
            # QoS 0 (what panels publish) beyond what we can hold: dropped, like the network
            # might; never acked, so the panel resends it after its ack timeout
            self.shed += 1
            if self.shed == 1 or self.shed % 10000 == 0:
                log.warning("inbox full (%d): %d QoS 0 messages dropped so far", len(self.q), self.shed)
            return
        self.q.put(("msg", topic, payload, _now_ms(), self._gen, msg.mid, msg.qos))

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.q.put(("puback", mid))

    # ---- set-up ----------------------------------------------------------------------------
    def start(self):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        s = self.settings
        url = s.db_url()
        self.db = schema.open_database(url)
        self._claim_database()
        days = s.dead_letter_days
        self.worker = Worker(
            url,
            s.root,
            tick_s=s.derive_tick_s,
            config_push_s=s.config_push_s,
            retention_ms=int(days * 86400000) if days else None,
            turn=self.turn,
            raw_archive_dir=s.raw_archive_dir,
            raw_keep_months=s.raw_keep_months,
        ).start()
        # derivation is not on the ack path: a commit only hands its panels to the worker
        self.ingestor = ingest.Ingestor(
            self.db, s.root, on_commit=self.worker.changed, limits=s.limits(), shared=bool(s.share)
        )
        broker_url = s.broker
        if not broker_url:
            from gateway.broker import EmbeddedBroker

            # its accounts are the database's; the gateway logs in with a password made up now
            self.embedded = EmbeddedBroker.for_gateway(s.broker_port, url, s.root, host=s.broker_host).start()
            broker_url = self.embedded.url
            if s.broker_host == "0.0.0.0":  # every interface: this process comes in through loopback
                broker_url = "mqtt://127.0.0.1:%d" % s.broker_port
            user, password = self.embedded.gateway_login or (None, None)
        else:
            user, password = brokerlink.login(s)
            # a switch of a panel's password the last run recorded but could not reload
            self._reload_accounts(quiet=True)
        host, port, _user, _password = broker_address(broker_url)
        tls = brokerlink.tls_context(s) if brokerlink.uses_tls(broker_url) else None
        if tls is not None:
            brokerlink.check_tls(broker_url, host, port, tls)
        connect_args = {}
        if s.share:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            # shared subscriptions are MQTT v5; the session stays while the gateway is down, so a
            # restarted (SIGKILLed) gateway gets back the QoS 1 messages the broker gave it
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
            connect_args = {"clean_start": False, "properties": props}
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=s.client_id,
                clean_session=False,
                protocol=mqtt.MQTTv311,
                manual_ack=True,
            )
        if user:
            client.username_pw_set(user, password)
        if tls is not None:
            client.tls_set_context(tls)
        client.max_inflight_messages_set(s.inflight)
        client.max_queued_messages_set(0)  # our own bound is max_unconfirmed
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._broker_url = _redact(broker_url)
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.connect_async(host, port, keepalive=30, **connect_args)
        client.loop_start()
        self.client = client
        self._say(
            (
                _("gateway: broker %(url)s (embedded), database %(db)s, root %(root)s")
                if self.embedded
                else _("gateway: broker %(url)s, database %(db)s, root %(root)s")
            )
            % {"url": _redact(broker_url), "db": _redact(self.db.url), "root": s.root}
            + (
                _(", shared subscriptions (group %(group)s, client id %(id)s)") % {"group": s.share, "id": s.client_id}
                if s.share
                else ""
            )
        )
        if self.embedded and not _loopback(s.broker_host):
            self._say(
                _(
                    "gateway: the embedded broker listens on %(host)s:%(port)d for clients with a broker account "
                    "(no anonymous access); without TLS, passwords and events cross the network in clear: on a "
                    "shared Wi-Fi run Mosquitto with TLS instead (docs/install.md)"
                )
                % {"host": s.broker_host, "port": s.broker_port}
            )
        return self

    def _claim_database(self):
        """Refuse a second gateway on this database unless every one of them shares the
        subscriptions (each would get every message and trust its own cache of the panels).
        PostgreSQL: a session advisory lock, exclusive alone, shared with --share (it ends with
        the connection, a SIGKILLed gateway's too). SQLite: an exclusive flock on a file next to
        the database (--share is refused there already)."""
        assert self.db is not None
        share = self.settings.share
        if self.db.dialect == "postgresql":
            how = "pg_try_advisory_lock_shared" if share else "pg_try_advisory_lock"
            if not self.db.scalar("SELECT %s(?, ?)" % how, (SOLE_LOCK, 0)):
                raise SettingsError(
                    "another gateway %s runs on this database; several gateways must all run with the same --share GROUP"
                    % ("without --share" if share else "with --share")
                )
            return
        path = dbmod.sqlite_path(self.db.url)
        if path == ":memory:":
            return
        import fcntl

        fd = os.open(path + ".gateway-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SettingsError(
                "another gateway runs on %s; several gateways need one PostgreSQL database and --share GROUP"
                " (SQLite lets one process write)" % path
            ) from None
        self._sole_fd = fd  # held until the process ends

    def _say(self, text):
        log.info(text)
        if self.out:
            print(text, file=self.out, flush=True)

    def _ingestor(self) -> ingest.Ingestor:
        assert self.ingestor is not None, "start() first"
        return self.ingestor

    def _worker(self) -> Worker:
        assert self.worker is not None, "start() first"
        return self.worker

    def _mqtt(self):
        assert self.client is not None, "start() first"
        return self.client

    # ---- main loop ---------------------------------------------------------------------------
    def run(self):
        """Serve until stop() (or SIGTERM/SIGINT via install_signal_handlers)."""
        while not self.stop_event.is_set():
            if self._take_messages():
                continue  # more may come right away; the quiet timeout decides
            if self._ingestor().due():
                self._commit_batch()
            self._between_batches()
        self._shutdown()

    def _wait_s(self) -> float:
        """How long the loop may wait for the next message: the batch's quiet/age bound when
        messages are buffered, the ack coalescing bound when acks are due, else 0.1 s."""
        timeout = 0.1
        if self._acks_due:
            timeout = max(0.0, min(timeout, self._acks_sent + self.settings.ack_coalesce_ms / 1000 - time.monotonic()))
        if len(self._ingestor()):
            if self._batch_started is None:  # buffered by _publish's wait, before any batch here
                self._batch_started = time.monotonic()
            age = time.monotonic() - self._batch_started
            timeout = max(0.0, min(self.settings.batch_quiet_ms / 1000, self.settings.batch_ms / 1000 - age))
        return timeout

    def _take_messages(self) -> bool:
        """Wait for what paho's thread handed over and dispatch it, up to a full batch. True when
        the batch is neither full nor old yet (more may come at once: keep gathering)."""
        ingestor, s = self._ingestor(), self.settings
        try:
            item = self.q.get(timeout=self._wait_s())
        except queue.Empty:
            return False
        while True:
            if item[0] == "msg" and not len(ingestor):
                self._batch_started = time.monotonic()
            self._dispatch(item)
            if len(ingestor) >= s.batch_max:
                break
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
        started = self._batch_started
        return (
            bool(len(ingestor))
            and len(ingestor) < s.batch_max
            and (started is not None and time.monotonic() - started < s.batch_ms / 1000)
        )

    def _between_batches(self):
        """Acks, configs and the retained check, after a batch (or an idle wait)."""
        self._publish_acks()
        if not self._on_duty():
            return
        self._push_configs()
        self._rotate_passwords()
        now = time.monotonic()
        if self._audit is not None and (self._audit.done or now >= self._audit_deadline):
            self._finish_audit()
        elif self._audit is None and now >= self._next_audit and self.connected.is_set():
            self._start_audit()

    def _on_duty(self) -> bool:
        """Whether this gateway pushes the configs and checks the retained acks and configs.
        Alone: always. Several (--share): the one holding the duty lock of the database (taken
        by the next one when its connection ends), so two gateways never correct each other's
        config publishes as foreign ones."""
        if not self.settings.share:
            return True
        now = time.monotonic()
        if now >= self._duty_checked + self.DUTY_CHECK_S:
            self._duty_checked = now
            try:
                duty = self.db is not None and self.db.try_session_lock(DUTY_LOCK)
            except Exception as exc:
                log.warning("could not check the duty lock (%s)", exc)
                duty = False
            if duty != self._duty:
                self._say("gateway: %s the configs and the retained check" % ("takes over" if duty else "leaves"))
            self._duty = duty
        return self._duty

    def _dispatch(self, item):
        kind = item[0]
        if kind == "msg":
            _kind, topic, payload, received_ms, gen, mid, qos = item
            self._ingestor().handle(topic, payload, received_ms)
            if qos:
                self._puback_later.append((gen, mid, qos))
        elif kind == "puback":
            done = self._unconfirmed.pop(item[1], None)
            if done and done[2] == "config":
                # in force now, recorded by the worker soon (never with a password's tail)
                payload = rotation.without_password(done[1])[0]
                self._configs_pushed[done[0]] = payload
                self._worker().pushed(done[0], payload)
        elif kind == "retained":
            self._retained(item[1], item[2], item[3])
        elif kind == "connected":
            _kind, gen, session_present = item
            self.connected.set()
            # not translated: the simulator and the tests wait for this line in the gateway's log
            self._say("gateway: connected to the broker (session %s)" % ("resumed" if session_present else "new"))
            # a broker restarted without persistence has lost the retained acks and configs:
            # check what it holds (from the main loop, not nested inside a waiting _publish)
            self._next_audit = 0.0

    def _commit_batch(self):
        self._last_batch = len(self._ingestor())
        failures = 0
        while True:
            try:
                with self.turn.ingest():
                    acks = self._ingestor().flush()
                break
            except Exception as exc:
                failures += 1
                log.error("database write failed (%s); retrying in %.0f s, nothing acked", exc, self.DB_RETRY_S)
                if self.stop_event.is_set() and failures >= 3:
                    return False  # shutting down: the broker and the panels still hold the batch
                time.sleep(self.DB_RETRY_S)
        if self._last_batch >= self.BACKLOG_BATCH or len(self.q) >= self.BACKLOG_BATCH:
            self.turn.hold(self.BACKLOG_HOLD_S)  # a backlog: the worker waits until it is worked off
        committed, self._puback_later = self._puback_later, []
        for topic, payload, _retain, _qos in acks:
            self._acks_due[topic] = payload  # the newest ack of a panel replaces an unsent one
        gen = self._gen
        for g, mid, qos in committed:
            if g == gen:  # a PUBACK for an older connection's message id could ack a new one
                self._mqtt().ack(mid, qos)
        return True

    def _publish_acks(self, force=False):
        """Publish the acks committed since the last round. Caught up (small batches): at once,
        a panel waiting for its ack should not wait. Working through a backlog: at most every
        ack_coalesce_ms, so a panel gets one ack per round instead of one per 2 ms batch."""
        if not self._acks_due:
            return
        if (
            not force
            and self._last_batch >= self.BACKLOG_BATCH
            and (time.monotonic() - self._acks_sent < self.settings.ack_coalesce_ms / 1000)
        ):
            return
        due, self._acks_due = self._acks_due, {}
        self._acks_sent = time.monotonic()
        for topic, payload in due.items():
            self._publish(topic, payload, "ack")

    def _publish(self, topic, payload, kind, retain=True):
        """QoS 1 (retained unless told), with at most max_unconfirmed outstanding (MQTT-FACTS
        pitfall 2)."""
        deadline = time.monotonic() + 30
        while len(self._unconfirmed) >= self.settings.max_unconfirmed and time.monotonic() < deadline:
            try:
                item = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            self._dispatch(item)
        info = self._mqtt().publish(topic, payload, qos=1, retain=retain)
        self._unconfirmed[info.mid] = (topic, payload, kind)
        if len(self._unconfirmed) > self.settings.max_unconfirmed * 2:
            # the broker never confirmed these (a connection dropped): paho resends them itself
            self._unconfirmed.clear()

    def _in_flight(self, kind):
        return {v[0] for v in self._unconfirmed.values() if v[2] == kind}

    def _push_configs(self):
        """Publish the configs the worker found due (retained); it records them once confirmed."""
        if not self.connected.is_set():
            return  # the worker computes them again after config_push_s
        due = self._worker().take_configs()
        if not due:
            return
        pending = self._in_flight("config")
        for topic, payload in due:
            if topic not in pending:
                self._publish(topic, self._with_secret(topic, payload), "config")

    # ---- passwords over the air (gateway/rotation.py) --------------------------------------------
    def _with_secret(self, topic, payload):
        """A config for `topic` carries the password being delivered to that panel, if any."""
        parts = topic.split("/")
        secret = self._secrets.get((parts[-3], parts[-2])) if len(parts) >= 4 else None
        return rotation.with_password(payload, *secret) if secret else payload

    def _rotate_passwords(self):
        now = time.monotonic()
        if not self.connected.is_set() or now < self._next_rotation:
            return
        self._next_rotation = now + self.settings.config_push_s
        assert self.db is not None
        try:
            with self.turn.ingest():
                actions = rotation.due(self.db, {k: v[0] for k, v in self._secrets.items()})
        except Exception:
            log.exception("password rotation: could not read the rotations due; next round later")
            return
        for action, key, ver in actions:
            try:
                getattr(self, "_rotation_" + action)(key, ver)
            except Exception:
                log.exception("password rotation: %s for %s/%s failed; next round later", action, *key)

    def _rotation_deliver(self, key, ver):
        from gateway import accounts

        topic = topics.device_topic(self.settings.root, key[0], key[1], "config")
        base = self._configs_in_force().get(topic)
        if base is None:
            return  # no config in force yet: the password rides on the first one
        with self.turn.ingest():
            secret, ver = accounts.begin_delivery(self.db, key[0], key[1], _now_ms())
        self._secrets[key] = (ver, secret)
        self._publish(topic, self._with_secret(topic, base), "rotation")
        self._say("gateway: password v%d delivered to panel %s/%s" % (ver, key[0], key[1]))

    def _rotation_confirm(self, key, ver):
        from gateway import accounts

        with self.turn.ingest():
            if not accounts.confirm(self.db, key[0], key[1], ver, _now_ms()):
                return
        self._say("gateway: panel %s/%s holds password v%d: the broker switches to it" % (key[0], key[1], ver))
        self._reload_accounts()

    def _rotation_finish(self, key, ver):
        topic = topics.device_topic(self.settings.root, key[0], key[1], "config")
        self._secrets.pop(key, None)
        base = self._configs_in_force().get(topic)
        if base is not None:
            self._publish(topic, base, "config")
        self._say("gateway: panel %s/%s logged in with password v%d; rotation done" % (key[0], key[1], ver))

    def _reload_accounts(self, quiet=False):
        """The broker takes the accounts as they are in the database now."""
        from gateway import accounts, brokerconf

        if self.embedded is not None:
            source = self.embedded.source
            self.embedded.set_rules(accounts.rules_from_db(self.db, self.settings.root, getattr(source, "extra", ())))
            return
        try:
            done = brokerconf.refresh(self.db)
        except brokerconf.BrokerConfError as exc:
            log.error("password rotation: Mosquitto's files not updated: %s; run `rating broker config --reload`", exc)
            return
        if done == "reloaded" and quiet:
            self._say("gateway: Mosquitto's password and ACL files brought up to date and reloaded")
        elif done is None and not quiet:
            log.warning(
                "password rotation: where Mosquitto's files are is not known: run "
                "`rating broker config --out DIR ... --reload` (the panel keeps its old password until then)"
            )
        elif done == "written":
            log.warning("password rotation: Mosquitto's files rewritten: run `systemctl reload mosquitto`")

    # ---- the retained check (gateway/retained.py) ---------------------------------------------
    def _start_audit(self):
        root = self.settings.root
        self._audit = audit = retained.Audit(root)
        self._audit_deadline = time.monotonic() + audit.TIMEOUT_S
        client = self._mqtt()
        client.subscribe([(retained.ack_filter(root), 0), (retained.config_filter(root), 0)])
        # delivered after every retained message the subscription brings (same connection, in order)
        client.publish(audit.marker_topic, audit.marker, qos=0, retain=False)

    def _finish_audit(self):
        audit, self._audit = self._audit, None
        assert audit is not None and self.db is not None
        self._next_audit = time.monotonic() + self.settings.retained_check_s
        if self.client is not None:
            self.client.unsubscribe(retained.ack_filter(self.settings.root))  # configs stay watched
        if not audit.done:
            log.warning("retained check: the broker did not deliver the marker in %.0f s", audit.TIMEOUT_S)
        try:
            wanted = {t: p for t, p, _retain, _qos in self._ingestor().ack_messages()}
            wanted.update(self._configs_in_force())
        except Exception:
            log.exception("retained check: could not read what should be retained; next check later")
            return
        skip = self._in_flight("ack") | self._in_flight("config") | self._in_flight("rotation") | set(self._acks_due)
        publish, clear = audit.fixes(wanted, skip)
        for topic, payload in publish:
            self._publish(topic, payload, "ack" if topic.endswith("/ack") else "config")
        for topic in clear:
            self._publish(topic, b"", "clear")
        if publish or clear:
            self._say(
                _(
                    "gateway: retained check: %(again)d of %(all)d acks and configs published again, "
                    "%(cleared)d foreign ones cleared"
                )
                % {"again": len(publish), "all": len(wanted), "cleared": len(clear)}
            )

    def _configs_in_force(self, reread=True) -> dict[str, bytes]:
        """The configs that should be retained: the last recorded per configured panel, and
        what this run pushed since (the worker records a confirmed push a moment later)."""
        from gateway import configpush

        assert self.db is not None
        if reread or self._config_wanted is None:
            self._config_wanted = configpush.in_force(self.db, root=self.settings.root)
        wanted = dict(self._config_wanted, **self._configs_pushed)
        if self._secrets:  # the configs carrying a password being delivered stay as they are
            wanted = {t: self._with_secret(t, p) for t, p in wanted.items()}
        return wanted

    def _retained(self, topic, payload, retain):
        """A message on an ack or config topic: the check's, or a config someone else published."""
        audit = self._audit
        if audit is not None and not audit.done:
            audit.feed(topic, payload, retain)
            return
        if audit is not None:
            audit.feed(topic, payload, retain)
        if not topic.endswith("/config") or retain or not self._duty and self.settings.share:
            return
        if payload in {v[1] for v in self._unconfirmed.values() if v[0] == topic}:
            return  # our own publish, echoed
        fix = retained.correction(topic, payload, self._configs_in_force(reread=False))
        if fix is not None:
            log.warning("%s: a config the gateway did not publish; replaced by the one in force", topic)
            self._publish(topic, fix, "config" if fix else "clear")

    # ---- shutdown ----------------------------------------------------------------------------
    def stop(self):
        self.stop_event.set()

    def install_signal_handlers(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_args: self.stop())

    def _shutdown(self):
        """Finish the batch, commit, ack, disconnect."""
        self._closing = True  # later arrivals are not PUBACKed: the broker keeps them
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
            self._dispatch(item)
        if self._ingestor().due():
            self._commit_batch()
        self._publish_acks(force=True)
        deadline = time.monotonic() + self.SHUTDOWN_CONFIRM_S
        while self._unconfirmed and time.monotonic() < deadline and self.connected.is_set():
            try:
                item = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            if item[0] == "puback":
                self._dispatch(item)
        self.close()
        st = self._ingestor().stats
        self._say(
            _(
                "gateway: stopped; messages %(messages)d, events stored %(events)d, duplicates %(dups)d, "
                "dead letters %(dead)d, refused %(refused)d, dropped with the inbox full %(shed)d"
            )
            % {
                "messages": st["messages"],
                "events": st["events"],
                "dups": st["duplicates"],
                "dead": st["dead_letters"],
                "refused": st["refused"],
                "shed": self.shed,
            }
        )

    def close(self):
        if self.client:
            try:
                self.client.disconnect()
            finally:
                self.client.loop_stop()
            self.client = None
        if self.worker:
            self.worker.stop()  # derives what the last batches changed, then ends
            self.worker = None
        if self.embedded:
            self.embedded.stop()
            self.embedded = None
        if self.db:
            self.db.close()
        if self._sole_fd is not None:
            os.close(self._sole_fd)
            self._sole_fd = None


def _redact(url):
    return dbmod._redact(url)


def _loopback(host):
    """Is this listening address reachable from this machine only?"""
    return host == "localhost" or host == "::1" or host.startswith("127.")


SOLE_LOCK = 0x52415404  # advisory lock namespace: gateways on this database (exclusive alone, shared with --share)
DUTY_LOCK = 0x52415405  # advisory lock namespace: the gateway that pushes configs and checks retained


def subscriptions(settings):
    """The topic filters the gateway subscribes to; with `share`, MQTT v5 shared subscriptions
    ($share/<group>/<filter>): the broker hands each message to one gateway of the group."""
    filters = topics.gateway_subscriptions(settings.root)
    if settings.share:
        return ["$share/%s/%s" % (settings.share, f) for f in filters]
    return filters


def run(settings, out=None):
    """Start, serve until SIGTERM/SIGINT, shut down gracefully. Returns 0."""
    service = GatewayService(settings, out=out)
    service.install_signal_handlers()
    try:
        service.start()
        service.run()
    except BaseException:
        service.close()
        raise
    return 0
