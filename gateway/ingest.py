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
"""

import json
import logging

from gateway import store
from protocol import ProtocolError, messages, topics

log = logging.getLogger("gateway.ingest")


class Ingestor:
    """Buffers decoded messages; flush() writes them in one transaction and returns acks."""

    # The service flushes when this many messages are buffered (or its time bound passes).
    BATCH_MAX = 500
    TOPIC_CACHE = 20000  # parsed topics kept (only valid ones; cleared when full)

    def __init__(self, db, root=topics.DEFAULT_ROOT, on_commit=None, grace_ms=store.LOST_GRACE_MS):
        self.db = db
        self.root = topics.check_root(root)
        self.on_commit = on_commit  # callable(changed_devices: set[(site, device)], now_ms)
        self.grace_ms = grace_ms  # store.infer_unreadable_gap's wait before passing a gap
        self._items = []  # (kind, received_ms, ...) in arrival order
        self._known_boots = set()  # (site, device, boot) whose clock offset is stored
        self._held_acks = []  # acks of items committed by a flush that then failed
        self._held_changed = set()  # their panels: derived after the next successful flush
        # per panel: highest stored seq, last ack, journal floor. This process is the only
        # writer of raw events and acks while it runs, so after the first look it needs no query.
        self._panel_cache = {}
        self._topics = {}  # topic -> parse() result: a few hundred panels, millions of messages
        self.stats = {
            "messages": 0,
            "events": 0,
            "duplicates": 0,
            "states": 0,
            "counts": 0,
            "dead_letters": 0,
            "acks": 0,
            "batches": 0,
            "hook_errors": 0,
            "stale_wills": 0,
        }

    def __len__(self):
        return len(self._items)

    # ---- buffering -------------------------------------------------------------------------
    def handle(self, topic, payload, received_ms):
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
            parsed = self._topics.get(topic)
            if parsed is None:
                parsed = topics.parse(self.root, topic)
                if len(self._topics) > self.TOPIC_CACHE:
                    self._topics.clear()
                self._topics[topic] = parsed
            site, device, kind = parsed
            if kind == "event":
                origin = (site, device)
                e = messages.decode_event(payload)
                self._items.append(
                    (
                        "event",
                        received_ms,
                        {
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
                        },
                    )
                )
            elif kind == "state":
                s = messages.decode_state(payload)
                self._items.append(("state", received_ms, site, device, s, payload, topic))
            elif kind == topics.COUNTS:
                c = messages.decode_counts(payload)
                self._items.append(("counts", received_ms, site, c, payload, topic))
            else:
                raise ProtocolError("topic", "%s messages are published by the gateway, not ingested" % kind)
        except ProtocolError as exc:
            self._dead(topic, payload, str(exc), received_ms, origin)
        except Exception as exc:  # a decoder bug must not stop ingest either
            log.exception("unexpected error decoding %r", topic)
            self._dead(topic, payload, "gateway error while decoding: %r" % exc, received_ms, origin)

    def _dead(self, topic, payload, reason, received_ms, origin=None):
        site = device = seq = None
        if origin:
            site, device = origin
            seq = readable_seq(payload)
        self._items.append(("dead", received_ms, topic, payload, reason, site, device, seq))

    # ---- writing ---------------------------------------------------------------------------
    def flush(self):
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
            now_ms = max(item[1] for item in items)
            try:
                self.on_commit(changed, now_ms)
            except Exception:  # derived data can be rebuilt (`rating rebuild`); ingest goes on
                self.stats["hook_errors"] += 1
                log.exception("on_commit hook failed for %d panel(s)", len(changed))
        return acks

    def _write_one_by_one(self, items):
        acks, changed, boots = [], set(), set()
        for i, item in enumerate(items):
            try:
                a, c, b = self._write([item])
            except Exception as one_exc:
                if not _transient(one_exc):
                    topic, payload = _topic_payload(item)
                    origin = (
                        (item[2]["site"], item[2]["device"], item[2]["seq"])
                        if item[0] == "event"
                        else (None, None, None)
                    )
                    try:
                        a, c, b = self._write(
                            [("dead", item[1], topic, payload, "database refused the message: %s" % one_exc) + origin]
                        )
                    except Exception as dl_exc:
                        one_exc = dl_exc
                    else:
                        one_exc = None
                if one_exc is not None:
                    # keep the rest for the next flush; what is committed is not written twice,
                    # and its acks go out with the next successful flush
                    self._items = items[i:]
                    self._held_acks += acks
                    self._held_changed |= changed
                    self._known_boots |= boots
                    raise one_exc
            acks.extend(a)
            changed |= c
            boots |= b
        self._items = []
        return acks, changed, boots

    def _write(self, items):
        db = self.db
        changed = set()
        boots = set()
        acks = []
        stats = dict.fromkeys(("events", "duplicates", "states", "counts", "dead_letters", "stale_wills"), 0)
        with db.transaction():
            panels = self._panels(db, items)  # committed knowledge, read before any write
            dead = []
            dead_seqs = []  # index into `dead` of the events whose seq counts as handled
            unreadable = set()  # panels that sent an event message without a readable seq
            event_rows = []
            resend_ack = set()
            for item in items:
                kind = item[0]
                if kind == "dead":
                    _, ms, topic, payload, reason, site, device, seq = item
                    if site is not None:
                        if seq is None:
                            unreadable.add((site, device))
                        else:
                            dead_seqs.append(len(dead))
                    dead.append((topic.replace("\x00", "\\0"), payload, reason, ms, site, device, seq))
                elif kind == "state":
                    _, ms, site, device, state, payload, _topic = item
                    stats["states"] += 1
                    if not store.upsert_state(db, site, device, state, ms, payload.decode("utf-8")):
                        # a replaced connection's will, delivered after the new connection's
                        # state (some brokers do): the panel is online, keep it so
                        stats["stale_wills"] += 1
                        log.info(
                            "%s/%s: stale will (boot %s conn %s) ignored, a newer connection is online",
                            site,
                            device,
                            state.get("boot"),
                            state.get("conn"),
                        )
                        continue
                    changed.add((site, device))
                    if state.get("online"):
                        panels[(site, device)].floor = store.held_floor(
                            {"last_seq": state.get("seq"), "pending": state.get("pending")}
                        )
                        if state.get("t") is not None:
                            self._learn_boot(site, device, state["boot"], state["t"], state["up"], "state", ms, boots)
                elif kind == "counts":
                    _, ms, site, c, payload, _topic = item
                    store.insert_counts(
                        db,
                        site,
                        c.get("device") or "",
                        c["from"],
                        c["to"],
                        c.get("transactions"),
                        c.get("visitors"),
                        "mqtt",
                        ms,
                    )
                    stats["counts"] += 1
                else:
                    event_rows.append(item[2])
            fresh = {}
            if event_rows:
                # a valid event for a seq acked past as a dead letter: the panel deleted that
                # event once acked, so this is another one (a wiped panel's, sent before it
                # renumbered): stored there and again under its new seq it would count twice
                taken = store.dead_only_seqs(
                    db,
                    [
                        (e["site"], e["device"], e["seq"])
                        for e in event_rows
                        if e["seq"] <= (panels[(e["site"], e["device"])].ack or 0)
                    ],
                )
                reused = [e for e in event_rows if (e["site"], e["device"], e["seq"]) in taken]
                stored, duplicates, conflicts = store.insert_events(
                    db,
                    [e for e in event_rows if (e["site"], e["device"], e["seq"]) not in taken],
                    {k: p.max_seq for k, p in panels.items()},
                )
                stats["events"] += len(stored)
                stats["duplicates"] += len(duplicates)
                # a panel resending stored events did not get its ack (lost retained message?):
                # publish it again even if it did not move. A seq re-used with other content
                # too: a wiped panel needs an ack above its seqs to renumber its events
                resend_ack = {(e["site"], e["device"]) for e in duplicates + conflicts + reused}
                for e in conflicts:
                    dead.append(
                        (
                            e["topic"],
                            e["payload"].encode("utf-8"),
                            "seq %d of %s/%s is already stored with different content"
                            " (panel journal reset or firmware bug?); the stored event is kept"
                            % (e["seq"], e["site"], e["device"]),
                            e["received_ms"],
                            e["site"],
                            e["device"],
                            e["seq"],
                        )
                    )
                for e in reused:
                    dead.append(
                        (
                            e["topic"],
                            e["payload"].encode("utf-8"),
                            "seq %d of %s/%s was acked past as a dead letter, so this is another"
                            " event (panel journal reset?)" % (e["seq"], e["site"], e["device"]),
                            e["received_ms"],
                            e["site"],
                            e["device"],
                            e["seq"],
                        )
                    )
                conflicts += reused
                last_seen = {}
                # any valid event proves the panel alive, a resend of stored ones too
                for e in duplicates + conflicts:
                    key = (e["site"], e["device"])
                    last_seen[key] = max(last_seen.get(key, 0), e["received_ms"])
                for e in stored:
                    key = (e["site"], e["device"])
                    changed.add(key)
                    fresh.setdefault(key, set()).add(e["seq"])
                    last_seen[key] = max(last_seen.get(key, 0), e["received_ms"])
                    if e["t_ms"] is not None:
                        self._learn_boot(
                            e["site"],
                            e["device"],
                            e["boot"],
                            e["t_ms"],
                            e["up_ms"],
                            "event:%d" % e["seq"],
                            e["received_ms"],
                            boots,
                        )
                store.touch_last_seen_many(db, [(s_, d_, ms) for (s_, d_), ms in last_seen.items()])
            acking = set(changed)
            if dead:
                keys = store.insert_dead_letters(db, dead)
                stats["dead_letters"] += len(dead)
                rows = []
                for i in dead_seqs:
                    topic, payload, reason, ms, site, device, seq = dead[i]
                    rows.append((site, device, seq, keys[i], 0, ms))
                    if seq <= (panels[(site, device)].ack or 0):
                        resend_ack.add((site, device))  # resent: the ack did not reach it
                    fresh.setdefault((site, device), set()).add(seq)
                    acking.add((site, device))
                store.insert_dead_seqs(db, rows)
            now_ms = max(item[1] for item in items)
            new_acks = {}
            for key in sorted(acking | unreadable):
                p = panels[key]
                start = max(p.ack or 0, p.floor - 1)
                ack = store.extend_run(db, key[0], key[1], start, fresh.get(key, ()), p.max_seq)
                if key in unreadable:
                    inferred = store.infer_unreadable_gap(db, key[0], key[1], ack, self.grace_ms)
                    if inferred:
                        seqs = fresh.setdefault(key, set())
                        seqs.update(inferred)
                        ack = store.extend_run(db, key[0], key[1], ack, seqs, max(p.max_seq, max(seqs)))
                if ack > (p.ack or 0):
                    new_acks[key] = ack
            store.record_acks(db, [(s_, d_, a, now_ms) for (s_, d_), a in new_acks.items()])
            for (site, device), ack in sorted(new_acks.items()):
                acks.append(self._ack_message(site, device, ack))
            for key in sorted(resend_ack - set(new_acks)):
                if panels[key].ack is not None:
                    acks.append(self._ack_message(key[0], key[1], panels[key].ack))
        # committed: only now do the counters, the panel cache and the acks become real
        for key, seqs in fresh.items():
            panels[key].max_seq = max(panels[key].max_seq, max(seqs))
        for key, ack in new_acks.items():
            panels[key].ack = ack
        for key, p in panels.items():
            self._panel_cache[key] = p
        for k, v in stats.items():
            self.stats[k] += v
        return acks, changed, boots

    def _ack_message(self, site, device, ack):
        return (topics.device_topic(self.root, site, device, "ack"), messages.encode_ack(ack), True, 1)

    def _panels(self, db, items):
        """{(site, device): _Panel} for the panels in `items`: copies of the cache (so a rolled
        back batch leaves the cache as it was), loaded from the database on first sight."""
        out = {}
        for item in items:
            if item[0] == "event":
                key = (item[2]["site"], item[2]["device"])
            elif item[0] == "state":
                key = (item[2], item[3])
            elif item[0] == "dead" and item[5] is not None:
                key = (item[5], item[6])
            else:
                continue
            if key in out:
                continue
            cached = self._panel_cache.get(key)
            out[key] = cached.copy() if cached else _Panel.load(db, *key)
        return out

    def _learn_boot(self, site, device, boot, t_ms, up_ms, source, received_ms, boots):
        key = (site, device, boot)
        if key in self._known_boots or key in boots:
            return
        store.record_boot_clock(self.db, site, device, boot, t_ms, up_ms, source, received_ms)
        boots.add(key)

    def ack_messages(self):
        """Every panel's current ack as messages to (re)publish retained, e.g. after a reconnect."""
        return [
            (topics.device_topic(self.root, site, device, "ack"), messages.encode_ack(seq), True, 1)
            for site, device, seq in store.all_acks(self.db)
        ]


class _Panel:
    __slots__ = ("max_seq", "ack", "floor")

    def __init__(self, max_seq, ack, floor):
        self.max_seq, self.ack, self.floor = max_seq, ack, floor

    def copy(self):
        return _Panel(self.max_seq, self.ack, self.floor)

    @classmethod
    def load(cls, db, site, device):
        return cls(
            store.max_handled_seq(db, site, device),
            store.last_ack(db, site, device),
            store.held_floor(store.panel_state(db, site, device)),
        )


def _transient(exc):
    """Errors worth a retry of the same message (lock timeout, lost connection), as opposed to
    a message the database will never accept. A refused message is acked past (dead_seqs), so
    a failed reconnect (gateway.db.DatabaseError raised from the driver's error) is transient."""
    import sqlite3

    try:
        import psycopg

        kinds = (sqlite3.OperationalError, psycopg.OperationalError)
    except ImportError:
        kinds = (sqlite3.OperationalError,)
    for _ in range(8):  # the cause chain (bounded: a chain may loop)
        if exc is None:
            break
        if isinstance(exc, kinds):
            return True
        exc = exc.__cause__
    return False


def readable_seq(payload):
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


def _topic_payload(item):
    kind = item[0]
    if kind == "dead":
        return item[2], item[3]
    if kind == "event":
        return item[2]["topic"], item[2]["payload"].encode("utf-8")
    if kind == "state":
        return item[6], item[5]
    return item[5], item[4]  # counts


def _dedupe_acks(acks):
    """One ack per topic: the last (highest) one wins."""
    latest = {}
    for a in acks:
        latest[a[0]] = a
    return list(latest.values())


def derive_hook(db):
    """on_commit callable running gateway.derive.update(db, devices, now_ms), or None if that
    module does not exist (yet)."""
    try:
        from gateway import derive
    except ModuleNotFoundError as exc:
        if exc.name != "gateway.derive":
            raise
        return None

    def hook(devices, now_ms):
        derive.update(db, devices, now_ms)

    return hook
