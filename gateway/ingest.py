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

A batch is written in phases (`_write`): read what is committed about its panels, write states
and counts, write events, write dead letters, recompute the acks; the panel cache changes only
after COMMIT.
"""

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway import store
from protocol import ProtocolError, messages, topics

log = logging.getLogger("gateway.ingest")

Panel = tuple[str, str]  # (site, device)
Ack = tuple[str, bytes, bool, int]  # (topic, payload, retain, qos) to publish


# ---- batch items: what handle() buffers, one type per kind ----------------------------------


class EventItem(NamedTuple):
    """A valid event; `row` has store.EVENT_COLUMNS plus "topic"."""

    received_ms: int
    row: dict[str, Any]

    @property
    def panel(self) -> Panel:
        return (self.row["site"], self.row["device"])

    def raw(self) -> tuple[str, bytes]:
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

    def raw(self) -> tuple[str, bytes]:
        return self.topic, self.payload


class CountsItem(NamedTuple):
    received_ms: int
    site: str
    counts: dict[str, Any]
    payload: bytes
    topic: str

    def raw(self) -> tuple[str, bytes]:
        return self.topic, self.payload


class DeadItem(NamedTuple):
    """A message that becomes a dead letter; site/device/seq where it is a panel's event."""

    received_ms: int
    topic: str
    payload: bytes
    reason: str
    site: str | None = None
    device: str | None = None
    seq: int | None = None

    def raw(self) -> tuple[str, bytes]:
        return self.topic, self.payload


Item = EventItem | StateItem | CountsItem | DeadItem

_STAT_KEYS = ("events", "duplicates", "states", "counts", "dead_letters", "stale_wills")


@dataclass
class _Batch:
    """What one _write accumulates across its phases."""

    now_ms: int
    changed: set[Panel] = field(default_factory=set)  # panels with new stored data
    boots: set[tuple[str, str, int]] = field(default_factory=set)  # boot clocks learnt
    events: list[dict[str, Any]] = field(default_factory=list)  # valid event rows
    dead: list[DeadItem] = field(default_factory=list)  # letters to write
    unreadable: set[Panel] = field(default_factory=set)  # sent an event without a readable seq
    fresh: dict[Panel, set[int]] = field(default_factory=dict)  # seqs handled by this batch
    resend_ack: set[Panel] = field(default_factory=set)  # the ack again even if it did not move
    acking: set[Panel] = field(default_factory=set)  # panels whose ack is recomputed
    new_acks: dict[Panel, int] = field(default_factory=dict)
    acks: list[Ack] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_STAT_KEYS, 0))

    def handled(self, key: Panel, seq: int) -> None:
        self.fresh.setdefault(key, set()).add(seq)


class _Panel:
    """What is committed about one panel: highest handled seq, last ack, journal floor."""

    __slots__ = ("max_seq", "ack", "floor")

    def __init__(self, max_seq: int, ack: int | None, floor: int):
        self.max_seq, self.ack, self.floor = max_seq, ack, floor

    def copy(self) -> "_Panel":
        return _Panel(self.max_seq, self.ack, self.floor)

    @classmethod
    def load(cls, db, site: str, device: str) -> "_Panel":
        return cls(
            store.max_handled_seq(db, site, device),
            store.last_ack(db, site, device),
            store.held_floor(store.panel_state(db, site, device)),
        )


class Ingestor:
    """Buffers decoded messages; flush() writes them in one transaction and returns acks."""

    # The service flushes when this many messages are buffered (or its time bound passes).
    BATCH_MAX = 500
    TOPIC_CACHE = 20000  # parsed topics kept (only valid ones; cleared when full)

    def __init__(
        self,
        db,
        root: str = topics.DEFAULT_ROOT,
        on_commit: Callable[[set[Panel], int], None] | None = None,
        grace_ms: int = store.LOST_GRACE_MS,
    ):
        self.db = db
        self.root = topics.check_root(root)
        self.on_commit = on_commit  # callable(changed_devices: set[(site, device)], now_ms)
        self.grace_ms = grace_ms  # store.infer_unreadable_gap's wait before passing a gap
        self._items: list[Item] = []  # in arrival order
        self._known_boots: set[tuple[str, str, int]] = set()  # (site, device, boot) whose clock offset is stored
        self._held_acks: list[Ack] = []  # acks of items committed by a flush that then failed
        self._held_changed: set[Panel] = set()  # their panels: derived after the next successful flush
        # per panel: highest stored seq, last ack, journal floor. This process is the only
        # writer of raw events and acks while it runs, so after the first look it needs no query.
        self._panel_cache: dict[Panel, _Panel] = {}
        self._topics: dict[str, tuple[str, str | None, str]] = {}  # topic -> parse(): few hundred panels
        self.stats: dict[str, int] = dict.fromkeys(
            ("messages", "events", "duplicates", "states", "counts", "dead_letters", "acks", "batches")
            + ("hook_errors", "stale_wills"),
            0,
        )

    def __len__(self) -> int:
        return len(self._items)

    # ---- buffering -------------------------------------------------------------------------
    def handle(self, topic: str | bytes, payload: bytes, received_ms: int) -> None:
        """Decode and buffer one message. Never raises for bad input: that is a dead letter."""
        self.stats["messages"] += 1
        payload = bytes(payload)
        if isinstance(topic, (bytes, bytearray)):
            topic = bytes(topic).decode("utf-8", "replace")
        elif not topic.isascii():
            # lone surrogates (a replay file's \udcXX) would make even the dead letter unwritable
            topic = topic.encode("utf-8", "backslashreplace").decode("utf-8")
        origin = None  # (site, device) of an event topic: a bad event still belongs to its panel
        try:
            site, device, kind = self._parse_topic(topic)
            if kind == topics.COUNTS or device is None:
                c = messages.decode_counts(payload)
                self._items.append(CountsItem(received_ms, site, c, payload, topic))
            elif kind == "event":
                origin = (site, device)
                self._items.append(_event_item(topic, payload, site, device, received_ms))
            elif kind == "state":
                s = messages.decode_state(payload)
                self._items.append(StateItem(received_ms, site, device, s, payload, topic))
            else:
                raise ProtocolError("topic", "%s messages are published by the gateway, not ingested" % kind)
        except ProtocolError as exc:
            self._dead(topic, payload, str(exc), received_ms, origin)
        except Exception as exc:  # a decoder bug must not stop ingest either
            log.exception("unexpected error decoding %r", topic)
            self._dead(topic, payload, "gateway error while decoding: %r" % exc, received_ms, origin)

    def _parse_topic(self, topic: str) -> tuple[str, str | None, str]:
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = topics.parse(self.root, topic)
            if len(self._topics) > self.TOPIC_CACHE:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def _dead(self, topic: str, payload: bytes, reason: str, received_ms: int, origin: Panel | None = None) -> None:
        if origin:
            site, device = origin
            self._items.append(DeadItem(received_ms, topic, payload, reason, site, device, readable_seq(payload)))
        else:
            self._items.append(DeadItem(received_ms, topic, payload, reason))

    # ---- writing ---------------------------------------------------------------------------
    def flush(self) -> list[Ack]:
        """Write everything buffered in one transaction; return the acks to publish.

        On a database error the batch is retried message by message so one poisonous message
        (say, text PostgreSQL refuses) becomes a dead letter instead of blocking the rest. A
        transient error (database locked, connection lost) propagates instead: what was not
        written stays buffered, nothing of it is acked; call flush() again later.
        """
        if not self._items:
            return []
        items = self._items
        try:
            acks, changed, boots = self._write(items)
            self._items = []
        except Exception as exc:
            log.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
            acks, changed, boots = self._write_one_by_one(items)
        self._known_boots |= boots
        self.stats["batches"] += 1
        acks = _dedupe_acks(self._held_acks + acks)
        self._held_acks = []
        # panels committed by an earlier flush whose one-by-one retry then failed part-way: their
        # commit is as real as this one's, so they are derived now, not at the next clock tick
        changed = changed | self._held_changed
        self._held_changed = set()
        self.stats["acks"] += len(acks)
        if self.on_commit and changed:
            now_ms = max(item.received_ms for item in items)
            try:
                self.on_commit(changed, now_ms)
            except Exception:  # derived data can be rebuilt (`rating rebuild`); ingest goes on
                self.stats["hook_errors"] += 1
                log.exception("on_commit hook failed for %d panel(s)", len(changed))
        return acks

    def _write_one_by_one(self, items: list[Item]):
        acks: list[Ack] = []
        changed: set[Panel] = set()
        boots: set[tuple[str, str, int]] = set()
        for i, item in enumerate(items):
            try:
                a, c, b = self._write([item])
            except Exception as one_exc:
                failed: Exception | None = one_exc
                if not _transient(one_exc):
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
        batch = _Batch(now_ms=max(item.received_ms for item in items))
        with self.db.transaction():
            panels = self._panels(items)  # committed knowledge, read before any write
            self._write_states_and_counts(items, panels, batch)
            self._write_events(panels, batch)
            self._write_dead_letters(panels, batch)
            self._recompute_acks(panels, batch)
        # committed: only now do the counters, the panel cache and the acks become real
        for key, seqs in batch.fresh.items():
            panels[key].max_seq = max(panels[key].max_seq, max(seqs))
        for key, ack in batch.new_acks.items():
            panels[key].ack = ack
        self._panel_cache.update(panels)
        for k, v in batch.stats.items():
            self.stats[k] += v
        return batch.acks, batch.changed, batch.boots

    def _panels(self, items: list[Item]) -> dict[Panel, _Panel]:
        """{(site, device): _Panel} for the panels in `items`: copies of the cache (so a rolled
        back batch leaves the cache as it was), loaded from the database on first sight."""
        out: dict[Panel, _Panel] = {}
        for item in items:
            if isinstance(item, (EventItem, StateItem)):
                key = item.panel
            elif isinstance(item, DeadItem) and item.site is not None and item.device is not None:
                key = (item.site, item.device)
            else:
                continue
            if key not in out:
                cached = self._panel_cache.get(key)
                out[key] = cached.copy() if cached else _Panel.load(self.db, *key)
        return out

    # phase: states and counts; events and dead letters are sorted out for the next phases
    def _write_states_and_counts(self, items: list[Item], panels: dict[Panel, _Panel], batch: _Batch) -> None:
        for item in items:
            if isinstance(item, EventItem):
                batch.events.append(item.row)
            elif isinstance(item, DeadItem):
                batch.dead.append(item)
            elif isinstance(item, StateItem):
                self._write_state(item, panels, batch)
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

    def _write_state(self, item: StateItem, panels: dict[Panel, _Panel], batch: _Batch) -> None:
        state = item.state
        batch.stats["states"] += 1
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
            panels[item.panel].floor = store.held_floor({"last_seq": state.get("seq"), "pending": state.get("pending")})
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

    # phase: dead letters, and the seqs they hand over to the ack
    def _write_dead_letters(self, panels: dict[Panel, _Panel], batch: _Batch) -> None:
        batch.acking = set(batch.changed)
        if not batch.dead:
            return
        letters = [
            (d.topic.replace("\x00", "\\0"), d.payload, d.reason, d.received_ms, d.site, d.device, d.seq)
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
            batch.handled(panel, d.seq)
            batch.acking.add(panel)
        store.insert_dead_seqs(self.db, rows)

    # phase: each touched panel's cumulative ack
    def _recompute_acks(self, panels: dict[Panel, _Panel], batch: _Batch) -> None:
        db = self.db
        for key in sorted(batch.acking | batch.unreadable):
            p = panels[key]
            start = max(p.ack or 0, p.floor - 1)
            ack = store.extend_run(db, key[0], key[1], start, batch.fresh.get(key, ()), p.max_seq)
            if key in batch.unreadable:
                inferred = store.infer_unreadable_gap(db, key[0], key[1], ack, self.grace_ms)
                if inferred:
                    seqs = batch.fresh.setdefault(key, set())
                    seqs.update(inferred)
                    ack = store.extend_run(db, key[0], key[1], ack, seqs, max(p.max_seq, max(seqs)))
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
        store.record_boot_clock(self.db, site, device, boot, t_ms, up_ms, source, received_ms)
        batch.boots.add(key)

    def ack_messages(self) -> list[Ack]:
        """Every panel's current ack as messages to (re)publish retained, e.g. after a reconnect."""
        return [self._ack_message(site, device, seq) for site, device, seq in store.all_acks(self.db)]


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


def _transient(exc: BaseException | None) -> bool:
    """Errors worth a retry of the same message (lock timeout, lost connection), as opposed to
    a message the database will never accept. A refused message is acked past (dead_seqs), so
    a failed reconnect (gateway.db.DatabaseError raised from the driver's error) is transient."""
    try:
        import psycopg

        kinds: tuple[type[Exception], ...] = (sqlite3.OperationalError, psycopg.OperationalError)
    except ImportError:
        kinds = (sqlite3.OperationalError,)
    for _ in range(8):  # the cause chain (bounded: a chain may loop)
        if exc is None:
            break
        if isinstance(exc, kinds):
            return True
        exc = exc.__cause__
    return False


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
