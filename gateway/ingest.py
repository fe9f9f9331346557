"""The ingest core: MQTT messages in, one database transaction per batch, acks out.

Sans-I/O towards MQTT: `Ingestor` never touches a socket or a clock. The broker loop
(gateway/service.py) and `rating replay` (gateway/cli_gateway.py) both feed it the same way:

    ingestor.handle(topic, payload_bytes, received_ms)   # any number of times: buffers
    acks = ingestor.flush()                              # one transaction; then the acks

`flush()` returns [(topic, payload, retain, qos)] to publish: each panel's cumulative ack,
computed in the same transaction as the events it covers and handed out only after COMMIT
succeeded - so a panel deletes an event from its journal only once it is durably stored.

Nothing is dropped silently: a bad topic, a payload failing protocol validation, a seq re-used
with different content, or a message the database refuses goes to `dead_letters` with the
topic, the raw bytes, the reason and the arrival time - once per distinct (topic, payload),
counted in `seen` each time it comes again. An event that cannot be stored does not hold its
panel's ack: its seq counts as handled (`dead_seqs`) when it can be read from the payload, or,
when it cannot, once the rule of store.infer_unreadable_gap says what it stood for.

A dead letter hands its seq over to the ack only at or below the seq the panel's own state
reports journaled (store.journaled_seq): junk with a readable seq never lets the ack pass seqs
the panel has not used yet, and a genuine event that comes later for such a seq is stored and
wins (the letter stays as evidence).

What is not the message's fault is never a dead letter: when a batch fails, the database error
must be one a database raises for a statement's values (integrity, data) *and* a known-good
canary row (store.canary) must go through; else (privilege revoked, table dropped, read-only
transaction, connection gone, disk full, any other exception) flush() raises, nothing of the
batch is acked, and the caller retries it later.

Once the deployment has panels configured (`rating site apply`), events and states of a panel
that is not configured, and counts of a site that is not, are dead letters without any
per-panel state (no cache entry, no ack, no dead_seqs). With `limits` (gateway.limits), each
panel's messages are rate-limited and its dead letters budgeted; what is refused is counted per
panel and window (`refusals`), never acked.

A batch is written in phases (`_write`): read what is committed about its panels, write states
and counts, write events, write dead letters, recompute the acks, add the refusal counts; the
panel cache changes only after COMMIT.
"""

import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway import limits as limits_mod
from gateway import site as site_mod
from gateway import store
from protocol import ProtocolError, messages, topics

log = logging.getLogger("gateway.ingest")

Panel = tuple[str, str]  # (site, device)
_SEQ = re.compile(rb'"seq"\s*:\s*(\d{1,16})')
Ack = tuple[str, bytes, bool, int]  # (topic, payload, retain, qos) to publish
PANEL_LOCKS = 0x52415401  # advisory lock namespace of a panel's ingest (gateway.db.lock_names)


# ---- batch items: what handle() buffers, one type per kind ----------------------------------


class EventItem(NamedTuple):
    """A valid event; `row` has store.EVENT_COLUMNS plus "topic"."""

    received_ms: int
    row: dict[str, Any]

    @property
    def panel(self) -> Panel:
        return (self.row["site"], self.row["device"])

    def raw(self) -> tuple[str, bytes | store.Clip]:
        return self.row["topic"], self.row["payload"].encode("utf-8")


class StateItem(NamedTuple):
    received_ms: int
    site: str
    device: str
    state: dict[str, Any]
    payload: bytes
    topic: str

    @property
    def panel(self) -> Panel:
        return (self.site, self.device)

    def raw(self) -> tuple[str, bytes | store.Clip]:
        return self.topic, self.payload


class CountsItem(NamedTuple):
    received_ms: int
    site: str
    counts: dict[str, Any]
    payload: bytes
    topic: str

    def raw(self) -> tuple[str, bytes | store.Clip]:
        return self.topic, self.payload


class TransactionItem(NamedTuple):
    """A POS sale (gateway/transactions.py stores it in the batch's transaction)."""

    received_ms: int
    site: str
    tx: dict[str, Any]
    payload: bytes
    topic: str

    def raw(self) -> tuple[str, bytes | store.Clip]:
        return self.topic, self.payload


class DeadItem(NamedTuple):
    """A message that becomes a dead letter; site/device/seq where it is a panel's event."""

    received_ms: int
    topic: str
    payload: bytes | store.Clip  # the whole payload, or what store.clip kept of a huge one
    reason: str
    site: str | None = None
    device: str | None = None
    seq: int | None = None

    def raw(self) -> tuple[str, bytes | store.Clip]:
        return self.topic, self.payload


Item = EventItem | StateItem | CountsItem | TransactionItem | DeadItem

_STAT_KEYS = (
    "events",
    "duplicates",
    "states",
    "counts",
    "transactions",
    "tx_duplicates",
    "dead_letters",
    "stale_wills",
)


@dataclass
class _Batch:
    """What one _write accumulates across its phases."""

    now_ms: int
    changed: set[Panel] = field(default_factory=set)  # panels with new stored data
    boots: set[tuple[str, str, int]] = field(default_factory=set)  # boot clocks learnt
    boot_rows: list[tuple[str, str, int, int, int, str, int]] = field(default_factory=list)  # to write
    online: list[tuple[str, str, dict[str, Any], int, str]] = field(default_factory=list)  # states to write
    events: list[dict[str, Any]] = field(default_factory=list)  # valid event rows
    dead: list[DeadItem] = field(default_factory=list)  # letters to write
    unreadable: set[Panel] = field(default_factory=set)  # sent an event without a readable seq
    fresh: dict[Panel, set[int]] = field(default_factory=dict)  # seqs stored or dead-lettered by this batch
    fresh_dead: dict[Panel, set[int]] = field(default_factory=dict)  # ... of them dead-lettered
    resend_ack: set[Panel] = field(default_factory=set)  # the ack again even if it did not move
    acking: set[Panel] = field(default_factory=set)  # panels whose ack is recomputed
    new_acks: dict[Panel, int] = field(default_factory=dict)
    acks: list[Ack] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_STAT_KEYS, 0))

    def handled(self, key: Panel, seq: int, dead: bool = False) -> None:
        self.fresh.setdefault(key, set()).add(seq)
        if dead:
            self.fresh_dead.setdefault(key, set()).add(seq)


class _Panel:
    """What is committed about one panel: highest handled seq, last ack, journal floor and the
    highest seq its state reported journaled."""

    __slots__ = ("max_seq", "ack", "floor", "journaled")

    def __init__(self, max_seq: int, ack: int | None, floor: int, journaled: int):
        self.max_seq, self.ack, self.floor, self.journaled = max_seq, ack, floor, journaled

    def copy(self) -> "_Panel":
        return _Panel(self.max_seq, self.ack, self.floor, self.journaled)

    def vouches_for(self, seq: int) -> bool:
        """Whether an event of `seq` is what this panel's link sends: above its ack and within
        its send window (firmware/link.py sends at most SEND_WINDOW past the ack it got, which
        is never above the committed one). Such events are exempt from the rate limit, so a
        panel catching up on 20,000 journaled events is never slowed down."""
        ack = self.ack or 0
        return ack < seq <= ack + store.SEND_WINDOW


class Ingestor:
    """Buffers decoded messages; flush() writes them in one transaction and returns acks."""

    # The service flushes when this many messages are buffered (or its time bound passes).
    BATCH_MAX = 500
    TOPIC_CACHE = 20000  # parsed topics kept (only valid ones; cleared when full)
    PANEL_CACHE = 50000  # panels whose committed knowledge is kept (cleared when full: reloaded)
    KNOWN_CHECK_MS = 2000  # how often (received time) the settings revision is looked at

    def __init__(
        self,
        db,
        root: str = topics.DEFAULT_ROOT,
        on_commit: Callable[[set[Panel], int], None] | None = None,
        grace_ms: int = store.LOST_GRACE_MS,
        limits: limits_mod.Limits | None = None,
        shared: bool = False,
    ):
        self.db = db
        # several gateways share the panels' messages (MQTT shared subscriptions): what is
        # committed about a panel is read again under its lock for every batch, never cached
        self.shared = shared
        self.root = topics.check_root(root)
        self.on_commit = on_commit  # callable(changed_devices: set[(site, device)], now_ms)
        self.grace_ms = grace_ms  # store.infer_unreadable_gap's wait before passing a gap
        self.limits = limits  # None: no rate limit and no dead-letter budget (replay)
        self._items: list[Item] = []  # in arrival order
        self._known_boots: set[tuple[str, str, int]] = set()  # (site, device, boot) whose clock offset is stored
        self._held_acks: list[Ack] = []  # acks of items committed by a flush that then failed
        self._held_changed: set[Panel] = set()  # their panels: derived after the next successful flush
        # per panel: highest stored seq, last ack, journal floor. This process is the only
        # writer of raw events and acks while it runs, so after the first look it needs no query.
        self._panel_cache: dict[Panel, _Panel] = {}
        self._topics: dict[str, tuple[str, str | None, str]] = {}  # topic -> parse(): few hundred panels
        # the configured panels and sites (None: none configured yet, every panel is welcome)
        self._known: tuple[set[Panel], set[str]] | None = None
        self._known_rev = -1
        self._known_checked: int | None = None
        self.stats: dict[str, int] = dict.fromkeys(
            ("messages", "events", "duplicates", "states", "counts", "transactions", "tx_duplicates")
            + ("dead_letters", "acks", "batches")
            + ("hook_errors", "stale_wills", "refused", "canary_failures"),
            0,
        )
        self.refresh_known()

    def __len__(self) -> int:
        return len(self._items)

    def due(self) -> bool:
        """Whether flush() has anything to write (messages, or refusal counts of a flood)."""
        return bool(self._items) or bool(self.limits and self.limits.pending())

    # ---- what is configured ----------------------------------------------------------------
    def refresh_known(self, now_ms: int | None = None) -> None:
        """Reload the configured panels and sites when the settings history has a new revision
        (looked at most every KNOWN_CHECK_MS of received time; always when now_ms is None)."""
        if now_ms is not None and self._known_checked is not None:
            if 0 <= now_ms - self._known_checked < self.KNOWN_CHECK_MS:
                return
        self._known_checked = now_ms
        rev = site_mod.revision(self.db)
        if rev == self._known_rev:
            return
        history = site_mod.load(self.db)
        panels: set[Panel] = set()
        for _kind, key in history.keys("panel"):
            site, _, device = key.partition("/")
            panels.add((site, device))
        sites = {key for _kind, key in history.keys("site")} | {site for site, _ in panels}
        self._known = (panels, sites) if panels else None
        self._known_rev = rev

    def _unknown(self, site: str, device: str | None) -> str | None:
        """Why a message of (site, device) belongs to nobody, or None when it is welcome."""
        if self._known is None:
            return None
        panels, sites = self._known
        if device is None:
            return None if site in sites else "unknown site: %s is not in the site file (rating site apply)" % site
        if (site, device) in panels:
            return None
        return "unknown panel: %s/%s is not in the site file (rating site apply)" % (site, device)

    # ---- buffering -------------------------------------------------------------------------
    def handle(self, topic: str | bytes, payload: bytes | store.Clip, received_ms: int) -> None:
        """Decode and buffer one message. Never raises for bad input: that is a dead letter (or,
        over a limit, a refusal count). `payload` may be what store.clip kept of a huge one."""
        self.stats["messages"] += 1
        topic = _topic_text(topic)
        body = payload if isinstance(payload, store.Clip) else bytes(payload)
        try:
            site, device, kind = self._parse_topic(topic)
        except ProtocolError as exc:
            return self._dead(topic, body, str(exc), received_ms)
        unknown = self._unknown(site, device)
        if unknown:  # no per-panel state for made-up ids: one shared budget
            if self._within_rate(limits_mod.SHARED, body, received_ms):
                self._dead(topic, body, unknown, received_ms)
            return
        panel = (site, device or "")
        origin = panel if kind == "event" else None  # a bad event still belongs to its panel
        # charged before decoding, so a flood over the rate costs no decoding; what may be in
        # the panel's send window is decoded first and charged only if it is not
        maybe_free = kind == "event" and self._maybe_in_window(panel, body)
        if not maybe_free and not self._within_rate(panel, body, received_ms):
            return
        try:
            item = self._decode(topic, body, site, device, kind, received_ms)
        except ProtocolError as exc:
            if not maybe_free or self._within_rate(panel, body, received_ms):
                self._dead(topic, body, str(exc), received_ms, origin)
            return
        except Exception as exc:  # a decoder bug must not stop ingest either
            log.exception("unexpected error decoding %r", topic)
            if not maybe_free or self._within_rate(panel, body, received_ms):
                self._dead(topic, body, "gateway error while decoding: %r" % exc, received_ms, origin)
            return
        if not maybe_free or self._vouched(item) or self._within_rate(panel, body, received_ms):
            self._items.append(item)

    def _decode(
        self, topic: str, body: bytes | store.Clip, site: str, device: str | None, kind: str, received_ms: int
    ) -> Item:
        if isinstance(body, store.Clip) or len(body) > messages.MAX_BYTES:
            size = body.size if isinstance(body, store.Clip) else len(body)
            raise ProtocolError("payload", "%d bytes, limit is %d" % (size, messages.MAX_BYTES))
        if kind == topics.TRANSACTIONS:
            return TransactionItem(received_ms, site, messages.decode_transaction(body), body, topic)
        if kind == topics.COUNTS or device is None:
            return CountsItem(received_ms, site, messages.decode_counts(body), body, topic)
        if kind == "event":
            return _event_item(topic, body, site, device, received_ms)
        if kind == "state":
            return StateItem(received_ms, site, device, messages.decode_state(body), body, topic)
        raise ProtocolError("topic", "%s messages are published by the gateway, not ingested" % kind)

    def _maybe_in_window(self, panel: Panel, body: bytes | store.Clip) -> bool:
        """A cheap look (no JSON decoding) whether an event may be in the panel's send window."""
        if self.limits is None or isinstance(body, store.Clip):
            return False
        p = self._panel_cache.get(panel)
        if p is None:
            return False
        m = _SEQ.search(body)
        return m is not None and p.vouches_for(int(m.group(1)))

    def _vouched(self, item: Item) -> bool:
        """An event in its panel's send window (what a panel's link sends, catching up too)."""
        if not isinstance(item, EventItem):
            return False
        p = self._panel_cache.get(item.panel)
        return p is not None and p.vouches_for(item.row["seq"])

    def _within_rate(self, key: Panel, body: bytes | store.Clip, received_ms: int) -> bool:
        if self.limits is None or self.limits.take(key, received_ms):
            return True
        self._refuse(key, limits_mod.RATE, body, received_ms)
        return False

    def _refuse(self, key: Panel, reason: str, body: bytes | store.Clip, received_ms: int) -> None:
        assert self.limits is not None
        self.stats["refused"] += 1
        size = body.size if isinstance(body, store.Clip) else len(body)
        if self.limits.refuse(key, reason, size, received_ms):
            who = "%s/%s" % key if key != limits_mod.SHARED else "messages of no configured panel"
            log.warning(
                "%s: %s; the excess is counted per panel and %d-minute window, not stored and not acked"
                " (rating status shows it)",
                who,
                reason,
                self.limits.settings.window_ms // 60000,
            )

    def _parse_topic(self, topic: str) -> tuple[str, str | None, str]:
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = topics.parse(self.root, topic)
            if self._unknown(parsed[0], parsed[1]) is None:  # made-up ids would only churn it
                if len(self._topics) > self.TOPIC_CACHE:
                    self._topics.clear()
                self._topics[topic] = parsed
        return parsed

    def _dead(
        self, topic: str, body: bytes | store.Clip, reason: str, received_ms: int, origin: Panel | None = None
    ) -> None:
        key = origin or limits_mod.SHARED
        if self.limits is not None and not self.limits.take_letter(key, received_ms):
            self._refuse(key, limits_mod.LETTERS, body, received_ms)
            return
        if origin:
            seq = None if isinstance(body, store.Clip) else readable_seq(body)
            self._items.append(DeadItem(received_ms, topic, body, reason, origin[0], origin[1], seq))
        else:
            self._items.append(DeadItem(received_ms, topic, body, reason))

    # ---- writing ---------------------------------------------------------------------------
    def flush(self) -> list[Ack]:
        """Write everything buffered in one transaction; return the acks to publish.

        A failing batch is retried message by message only when the error may be one message's
        (a database refusing a statement's values) and a known-good canary row still goes in:
        then the message the database refuses (say, text PostgreSQL refuses) becomes a dead
        letter and the rest is stored. Any other error (the database's state: privileges,
        schema, read-only, connection, disk; or any other exception) propagates: what was not
        written stays buffered, nothing of it is acked; call flush() again later.
        """
        if not self.due():
            return []
        items = self._items
        now_ms = max((item.received_ms for item in items), default=0)
        if now_ms:
            self.refresh_known(now_ms)
        try:
            acks, changed, boots = self._write(items)
            self._items = []
        except Exception as exc:
            acks, changed, boots = self._retry(items, exc, now_ms)
        self._known_boots |= boots
        if len(self._known_boots) > self.PANEL_CACHE:
            self._known_boots = set(boots)  # a look-up saved, nothing more: reloaded on demand
        self.stats["batches"] += 1
        acks = _dedupe_acks(self._held_acks + acks)
        self._held_acks = []
        # panels committed by an earlier flush whose one-by-one retry then failed part-way: their
        # commit is as real as this one's, so they are derived now, not at the next clock tick
        changed = changed | self._held_changed
        self._held_changed = set()
        self.stats["acks"] += len(acks)
        if self.on_commit and changed:
            try:
                self.on_commit(changed, now_ms)
            except Exception:  # derived data can be rebuilt (`rating rebuild`); ingest goes on
                self.stats["hook_errors"] += 1
                log.exception("on_commit hook failed for %d panel(s)", len(changed))
        return acks

    def _retry(self, items: list[Item], exc: Exception, now_ms: int):
        """After a failed batch: one by one when one message may be to blame; else the whole
        batch once more if a canary row goes in now (a dropped connection was replaced), and
        otherwise raise: nothing of the batch is acked."""
        if self._one_message_may_be_to_blame(exc, now_ms):
            log.warning("batch of %d failed (%s), a canary row went in: retrying one by one", len(items), exc)
            return self._write_one_by_one(items, now_ms)
        try:
            if not _content_error(exc):  # else the canary just failed: the database is at fault
                store.canary(self.db, now_ms)
                result = self._write(items)
                self._items = []
                return result
        except Exception as again:
            exc = again
        log.error("batch of %d not stored, nothing of it acked (%s); it is retried", len(items), exc)
        raise exc

    def _one_message_may_be_to_blame(self, exc: Exception, now_ms: int) -> bool:
        """The canary test: `exc` is a database's refusal of a statement's values, and the same
        kind of writes with known-good values still go through."""
        if not _content_error(exc):
            return False
        try:
            store.canary(self.db, now_ms)
        except Exception as canary_exc:
            self.stats["canary_failures"] += 1
            log.error("the canary row failed too (%s): the database, not a message, is at fault", canary_exc)
            return False
        return True

    def _write_one_by_one(self, items: list[Item], now_ms: int):
        acks: list[Ack] = []
        changed: set[Panel] = set()
        boots: set[tuple[str, str, int]] = set()
        for i, item in enumerate(items):
            try:
                a, c, b = self._write([item])
            except Exception as one_exc:
                failed: Exception | None = one_exc
                if self._one_message_may_be_to_blame(one_exc, now_ms):
                    log.warning("the database refused one message (%s): dead letter", one_exc)
                    try:
                        a, c, b = self._write([_refused(item, one_exc)])
                    except Exception as dl_exc:
                        failed = dl_exc
                    else:
                        failed = None
                if failed is not None:
                    # keep the rest for the next flush; what is committed is not written twice,
                    # and its acks go out with the next successful flush
                    self._items = items[i:]
                    self._held_acks += acks
                    self._held_changed |= changed
                    self._known_boots |= boots
                    raise failed from None
            acks.extend(a)
            changed |= c
            boots |= b
        self._items = []
        return acks, changed, boots

    def _write(self, items: list[Item]):
        """One transaction in phases; returns (acks, changed panels, boots learnt)."""
        batch = _Batch(now_ms=max((item.received_ms for item in items), default=0))
        refused = self.limits.drain() if self.limits else []
        try:
            with self.db.transaction():
                # one panel's messages may be spread over several gateways (shared subscriptions):
                # its writes and its ack are computed one transaction at a time, from what is
                # committed once the lock is held (a no-op on SQLite: one writer at a time)
                self.db.lock_names(PANEL_LOCKS, ["%s/%s" % key for key in _panel_keys(items)])
                panels = self._panels(items)  # committed knowledge, read before any write
                self._write_states_and_counts(items, panels, batch)
                self._write_events(panels, batch)
                self._write_dead_letters(panels, batch)
                self._recompute_acks(panels, batch)
                store.add_refusals(self.db, refused)
        except BaseException:
            if self.limits:
                self.limits.restore(refused)  # counted again with the next batch
            raise
        # committed: only now do the counters, the panel cache and the acks become real
        for key, seqs in batch.fresh.items():
            panels[key].max_seq = max(panels[key].max_seq, max(seqs))
        for key, ack in batch.new_acks.items():
            panels[key].ack = ack
        if len(self._panel_cache) + len(panels) > self.PANEL_CACHE:
            self._panel_cache.clear()  # made-up ids of an open deployment: memory stays flat
        self._panel_cache.update(panels)
        for k, v in batch.stats.items():
            self.stats[k] += v
        return batch.acks, batch.changed, batch.boots

    def _panels(self, items: list[Item]) -> dict[Panel, _Panel]:
        """{(site, device): _Panel} for the panels in `items`: copies of the cache (so a rolled
        back batch leaves the cache as it was), loaded from the database on first sight (all
        of a batch's new panels at once)."""
        out: dict[Panel, _Panel] = {}
        new: dict[Panel, None] = {}  # in order of arrival
        for key in _panel_keys(items):
            if key not in out:
                # several gateways: another one may have stored and acked this panel's events
                cached = None if self.shared else self._panel_cache.get(key)
                if cached:
                    out[key] = cached.copy()
                else:
                    new[key] = None
        if new:
            for key, (max_seq, ack, state) in store.panel_knowledge(self.db, list(new)).items():
                out[key] = _Panel(max_seq, ack, store.held_floor(state), store.journaled_seq(state))
        return out

    # phase: states, counts and sales; events and dead letters are sorted out for the next phases
    def _write_states_and_counts(self, items: list[Item], panels: dict[Panel, _Panel], batch: _Batch) -> None:
        sales: list[TransactionItem] = []
        for item in items:
            if isinstance(item, EventItem):
                batch.events.append(item.row)
            elif isinstance(item, DeadItem):
                batch.dead.append(item)
            elif isinstance(item, StateItem):
                self._write_state(item, panels, batch)
            elif isinstance(item, TransactionItem):
                sales.append(item)
            else:
                c = item.counts
                store.insert_counts(
                    self.db,
                    item.site,
                    c.get("device") or "",
                    c["from"],
                    c["to"],
                    c.get("transactions"),
                    c.get("visitors"),
                    "mqtt",
                    item.received_ms,
                )
                batch.stats["counts"] += 1
        self._flush_states(batch)
        if sales:
            from gateway import transactions

            # stored once per (site, id): a QoS 1 redelivery or a POS resending is a duplicate
            new = transactions.store_many(self.db, [(s.site, s.tx) for s in sales], "mqtt", batch.now_ms)
            batch.stats["transactions"] += new
            batch.stats["tx_duplicates"] += len(sales) - new

    def _flush_states(self, batch: _Batch) -> None:
        """The online states and boot clocks gathered so far, in one executemany each (a fleet
        reconnecting sends thousands of states at once)."""
        store.upsert_online_states(self.db, batch.online)
        batch.online = []
        store.record_boot_clocks(self.db, batch.boot_rows)
        batch.boot_rows = []

    def _write_state(self, item: StateItem, panels: dict[Panel, _Panel], batch: _Batch) -> None:
        state = item.state
        batch.stats["states"] += 1
        if state.get("online"):
            batch.online.append((item.site, item.device, state, item.received_ms, item.payload.decode()))
        else:
            self._flush_states(batch)  # a will is checked against the states before it
            if not store.upsert_state(self.db, item.site, item.device, state, item.received_ms, item.payload.decode()):
                # a replaced connection's will, delivered after the new connection's state (some
                # brokers do): the panel is online, keep it so
                batch.stats["stale_wills"] += 1
                log.info(
                    "%s/%s: stale will (boot %s conn %s) ignored, a newer connection is online",
                    item.site,
                    item.device,
                    state.get("boot"),
                    state.get("conn"),
                )
                return
        batch.changed.add(item.panel)
        if state.get("online"):
            p = panels[item.panel]
            p.floor = store.held_floor({"last_seq": state.get("seq"), "pending": state.get("pending")})
            if state.get("seq") is not None:
                p.journaled = state["seq"]
            if state.get("t") is not None:
                self._learn_boot(
                    item.site, item.device, state["boot"], state["t"], state["up"], "state", item.received_ms, batch
                )

    # phase: events
    def _write_events(self, panels: dict[Panel, _Panel], batch: _Batch) -> None:
        if not batch.events:
            return
        rows = batch.events
        # a valid event for a seq acked past as a dead letter: the panel deleted that event once
        # acked, so this is another one (a wiped panel's, sent before it renumbered): stored
        # there and again under its new seq it would count twice
        taken = store.dead_only_seqs(
            self.db,
            [
                (e["site"], e["device"], e["seq"])
                for e in rows
                if e["seq"] <= (panels[(e["site"], e["device"])].ack or 0)
            ],
        )
        reused = [e for e in rows if (e["site"], e["device"], e["seq"]) in taken]
        stored, duplicates, conflicts = store.insert_events(
            self.db,
            [e for e in rows if (e["site"], e["device"], e["seq"]) not in taken],
            {k: p.max_seq for k, p in panels.items()},
        )
        batch.stats["events"] += len(stored)
        batch.stats["duplicates"] += len(duplicates)
        # a panel resending stored events did not get its ack (lost retained message?): publish
        # it again even if it did not move. A seq re-used with other content too: a wiped panel
        # needs an ack above its seqs to renumber its events
        batch.resend_ack |= {(e["site"], e["device"]) for e in duplicates + conflicts + reused}
        for e in conflicts:
            batch.dead.append(
                _letter_of(
                    e,
                    "seq %d of %s/%s is already stored with different content"
                    " (panel journal reset or firmware bug?); the stored event is kept",
                )
            )
        for e in reused:
            batch.dead.append(
                _letter_of(
                    e,
                    "seq %d of %s/%s was acked past as a dead letter, so this is another event (panel journal reset?)",
                )
            )
        last_seen: dict[Panel, int] = {}
        # any valid event proves the panel alive, a resend of stored ones too
        for e in duplicates + conflicts + reused + stored:
            key = (e["site"], e["device"])
            last_seen[key] = max(last_seen.get(key, 0), e["received_ms"])
        for e in stored:
            key = (e["site"], e["device"])
            batch.changed.add(key)
            batch.handled(key, e["seq"])
            if e["t_ms"] is not None:
                self._learn_boot(
                    e["site"],
                    e["device"],
                    e["boot"],
                    e["t_ms"],
                    e["up_ms"],
                    "event:%d" % e["seq"],
                    e["received_ms"],
                    batch,
                )
        store.touch_last_seen_many(self.db, [(s_, d_, ms) for (s_, d_), ms in last_seen.items()])
        store.record_boot_clocks(self.db, batch.boot_rows)
        batch.boot_rows = []

    # phase: dead letters, and the seqs they hand over to the ack
    def _write_dead_letters(self, panels: dict[Panel, _Panel], batch: _Batch) -> None:
        batch.acking = set(batch.changed)
        if not batch.dead:
            return
        letters = [
            store.Letter(d.topic.replace("\x00", "\\0"), d.payload, d.reason, d.received_ms, d.site, d.device, d.seq)
            for d in batch.dead
        ]
        keys = store.insert_dead_letters(self.db, letters)
        batch.stats["dead_letters"] += len(letters)
        rows = []
        for d, key in zip(batch.dead, keys, strict=True):
            if d.site is None or d.device is None:
                continue
            panel = (d.site, d.device)
            if d.seq is None:
                batch.unreadable.add(panel)
                continue
            rows.append((d.site, d.device, d.seq, key, 0, d.received_ms))
            if d.seq <= (panels[panel].ack or 0):
                batch.resend_ack.add(panel)  # resent: the ack did not reach it
            batch.handled(panel, d.seq, dead=True)
            batch.acking.add(panel)
        store.insert_dead_seqs(self.db, rows)

    # phase: each touched panel's cumulative ack
    def _recompute_acks(self, panels: dict[Panel, _Panel], batch: _Batch) -> None:
        db = self.db
        for key in sorted(batch.acking | batch.unreadable):
            p = panels[key]
            start = max(p.ack or 0, p.floor - 1)
            # a dead letter's seq counts only at or below what the panel reported journaled
            fresh = {q for q in batch.fresh.get(key, ()) if q <= p.journaled or q not in batch.fresh_dead.get(key, ())}
            ack = store.extend_run(db, key[0], key[1], start, fresh, p.max_seq, p.journaled)
            if key in batch.unreadable:
                inferred = store.infer_unreadable_gap(db, key[0], key[1], ack, self.grace_ms)
                if inferred:
                    for q in inferred:
                        batch.handled(key, q, dead=True)
                    fresh.update(q for q in inferred if q <= p.journaled)
                    ack = store.extend_run(db, key[0], key[1], ack, fresh, max(p.max_seq, max(inferred)), p.journaled)
            if ack > (p.ack or 0):
                batch.new_acks[key] = ack
        store.record_acks(db, [(s_, d_, a, batch.now_ms) for (s_, d_), a in batch.new_acks.items()])
        for (site, device), ack in sorted(batch.new_acks.items()):
            batch.acks.append(self._ack_message(site, device, ack))
        for key in sorted(batch.resend_ack - set(batch.new_acks)):
            ack = panels[key].ack
            if ack is not None:
                batch.acks.append(self._ack_message(key[0], key[1], ack))

    def _ack_message(self, site: str, device: str, ack: int) -> Ack:
        return (topics.device_topic(self.root, site, device, "ack"), messages.encode_ack(ack), True, 1)

    def _learn_boot(
        self, site: str, device: str, boot: int, t_ms: int, up_ms: int, source: str, received_ms: int, batch: _Batch
    ) -> None:
        key = (site, device, boot)
        if key in self._known_boots or key in batch.boots:
            return
        batch.boot_rows.append((site, device, boot, t_ms, up_ms, source, received_ms))
        batch.boots.add(key)

    def ack_messages(self) -> list[Ack]:
        """Every panel's current ack as messages to (re)publish retained, e.g. after a reconnect."""
        return [self._ack_message(site, device, seq) for site, device, seq in store.all_acks(self.db)]


def _panel_keys(items: list[Item]) -> list[Panel]:
    """The panels of a batch's items, in order of arrival, once each."""
    out: dict[Panel, None] = {}
    for item in items:
        if isinstance(item, (EventItem, StateItem)):
            out[item.panel] = None
        elif isinstance(item, DeadItem) and item.site is not None and item.device is not None:
            out[(item.site, item.device)] = None
    return list(out)


def _event_item(topic: str, payload: bytes, site: str, device: str, received_ms: int) -> EventItem:
    e = messages.decode_event(payload)
    row = {
        "site": site,
        "device": device,
        "seq": e["seq"],
        "boot": e["boot"],
        "up_ms": e["up"],
        "t_ms": e["t"],
        "ev": e["ev"],
        "hold_ms": e["hold"],
        "received_ms": received_ms,
        "payload": payload.decode("utf-8"),
        "topic": topic,
    }
    return EventItem(received_ms, row)


def _letter_of(e: dict[str, Any], reason: str) -> DeadItem:
    """A valid event row that cannot be stored as what it claims (reason has %d %s %s: seq, site, device)."""
    return DeadItem(
        e["received_ms"],
        e["topic"],
        e["payload"].encode("utf-8"),
        reason % (e["seq"], e["site"], e["device"]),
        e["site"],
        e["device"],
        e["seq"],
    )


def _refused(item: Item, exc: Exception) -> DeadItem:
    """The dead letter of a message the database refused."""
    topic, payload = item.raw()
    reason = "database refused the message: %s" % exc
    if isinstance(item, EventItem):
        return DeadItem(item.received_ms, topic, payload, reason, item.row["site"], item.row["device"], item.row["seq"])
    return DeadItem(item.received_ms, topic, payload, reason)


def _content_error(exc: BaseException) -> bool:
    """An error a database raises for a statement's values (an integrity or data error: a NUL
    character PostgreSQL text refuses, a value out of range), which may be one message's
    fault. Everything else (operational errors: locks, connections, disk, I/O, read-only;
    programming errors: privileges, missing tables; gateway.db.DatabaseError from a failed
    reconnect; any non-database exception) is never a message's, whatever the canary says."""
    kinds: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, sqlite3.DataError)
    try:
        import psycopg

        kinds += (psycopg.IntegrityError, psycopg.DataError)
    except ImportError:
        pass
    return isinstance(exc, kinds)


def _topic_text(topic: str | bytes) -> str:
    if isinstance(topic, (bytes, bytearray)):
        return bytes(topic).decode("utf-8", "replace")
    if not topic.isascii():
        # lone surrogates (a replay file's \udcXX) would make even the dead letter unwritable
        return topic.encode("utf-8", "backslashreplace").decode("utf-8")
    return topic


def readable_seq(payload: bytes) -> int | None:
    """The seq of an event payload that failed validation, where it can be read without guessing:
    a JSON object whose "seq" is a valid seq (an integer 1..MAX_INT). Else None."""
    if len(payload) > messages.MAX_BYTES:
        return None
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    seq = obj.get("seq") if isinstance(obj, dict) else None
    if type(seq) is int and 1 <= seq <= messages.MAX_INT:
        return seq
    return None


def _dedupe_acks(acks: Iterable[Ack]) -> list[Ack]:
    """One ack per topic: the last (highest) one wins."""
    latest: dict[str, Ack] = {}
    for a in acks:
        latest[a[0]] = a
    return list(latest.values())


def derive_hook(db) -> Callable[[set[Panel], int], None]:
    """on_commit callable running gateway.derive.update(db, devices, now_ms)."""
    from gateway import derive

    def hook(devices: set[Panel], now_ms: int) -> None:
        derive.update(db, devices, now_ms)

    return hook
