"""Reads and writes of the core ingest tables (see migrations/001_core.sql).

Every function takes a `gateway.db.Database` first and does no clock reading of its own: the
caller passes times in. Writers do not open transactions; the caller groups them
(`with db.transaction(): ...`) so one batch commits or nothing does.

The cumulative-ack rule (see README.md, "Acks and lost events"):
    the panel holds, per its latest state, the contiguous seq range [floor, state.seq] with
    floor = state.seq - state.pending + 1. A seq below floor that is not stored will never come
    (the panel dropped it on journal overflow). The ack is the highest N such that every seq
    1..N is stored, below floor, or dead-lettered (`dead_seqs`: an event of that seq came but
    could not be stored, see infer_unreadable_gap). It never passes a gap the panel may still fill.
"""

import bisect
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from gateway import partitions, timerepair
from gateway.db import Database, panel_filters

Row = dict[str, Any]  # a row as the adapter returns it (column -> value)
Panel = tuple[str, str]  # (site, device)

# A gap the panel has not confirmed as dropped counts as lost once it stayed open this long
# (panels resend unacked events after an ack timeout well below this).
LOST_GRACE_MS = 10 * 60 * 1000

# A panel sends at most this many events past its ack (firmware/link.py INFLIGHT_MAX), so the
# events of one resend round lie within acked + 1 .. acked + SEND_WINDOW.
SEND_WINDOW = 50

EVENT_COLUMNS = ("site", "device", "seq", "boot", "up_ms", "t_ms", "ev", "hold_ms", "received_ms", "payload")
_SAME_EVENT = ("boot", "up_ms", "t_ms", "ev", "hold_ms")

_INSERT_EVENT = (
    "INSERT INTO raw_events (site, device, seq, boot, up_ms, t_ms, ev, hold_ms, received_ms, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# The ledger of every (site, device, seq) ever stored (migration 055): unpartitioned, so it is
# the one unique key of an event whatever month its row lives in, and kept after the event rows
# are archived and purged (gateway/archive.py). The ack rule and the gap checks read it.
# Both inserts are guarded (DO NOTHING) as before; insert_events has already left out what the
# ledger holds, and the panels of a batch are locked (db.lock_names) when gateways share a store.
_INSERT_KEY = (
    "INSERT INTO raw_event_keys (site, device, seq, received_ms) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (site, device, seq) DO NOTHING"
)


# ---- raw events ------------------------------------------------------------------------------


def insert_events(
    db: Database, events: Sequence[Row], known_max: Mapping[Panel, int] | None = None
) -> tuple[list[Row], list[Row], list[Row]]:
    """Store events (dicts with EVENT_COLUMNS) once per (site, device, seq).

    Returns (stored, duplicates, conflicts): `stored` the events newly written, `duplicates` the
    exact re-sends ignored, `conflicts` the events whose (site, device, seq) is already
    stored with *different* content (the caller dead-letters them: never silently dropped).
    """
    fresh = {}
    duplicates = []
    conflicts = []
    for e in events:
        key = (e["site"], e["device"], e["seq"])
        seen = fresh.get(key)
        if seen is None:
            fresh[key] = e
        elif _same(seen, e):
            duplicates.append(e)
        else:
            conflicts.append(e)
    by_device = {}
    for site, device, seq in fresh:
        by_device.setdefault((site, device), []).append(seq)
    for (site, device), seqs in by_device.items():
        low = min(seqs)
        if known_max is not None and (site, device) in known_max and low > known_max[(site, device)]:
            continue  # all above what was stored: nothing to compare against
        # the key ledger says what was stored (also once its event was archived and purged:
        # a resend of it months later is a duplicate, never stored twice); the event row, found
        # through its received_ms (the partition key on PostgreSQL), says whether it is the same
        existing = db.query(
            "SELECT k.seq, r.seq AS kept, r.boot, r.up_ms, r.t_ms, r.ev, r.hold_ms FROM raw_event_keys k"
            " LEFT JOIN raw_events r ON r.site = k.site AND r.device = k.device AND r.seq = k.seq"
            " AND r.received_ms = k.received_ms"
            " WHERE k.site = ? AND k.device = ? AND k.seq >= ? AND k.seq <= ?",
            (site, device, low, max(seqs)),
        )
        for row in existing:
            e = fresh.pop((site, device, row["seq"]), None)
            if e is None:
                continue
            if row["kept"] is None or _same(row, e):  # purged: its content cannot be compared
                duplicates.append(e)
            else:
                conflicts.append(e)
    stored = list(fresh.values())
    db.executemany(_INSERT_KEY, [(e["site"], e["device"], e["seq"], e["received_ms"]) for e in stored])
    db.executemany(_INSERT_EVENT, [tuple(e[c] for c in EVENT_COLUMNS) for e in stored])
    return stored, duplicates, conflicts


# ---- archives and retention of raw events (gateway/archive.py) ------------------------------


def received_range(db: Database) -> tuple[int | None, int | None]:
    """(earliest, latest) received_ms of the event rows kept (None, None: none)."""
    row = db.query_one("SELECT MIN(received_ms) AS lo, MAX(received_ms) AS hi FROM raw_events")
    return (row["lo"], row["hi"]) if row else (None, None)


def count_received(db: Database, from_ms: int, to_ms: int) -> int:
    """Event rows kept with received_ms in [from_ms, to_ms)."""
    return (
        db.scalar("SELECT COUNT(*) FROM raw_events WHERE received_ms >= ? AND received_ms < ?", (from_ms, to_ms)) or 0
    )


def received_pages(db: Database, from_ms: int, to_ms: int, page: int = 5000) -> Iterable[list[Row]]:
    """The event rows received in [from_ms, to_ms), in (site, device, seq) order, `page` at a
    time (keyset pagination: memory stays at one page, each row is read once)."""
    after: tuple[str, str, int] = ("", "", -1)
    while True:
        rows = db.query(
            "SELECT %s FROM raw_events WHERE received_ms >= ? AND received_ms < ?"
            " AND (site > ? OR (site = ? AND device > ?) OR (site = ? AND device = ? AND seq > ?))"
            " ORDER BY site, device, seq LIMIT %d" % (", ".join(EVENT_COLUMNS), int(page)),
            (from_ms, to_ms, after[0], after[0], after[1], after[0], after[1], after[2]),
        )
        if not rows:
            return
        yield rows
        last = rows[-1]
        after = (last["site"], last["device"], last["seq"])


def received_before(db: Database, cutoff_ms: int) -> list[tuple[str, str, int, int]]:
    """[(site, device, highest seq, events)] of the event rows kept with received_ms < cutoff."""
    return [
        (r["site"], r["device"], r["top"], r["n"])
        for r in db.query(
            "SELECT site, device, MAX(seq) AS top, COUNT(*) AS n FROM raw_events WHERE received_ms < ?"
            " GROUP BY site, device ORDER BY site, device",
            (cutoff_ms,),
        )
    ]


def first_seq_from(db: Database, site: str, device: str, since_ms: int) -> int | None:
    """The lowest seq of the panel stored with received_ms >= since_ms (None: none): a seq
    below the ones received earlier that came late (a gap filled after a long outage)."""
    return db.scalar(
        "SELECT MIN(seq) FROM raw_events WHERE site = ? AND device = ? AND received_ms >= ?", (site, device, since_ms)
    )


def count_through(db: Database, site: str, device: str, seq: int, before_ms: int) -> int:
    """Event rows kept of the panel with seq <= `seq` received before before_ms."""
    return (
        db.scalar(
            "SELECT COUNT(*) FROM raw_events WHERE site = ? AND device = ? AND seq <= ? AND received_ms < ?",
            (site, device, seq, before_ms),
        )
        or 0
    )


def purge_received_before(db: Database, cutoff_ms: int, through: Mapping[Panel, int]) -> int:
    """Delete the event rows received before cutoff_ms whose seq is at or below their panel's
    `through` seq (archived and derived: gateway/archive.py decides). Their keys stay in
    raw_event_keys. On PostgreSQL a month partition below the cutoff all of whose rows go is
    dropped whole (last: it locks raw_events until the commit); the rest is deleted row by row.
    Returns the rows deleted."""
    whole = _whole_partitions(db, cutoff_ms, through) if db.dialect == "postgresql" else []
    skip = "".join(" AND NOT (received_ms >= %d AND received_ms < %d)" % (lo, hi) for _, lo, hi, _ in whole)
    deleted = 0
    for (site, device), seq in sorted(through.items()):
        n = db.execute(
            "DELETE FROM raw_events WHERE site = ? AND device = ? AND seq <= ? AND received_ms < ?" + skip,
            (site, device, seq, cutoff_ms),
        )
        deleted += max(n, 0)
    for name, _lo, _hi, n in whole:
        # the name comes from the catalog (raw_events_YYYYMM), not from input
        db.execute('ALTER TABLE raw_events DETACH PARTITION "%s"' % name)
        db.execute('DROP TABLE "%s"' % name)
        deleted += n
    return deleted


def _whole_partitions(db: Database, cutoff_ms: int, through: Mapping[Panel, int]) -> list[tuple[str, int, int, int]]:
    """[(name, from_ms, to_ms, rows)] of the month partitions below cutoff_ms whose every row
    is at or below its panel's `through` seq."""
    out = []
    for part in partitions.listing(db, "raw_events"):
        bound = partitions.range_of(part["bound"])
        if bound is None or bound[1] > cutoff_ms:
            continue  # the default partition, or a month not wholly below the cutoff
        tops = db.query(
            "SELECT site, device, MAX(seq) AS top, COUNT(*) AS n FROM raw_events"
            " WHERE received_ms >= ? AND received_ms < ? GROUP BY site, device",
            bound,
        )
        if all(r["top"] <= through.get((r["site"], r["device"]), 0) for r in tops):
            out.append((part["name"], bound[0], bound[1], sum(r["n"] for r in tops)))
    return out


_EVENT_TYPES = dict.fromkeys(EVENT_COLUMNS, "BIGINT") | {
    "site": "TEXT",
    "device": "TEXT",
    "ev": "TEXT",
    "payload": "TEXT",
}


def restore_events(db: Database, rows: Sequence[Row]) -> None:
    """Put archived event rows back (gateway/archive.py restore): only those whose key is in
    the ledger with the same arrival and whose row is not kept (never a second copy, never an
    event the store did not have)."""
    db.executemany(
        "INSERT INTO raw_events (%s) SELECT %s WHERE EXISTS (SELECT 1 FROM raw_event_keys k WHERE k.site = ?"
        " AND k.device = ? AND k.seq = ? AND k.received_ms = ?) AND NOT EXISTS (SELECT 1 FROM raw_events r"
        " WHERE r.site = ? AND r.device = ? AND r.seq = ?)"
        % (", ".join(EVENT_COLUMNS), ", ".join("CAST(? AS %s)" % _EVENT_TYPES[c] for c in EVENT_COLUMNS)),
        [
            tuple(e[c] for c in EVENT_COLUMNS)
            + (e["site"], e["device"], e["seq"], e["received_ms"], e["site"], e["device"], e["seq"])
            for e in rows
        ],
    )


_ARCHIVE_COLUMNS = ("month", "from_ms", "to_ms", "file", "events", "sha256", "archived_ms", "purged_ms", "purged")


def record_archive(
    db: Database, month: str, from_ms: int, to_ms: int, file: str, events: int, sha256: str, now_ms: int
) -> None:
    db.execute(
        "INSERT INTO raw_archives (month, from_ms, to_ms, file, events, sha256, archived_ms, purged_ms, purged)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0) ON CONFLICT (month) DO UPDATE SET file = excluded.file,"
        " events = excluded.events, sha256 = excluded.sha256, archived_ms = excluded.archived_ms",
        (month, from_ms, to_ms, file, events, sha256, now_ms),
    )


def archives(db: Database) -> list[Row]:
    """Every archived month, oldest first."""
    return db.query("SELECT %s FROM raw_archives ORDER BY month" % ", ".join(_ARCHIVE_COLUMNS))


def mark_purged(db: Database, month: str, purged: int, now_ms: int | None) -> None:
    """Record how many of a month's archived events are purged, and when the last of them went
    (None: some are still kept, or were put back by a restore)."""
    db.execute("UPDATE raw_archives SET purged_ms = ?, purged = ? WHERE month = ?", (now_ms, purged, month))


def ensure_month_partitions(db: Database, now_ms: int) -> int:
    """PostgreSQL: raw_events' partitions of last month through the coming months (the worker,
    hourly; gateway/partitions.py)."""
    return partitions.ensure(db, "raw_events", "received_ms", now_ms)


def ensure_month_partition(db: Database, t_ms: int) -> int:
    """PostgreSQL: the partition of raw_events for the month of t_ms (archived events put back
    into a month whose partition was dropped)."""
    return partitions.ensure_range(db, "raw_events", "received_ms", t_ms, t_ms)


def _same(a: Row, b: Row) -> bool:
    return all(a[c] == b[c] for c in _SAME_EVENT)


def events(db: Database, site: str, device: str, after_seq: int = 0, limit: int | None = None) -> list[Row]:
    """Stored events of one panel with seq > after_seq, in seq order (dict rows)."""
    sql = "SELECT * FROM raw_events WHERE site = ? AND device = ? AND seq > ? ORDER BY seq"
    if limit:
        sql += " LIMIT %d" % int(limit)
    return db.query(sql, (site, device, after_seq))


# what a derivation reads of an event (not the payload: the bulk of a row, read by nothing there)
_DERIVED_FROM = "site, device, seq, boot, up_ms, t_ms, ev, hold_ms, received_ms"


def events_to_derive(db: Database, site: str, device: str, after_seq: int, limit: int) -> list[Row]:
    """Up to `limit` stored events of one panel with seq > after_seq, in seq order, without the
    payload (what a derivation reads: `rating rebuild` pages through a panel so)."""
    return db.query(
        "SELECT %s FROM raw_events WHERE site = ? AND device = ? AND seq > ? ORDER BY seq LIMIT %d"
        % (_DERIVED_FROM, int(limit)),
        (site, device, after_seq),
    )


def timed_events(db: Database, site: str, device: str, after_seq: int = 0, limit: int | None = None) -> list[Row]:
    """Like events(), each row with `at_ms` and `time_source` (device | repaired | arrival)."""
    offsets = boot_offsets(db, site, device)
    rows = events(db, site, device, after_seq, limit)
    for r in rows:
        r["at_ms"], r["time_source"] = timerepair.resolve(r["t_ms"], r["boot"], r["up_ms"], r["received_ms"], offsets)
    return rows


def dead_letter_panels(db: Database) -> set[Panel]:
    """Every (site, device) with a dead-lettered seq: a panel may be known only by those (every
    panel that sent a valid message has a panel_state row). dead_seqs is small; raw_event_keys is
    not scanned."""
    return {(r["site"], r["device"]) for r in db.query("SELECT DISTINCT site, device FROM dead_seqs")}


def devices(db: Database) -> list[Panel]:
    """Every (site, device) known from events, dead-lettered events or state, sorted."""
    rows = db.query("SELECT site, device FROM panel_state UNION SELECT DISTINCT site, device FROM dead_seqs")
    return sorted({(r["site"], r["device"]) for r in rows} | set(event_panels(db)))


def has_events(db: Database) -> bool:
    """Whether any event is stored."""
    return db.query_one("SELECT 1 AS x FROM raw_event_keys LIMIT 1") is not None


# PostgreSQL: the same skip scan as one statement (a round trip per panel costs more there)
_PANELS_SKIP_SCAN = (
    "WITH RECURSIVE p (site, device) AS ("
    " (SELECT site, device FROM raw_event_keys ORDER BY site, device LIMIT 1)"
    " UNION ALL SELECT n.site, n.device FROM p CROSS JOIN LATERAL (SELECT r.site, r.device FROM raw_event_keys r"
    " WHERE (r.site, r.device) > (p.site, p.device) ORDER BY r.site, r.device LIMIT 1) n)"
    " SELECT site, device FROM p"
)


def gapless(db: Database, stored_through: Mapping[Panel, int]) -> set[Panel]:
    """The panels of `stored_through` ({panel: seq with 1..seq all stored, 0 = none known})
    for which gaps(..., stored_through=seq) finds nothing: the stored seqs from it on run
    without a hole from it (or from 1) to the newest, no dead-lettered seq left unstored, and the journal
    floor is not above the newest stored seq. A few statements for all panels (index seeks and
    ranges above those seqs): a report's lost-event check on a chain calls gaps() only for the
    others, not twice per panel for thousands of panels."""
    dead = {  # a dead-lettered seq is a gap unless the event was stored after all (gaps())
        (r["site"], r["device"])
        for r in db.query(
            "SELECT DISTINCT d.site, d.device FROM dead_seqs d WHERE NOT EXISTS (SELECT 1 FROM raw_event_keys r"
            " WHERE r.site = d.site AND r.device = d.device AND r.seq = d.seq)"
        )
    }
    states = {(r["site"], r["device"]): r for r in panel_states(db)}
    items = sorted((p, s) for p, s in stored_through.items() if p not in dead)
    out: set[Panel] = set()
    for i in range(0, len(items), 300):
        chunk = items[i : i + 300]
        rows = db.query(
            "WITH t (site, device, through) AS (VALUES %s) SELECT t.site, t.device, t.through,"
            " (SELECT MAX(r.seq) FROM raw_event_keys r WHERE r.site = t.site AND r.device = t.device) AS top,"
            " (SELECT MIN(r.seq) FROM raw_event_keys r WHERE r.site = t.site AND r.device = t.device"
            " AND r.seq >= t.through) AS low,"
            " (SELECT COUNT(*) FROM raw_event_keys r WHERE r.site = t.site AND r.device = t.device"
            " AND r.seq >= t.through) AS above FROM t" % ", ".join(["(?, ?, CAST(? AS BIGINT))"] * len(chunk)),
            tuple(x for (site, device), through in chunk for x in (site, device, through)),
        )
        for r in rows:
            panel = (r["site"], r["device"])
            top, low, above = r["top"] or 0, r["low"], r["above"]
            # gaps(): a hole before the first seq read (above max(1, through)) or between two read
            holes = above and (low > max(1, r["through"]) or top - low + 1 != above)
            if not holes and held_floor(states.get(panel)) - 1 <= top:
                out.add(panel)
    return out


def event_panels(db: Database) -> list[Panel]:
    """Every (site, device) with stored events, sorted: a skip scan, one or two primary-key
    index seeks per panel (the next device of the office, else the next office), not a walk over
    every stored event (neither SQLite nor PostgreSQL skips through an index for DISTINCT)."""
    if db.dialect == "postgresql":
        return [(r["site"], r["device"]) for r in db.query(_PANELS_SKIP_SCAN)]
    out: list[Panel] = []
    row = db.query_one("SELECT site, device FROM raw_event_keys ORDER BY site, device LIMIT 1")
    while row is not None:
        site, device = row["site"], row["device"]
        out.append((site, device))
        row = db.query_one(
            "SELECT site, device FROM raw_event_keys WHERE site = ? AND device > ? ORDER BY device LIMIT 1",
            (site, device),
        ) or db.query_one(
            "SELECT site, device FROM raw_event_keys WHERE site > ? ORDER BY site, device LIMIT 1", (site,)
        )
    return out


def event_count_through(db: Database, site: str, device: str, seq: int) -> int:
    """How many events of the panel are stored with a seq <= `seq`."""
    return (
        db.scalar("SELECT COUNT(*) FROM raw_event_keys WHERE site = ? AND device = ? AND seq <= ?", (site, device, seq))
        or 0
    )


def event_kinds(db: Database) -> dict[Panel, dict[int, str]]:
    """{(site, device): {seq: ev}} of every stored event (the simulator's stored-once check)."""
    out = {}
    for r in db.query("SELECT site, device, seq, ev FROM raw_events ORDER BY site, device, seq"):
        out.setdefault((r["site"], r["device"]), {})[r["seq"]] = r["ev"]
    return out


def panels_seen_since(db: Database, since_ms: int) -> set[Panel]:
    """{(site, device)} of the panels whose last message arrived at or after since_ms."""
    return {
        (r["site"], r["device"])
        for r in db.query("SELECT site, device FROM panel_state WHERE last_seen_ms >= ?", (since_ms,))
    }


# ---- boot clock ------------------------------------------------------------------------------


def record_boot_clock(
    db: Database, site: str, device: str, boot: int, t_ms: int, up_ms: int, source: str, received_ms: int
) -> bool:
    """Remember t - up for this boot from the first message that carried both; True if new."""
    return (
        db.execute(
            "INSERT INTO boot_clock (site, device, boot, offset_ms, source, received_ms)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, boot) DO NOTHING",
            (site, device, boot, t_ms - up_ms, source, received_ms),
        )
        == 1
    )


def record_boot_clocks(db: Database, rows: Iterable[tuple[str, str, int, int, int, str, int]]) -> None:
    """record_boot_clock for [(site, device, boot, t_ms, up_ms, source, received_ms)] in one
    executemany; the first row of a boot wins, as does a row stored before."""
    db.executemany(
        "INSERT INTO boot_clock (site, device, boot, offset_ms, source, received_ms)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, boot) DO NOTHING",
        [(s, d, b, t - up, src, ms) for s, d, b, t, up, src, ms in rows],
    )


def boot_offsets(db: Database, site: str, device: str) -> dict[int, int]:
    """{boot: offset_ms} of one panel."""
    rows = db.query("SELECT boot, offset_ms FROM boot_clock WHERE site = ? AND device = ?", (site, device))
    return {r["boot"]: r["offset_ms"] for r in rows}


def boot_offsets_of(db: Database, panels: Sequence[Panel]) -> dict[Panel, dict[int, int]]:
    """boot_offsets() of several panels in one query: {(site, device): {boot: offset_ms}}
    (a panel without any: no entry)."""
    out: dict[Panel, dict[int, int]] = {}
    for where, params in panel_filters(panels):
        for r in db.query("SELECT site, device, boot, offset_ms FROM boot_clock WHERE " + where, params):
            out.setdefault((r["site"], r["device"]), {})[r["boot"]] = r["offset_ms"]
    return out


# ---- panel state -----------------------------------------------------------------------------

_LAST_SEEN = (
    "last_seen_ms = CASE WHEN panel_state.last_seen_ms IS NULL"
    " OR excluded.last_seen_ms > panel_state.last_seen_ms"
    " THEN excluded.last_seen_ms ELSE panel_state.last_seen_ms END"
)


def upsert_state(db: Database, site: str, device: str, state: Row, received_ms: int, payload: str) -> bool:
    """Store a decoded state message (protocol.messages.decode_state's dict).

    The offline form (the broker-published last will) only flips `online`; the rest of the
    panel's last known state stays, and last_seen is not moved (the panel did not speak).
    Returns False (and writes nothing) for a stale will: an offline state whose (boot, conn)
    is older than the stored online state's - a replaced connection's will that the broker
    delivered after the new connection's state (migrations/003_state_conn.sql). True otherwise.
    """
    if not state.get("online"):
        if stale_will(panel_state(db, site, device), state):
            return False
        db.execute(
            "INSERT INTO panel_state (site, device, online, state_ms, payload)"
            " VALUES (?, ?, 0, ?, ?) ON CONFLICT (site, device) DO UPDATE SET"
            " online = 0, state_ms = excluded.state_ms, payload = excluded.payload",
            (site, device, received_ms, payload),
        )
        return True
    upsert_online_states(db, [(site, device, state, received_ms, payload)])
    return True


def upsert_online_states(db: Database, rows: Sequence[tuple[str, str, Row, int, str]]) -> None:
    """Store [(site, device, state, received_ms, payload)] of online states in one executemany,
    in order (a later state of the same panel wins), as upsert_state does one."""
    db.executemany(
        "INSERT INTO panel_state (site, device, online, last_seen_ms, state_ms, boot, up_ms, t_ms,"
        " fw, last_seq, pending, dropped, heap, rssi, faults, cfg, cfg_err, payload, conn)"
        " VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (site, device) DO UPDATE SET online = 1, " + _LAST_SEEN + ","
        " state_ms = excluded.state_ms, boot = excluded.boot, up_ms = excluded.up_ms,"
        " t_ms = excluded.t_ms, fw = excluded.fw, last_seq = excluded.last_seq,"
        " pending = excluded.pending, dropped = excluded.dropped, heap = excluded.heap,"
        " rssi = excluded.rssi, faults = excluded.faults, cfg = excluded.cfg,"
        " cfg_err = excluded.cfg_err, payload = excluded.payload, conn = excluded.conn",
        [
            (
                site,
                device,
                received_ms,
                received_ms,
                state.get("boot"),
                state.get("up"),
                state.get("t"),
                state.get("fw"),
                state.get("seq"),
                state.get("pending"),
                state.get("dropped"),
                state.get("heap"),
                state.get("rssi"),
                json.dumps(state.get("faults") or [], ensure_ascii=False),
                None if state.get("cfg") is None else str(state.get("cfg")),
                state.get("cfg_err"),
                payload,
                state.get("conn"),
            )
            for site, device, state, received_ms, payload in rows
        ],
    )


def stale_will(row: Row | None, state: Row) -> bool:
    """True when offline `state` carries (boot, conn) older than those of the stored online
    panel_state `row`. Without both numbers on either side nothing can be ordered: not stale."""
    boot, conn = state.get("boot"), state.get("conn")
    if row is None or not row.get("online") or boot is None or conn is None:
        return False
    if row.get("boot") is None or row.get("conn") is None:
        return False
    return (boot, conn) < (row["boot"], row["conn"])


def touch_last_seen(db: Database, site: str, device: str, received_ms: int) -> None:
    """An event proves the panel alive: move last_seen forward (never back)."""
    db.execute(
        "INSERT INTO panel_state (site, device, last_seen_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (site, device) DO UPDATE SET " + _LAST_SEEN,
        (site, device, received_ms),
    )


def touch_last_seen_many(db: Database, rows: Iterable[tuple[str, str, int]]) -> None:
    """touch_last_seen for [(site, device, received_ms)] in one executemany."""
    db.executemany(
        "INSERT INTO panel_state (site, device, last_seen_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (site, device) DO UPDATE SET " + _LAST_SEEN,
        rows,
    )


def max_seq(db: Database, site: str, device: str) -> int:
    """The highest stored seq of a panel (0: none)."""
    return db.scalar("SELECT MAX(seq) AS m FROM raw_event_keys WHERE site = ? AND device = ?", (site, device)) or 0


def max_handled_seq(db: Database, site: str, device: str) -> int:
    """The highest seq of a panel that is stored or dead-lettered (0: none)."""
    dead = db.scalar("SELECT MAX(seq) AS m FROM dead_seqs WHERE site = ? AND device = ?", (site, device)) or 0
    return max(max_seq(db, site, device), dead)


def panel_knowledge(db: Database, panels: Sequence[Panel]) -> dict[Panel, tuple[int, int | None, Row | None]]:
    """{(site, device): (highest seq stored or dead-lettered, last ack, panel_state row)} for
    many panels in a few queries (a fleet reconnecting after a gateway restart: 2,000 panels at
    once used to cost 8,000 look-ups on the ack path)."""
    out: dict[Panel, tuple[int, int | None, Row | None]] = {}
    for i in range(0, len(panels), 200):  # SQLite allows 32,766 parameters; PostgreSQL 65,535
        chunk = list(panels[i : i + 200])
        keys = "(site, device) IN (VALUES %s)" % ", ".join(["(?, ?)"] * len(chunk))
        params = tuple(x for key in chunk for x in key)
        top: dict[Panel, int] = {}
        for table in ("raw_event_keys", "dead_seqs"):
            for r in db.query(
                "SELECT site, device, MAX(seq) AS m FROM %s WHERE %s GROUP BY site, device" % (table, keys), params
            ):
                key = (r["site"], r["device"])
                top[key] = max(top.get(key, 0), int(r["m"] or 0))
        acked = {
            (r["site"], r["device"]): r["acked_seq"]
            for r in db.query("SELECT site, device, acked_seq FROM acks WHERE %s" % keys, params)
        }
        states = {(r["site"], r["device"]): r for r in db.query("SELECT * FROM panel_state WHERE %s" % keys, params)}
        for key in chunk:
            out[key] = (top.get(key, 0), acked.get(key), states.get(key))
    return out


def panel_state(db: Database, site: str, device: str) -> Row | None:
    return db.query_one("SELECT * FROM panel_state WHERE site = ? AND device = ?", (site, device))


def panel_states(db: Database) -> list[Row]:
    return db.query("SELECT * FROM panel_state ORDER BY site, device")


def held_floor(state: Mapping[str, Any] | None) -> int:
    """The lowest seq the panel still holds per its state (1 when unknown).

    The panel's journal is the contiguous range [seq - pending + 1, seq]; everything below was
    either acked (so stored) or dropped on overflow (so never coming).
    """
    if not state or state.get("last_seq") is None or state.get("pending") is None:
        return 1
    return max(1, state["last_seq"] - state["pending"] + 1)


# ---- acks ------------------------------------------------------------------------------------


def journaled_seq(state: Mapping[str, Any] | None) -> int:
    """The highest seq the panel reported having journaled (its latest state's `seq`; 0 when
    unknown). A dead letter hands its seq over to the ack only at or below it: junk with a
    readable seq must not let the ack pass seqs the panel has not used yet (it would drop the
    presses it journals under them later)."""
    if not state or state.get("last_seq") is None:
        return 0
    return int(state["last_seq"])


def contiguous_acked_seq(
    db: Database, site: str, device: str, state: Row | None = None, previous: int | None = None
) -> int:
    """The cumulative ack for one panel: highest N with every seq 1..N stored, dead-lettered
    (`dead_seqs`, at or below journaled_seq) or known dropped."""
    if state is None:
        state = panel_state(db, site, device)
    if previous is None:
        previous = last_ack(db, site, device) or 0
    start = max(previous, held_floor(state) - 1)
    dead_upto = journaled_seq(state)
    if not db.query_one(
        "SELECT 1 AS x FROM raw_event_keys WHERE site = ? AND device = ? AND seq = ?"
        " UNION ALL SELECT 1 AS x FROM dead_seqs WHERE site = ? AND device = ? AND seq = ? AND seq <= ?",
        (site, device, start + 1) * 2 + (dead_upto,),
    ):
        return start
    # the end of the handled run that begins at start + 1: the first seq whose successor is missing
    end = db.scalar(
        "SELECT MIN(h.seq) AS m FROM (SELECT seq FROM raw_event_keys WHERE site = ? AND device = ?"
        " AND seq > ? UNION ALL SELECT seq FROM dead_seqs WHERE site = ? AND device = ? AND seq > ?"
        " AND seq <= ?) h"
        " WHERE NOT EXISTS (SELECT 1 FROM raw_event_keys x WHERE x.site = ? AND x.device = ?"
        " AND x.seq = h.seq + 1) AND NOT EXISTS (SELECT 1 FROM dead_seqs y WHERE y.site = ?"
        " AND y.device = ? AND y.seq = h.seq + 1 AND y.seq <= ?)",
        (site, device, start) * 2 + (dead_upto,) + (site, device) * 2 + (dead_upto,),
    )
    return start if end is None else int(end)


def extend_run(
    db: Database, site: str, device: str, start: int, fresh_seqs: Iterable[int], max_known: int, dead_upto: int
) -> int:
    """The end of the handled run start+1, start+2, ... (stored, or dead-lettered at or below
    `dead_upto`) given the seqs just handled (`fresh_seqs`, dead ones already cut at dead_upto)
    and the highest seq handled before them (`max_known`): no query unless the run reaches into
    seqs that arrived out of order earlier. Same answer as contiguous_acked_seq's run."""
    fresh = set(fresh_seqs)
    n = start
    while True:
        while n + 1 in fresh:
            n += 1
        if n + 1 > max_known:
            return n
        rows = db.query(
            "SELECT seq FROM raw_event_keys WHERE site = ? AND device = ? AND seq > ?"
            " UNION SELECT seq FROM dead_seqs WHERE site = ? AND device = ? AND seq > ? AND seq <= ?"
            " ORDER BY seq LIMIT 512",
            (site, device, n) * 2 + (dead_upto,),
        )
        before = n
        for r in rows:
            if r["seq"] != n + 1:
                break
            n += 1
        if n == before:
            return n


def record_acks(db: Database, rows: Iterable[tuple[str, str, int, int]]) -> None:
    """Record [(site, device, acked_seq, now_ms)] as published; an ack never goes down."""
    db.executemany(
        "INSERT INTO acks (site, device, acked_seq, published_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (site, device) DO UPDATE SET acked_seq = excluded.acked_seq,"
        " published_ms = excluded.published_ms WHERE excluded.acked_seq > acks.acked_seq",
        rows,
    )


def last_ack(db: Database, site: str, device: str) -> int | None:
    """The ack last recorded as published for a panel, or None."""
    return db.scalar("SELECT acked_seq FROM acks WHERE site = ? AND device = ?", (site, device))


def all_acks(db: Database) -> list[tuple[str, str, int]]:
    """[(site, device, acked_seq)] - republished (retained) whenever the gateway (re)connects."""
    return [
        (r["site"], r["device"], r["acked_seq"])
        for r in db.query("SELECT site, device, acked_seq FROM acks ORDER BY site, device")
    ]


# ---- gaps and lost events --------------------------------------------------------------------


def gaps(
    db: Database,
    site: str,
    device: str,
    now_ms: int,
    grace_ms: int = LOST_GRACE_MS,
    state: Row | None = None,
    stored_through: int = 0,
) -> list[Row]:
    """Missing seq ranges of one panel, each a dict:
    {"first", "last", "count", "status": "lost" | "open", "why"}.

    lost + why "dropped": the panel no longer holds them (below its journal floor);
    lost + why "dead_letter": the event came but could not be stored (`dead_seqs`): acked, so the
    panel let it go; the message is in dead_letters;
    lost + why "overdue": still missing `grace_ms` after a later seq arrived;
    open: missing, recently; the panel may still send them.
    Seqs above the newest stored one are backlog (the panel's `pending`), not gaps - except below
    the panel's floor, where they are dropped.
    stored_through: a seq known to have every seq 1..it stored (gateway.derive.stored_through):
    only the events from it on are read (an index range), not every event of the panel.
    """
    if state is None:
        state = panel_state(db, site, device)
    floor = held_floor(state)
    rows = db.query(
        "SELECT seq, received_ms, prev FROM ("
        " SELECT seq, received_ms, LAG(seq) OVER (ORDER BY seq) AS prev FROM raw_event_keys"
        " WHERE site = ? AND device = ? AND seq >= ?) w"
        " WHERE (w.prev IS NULL AND w.seq > ?) OR w.seq > w.prev + 1 ORDER BY seq",
        (site, device, stored_through, max(1, stored_through)),
    )
    holes = [((r["prev"] or 0) + 1, r["seq"] - 1, r["received_ms"]) for r in rows]
    top = db.scalar("SELECT MAX(seq) FROM raw_event_keys WHERE site = ? AND device = ?", (site, device)) or 0
    if floor - 1 > top:
        holes.append((top + 1, floor - 1, None))
    out = []
    for first, last, since in holes:
        if first < floor:
            cut = min(last, floor - 1)
            out.append(_gap(first, cut, "lost", "dropped"))
            first = cut + 1
        if first <= last:
            overdue = since is not None and now_ms - since > grace_ms
            out.append(_gap(first, last, "lost" if overdue else "open", "overdue" if overdue else "waiting"))
    dead = [
        r["seq"]
        for r in db.query(
            "SELECT seq FROM dead_seqs d WHERE site = ? AND device = ? AND NOT EXISTS (SELECT 1 FROM"
            " raw_event_keys r WHERE r.site = d.site AND r.device = d.device AND r.seq = d.seq) ORDER BY seq",
            (site, device),
        )
    ]
    if dead:
        out = _without(out, dead) + [_gap(a, b, "lost", "dead_letter") for a, b in _runs(dead)]
        out.sort(key=lambda g: g["first"])
    return out


def _without(gap_list, dead):
    """gap_list with the (sorted) seqs `dead` cut out of its ranges."""
    out = []
    for g in gap_list:
        a = g["first"]
        i = bisect.bisect_left(dead, a)
        while i < len(dead) and dead[i] <= g["last"]:
            if dead[i] > a:
                out.append(_gap(a, dead[i] - 1, g["status"], g["why"]))
            a = dead[i] + 1
            i += 1
        if a <= g["last"]:
            out.append(_gap(a, g["last"], g["status"], g["why"]))
    return out


def _runs(seqs):
    """Sorted distinct ints -> [(first, last)] of their consecutive runs."""
    out = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [tuple(r) for r in out]


def _gap(first, last, status, why):
    return {"first": first, "last": last, "count": last - first + 1, "status": status, "why": why}


def lost_summary(gap_list: Iterable[Row]) -> tuple[int, str]:
    """(count, "a-b,c") of the lost gaps."""
    lost = [g for g in gap_list if g["status"] == "lost"]
    ranges = ",".join(str(g["first"]) if g["first"] == g["last"] else "%d-%d" % (g["first"], g["last"]) for g in lost)
    return sum(g["count"] for g in lost), ranges


# ---- dead letters ----------------------------------------------------------------------------


# A dead letter keeps at most this much of its payload: every valid message is smaller
# (protocol.checks.MAX_BYTES), so only junk is cut; the size and the sha256 of the whole stay.
DEAD_LETTER_KEEP = 1024


class Clip(NamedTuple):
    """A payload cut to its first DEAD_LETTER_KEEP bytes, with the size and hash of the whole."""

    prefix: bytes
    size: int
    sha256: str


def clip(payload: bytes) -> Clip:
    """What a dead letter keeps of `payload` (cut only when longer than DEAD_LETTER_KEEP)."""
    return Clip(bytes(payload[:DEAD_LETTER_KEEP]), len(payload), hashlib.sha256(payload).hexdigest())


class Letter(NamedTuple):
    """A message that could not be stored as what it claimed to be."""

    topic: str
    payload: bytes | Clip  # the whole payload, or what clip() kept of it
    reason: str
    received_ms: int
    site: str | None = None  # the panel and seq of an event, where known
    device: str | None = None
    seq: int | None = None


def dead_letter_key(topic: str | bytes, payload: str | bytes | Clip) -> str:
    """A dead letter's idempotency key: hex sha256 of the topic (UTF-8), one NUL byte and the
    payload bytes; for a payload longer than DEAD_LETTER_KEEP, of the topic, NUL, "clip", NUL,
    the whole payload's sha256 and size. 004_dead_letter_key.*.sql computes the same in SQL for
    older rows."""
    if isinstance(topic, str):
        topic = topic.encode("utf-8", "surrogatepass")
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    if isinstance(payload, Clip):
        if payload.size <= DEAD_LETTER_KEEP:
            payload = payload.prefix
        else:
            payload = b"clip\x00%s %d" % (payload.sha256.encode(), payload.size)
            return hashlib.sha256(bytes(topic) + b"\x00" + payload).hexdigest()
    return hashlib.sha256(bytes(topic) + b"\x00" + bytes(payload)).hexdigest()


def insert_dead_letters(db: Database, letters: Sequence[Letter]) -> list[str]:
    """Store `letters`; returns their keys (dead_letter_key).

    Idempotent on (topic, payload): the same message again (a broker redelivery, a panel's
    resend, `rating replay` run twice) only counts `seen` up and moves `last_seen_ms`; the
    first reason and arrival stay. At most DEAD_LETTER_KEEP bytes of a payload are stored, with
    `size` and `payload_sha256` of the whole one."""
    rows, keys = [], []
    for letter in letters:
        body = letter.payload if isinstance(letter.payload, Clip) else clip(letter.payload)
        key = dead_letter_key(letter.topic, body)
        keys.append(key)
        ms = letter.received_ms
        rows.append(
            (key, letter.topic, body.prefix, letter.reason, ms, ms, letter.site, letter.device, letter.seq)
            + (body.size, body.sha256)
        )
    db.executemany(
        "INSERT INTO dead_letters (msg_key, topic, payload, reason, received_ms, last_seen_ms, seen,"
        " site, device, seq, size, payload_sha256) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)"
        " ON CONFLICT (msg_key) DO UPDATE SET"
        " seen = dead_letters.seen + 1, last_seen_ms = CASE WHEN dead_letters.last_seen_ms IS NULL"
        " OR excluded.last_seen_ms > dead_letters.last_seen_ms THEN excluded.last_seen_ms"
        " ELSE dead_letters.last_seen_ms END, site = COALESCE(dead_letters.site, excluded.site),"
        " device = COALESCE(dead_letters.device, excluded.device),"
        " seq = COALESCE(dead_letters.seq, excluded.seq)",
        rows,
    )
    return keys


def insert_dead_seqs(db: Database, rows: Iterable[tuple[str, str, int, str, int, int]]) -> None:
    """rows: [(site, device, seq, msg_key, inferred, received_ms)]: seqs handled by a dead letter."""
    db.executemany(
        "INSERT INTO dead_seqs (site, device, seq, msg_key, inferred, received_ms)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, seq) DO NOTHING",
        rows,
    )


def dead_only_seqs(db: Database, keys: Iterable[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
    """{(site, device, seq)} of `keys` that are in dead_seqs and not stored as events."""
    by_panel = {}
    for site, device, seq in keys:
        by_panel.setdefault((site, device), []).append(seq)
    out = set()
    for (site, device), seqs in by_panel.items():
        rows = db.query(
            "SELECT seq FROM dead_seqs d WHERE site = ? AND device = ? AND seq >= ? AND seq <= ?"
            " AND NOT EXISTS (SELECT 1 FROM raw_event_keys r WHERE r.site = d.site"
            " AND r.device = d.device AND r.seq = d.seq)",
            (site, device, min(seqs), max(seqs)),
        )
        wanted = set(seqs)
        out.update((site, device, r["seq"]) for r in rows if r["seq"] in wanted)
    return out


def infer_unreadable_gap(db: Database, site: str, device: str, acked: int, grace_ms: int) -> list[int]:
    """The seqs an unreadable event message of this panel stands in for, recorded in dead_seqs;
    [] when the evidence is not there (then nothing is written).

    The panel resends, in seq order from its ack + 1, until an ack covers an event; a message on
    its event topic without a readable seq cannot be acked by seq. The gap acked+1 .. (the next
    handled seq - 1) is taken as handled when (a) it has been open longer than `grace_ms`
    (LOST_GRACE_MS: the same time after which status calls a gap lost) since the event above it
    first arrived, and (b) an unreadable message of this panel came at least twice, the last
    time after that grace: the panel went on resending from the gap and what it sent there
    could not be read. A gap alone, however old, is never passed (the panel may still fill it),
    nor one reaching past the panel's send window (SEND_WINDOW) above the ack."""
    above = []
    for table in ("raw_event_keys", "dead_seqs"):
        row = db.query_one(
            "SELECT seq, received_ms FROM %s WHERE site = ? AND device = ? AND seq > ? ORDER BY seq LIMIT 1" % table,
            (site, device, acked),
        )
        if row:
            above.append((row["seq"], row["received_ms"]))
    if not above:
        return []
    nxt, since = min(above)
    if nxt <= acked + 1 or nxt > acked + SEND_WINDOW:
        # nxt beyond the window was not sent in a round that starts at acked + 1: what the
        # unreadable message stood for is not this gap (and the gap may be of any size)
        return []
    letter = db.query_one(
        "SELECT msg_key, last_seen_ms FROM dead_letters WHERE site = ? AND device = ? AND seq IS NULL"
        " AND seen >= 2 AND last_seen_ms >= ? ORDER BY received_ms, id LIMIT 1",
        (site, device, since + grace_ms),
    )
    if letter is None:
        return []
    seqs = list(range(acked + 1, nxt))
    insert_dead_seqs(db, [(site, device, q, letter["msg_key"], 1, letter["last_seen_ms"]) for q in seqs])
    return seqs


def dead_letters(db: Database, limit: int | None = 50, since_ms: int | None = None) -> list[Row]:
    """Last seen first. `payload` holds at most DEAD_LETTER_KEEP bytes: `size` (bytes of the
    whole payload) and `payload_sha256` (of the whole; NULL before migration 005) tell the rest."""
    sql = (
        "SELECT id, topic, payload, reason, received_ms, last_seen_ms, seen, site, device, seq, size,"
        " payload_sha256 FROM dead_letters"
    )
    params = ()
    if since_ms is not None:
        sql += " WHERE last_seen_ms >= ?"
        params = (since_ms,)
    sql += " ORDER BY last_seen_ms DESC, id DESC"
    if limit:
        sql += " LIMIT %d" % int(limit)
    rows = db.query(sql, params)
    for r in rows:
        r["payload"] = bytes(r["payload"])
    return rows


def dead_letter_count(db: Database, distinct: bool = False) -> int:
    """Messages refused (each arrival of the same one counted); distinct=True: stored letters."""
    if distinct:
        return db.scalar("SELECT COUNT(*) AS n FROM dead_letters") or 0
    return int(db.scalar("SELECT SUM(seen) AS n FROM dead_letters") or 0)  # PostgreSQL: a Decimal


def expire_dead_letters(db: Database, before_ms: int, limit: int = 1000) -> int:
    """Delete at most `limit` dead letters and refusal counts last seen before `before_ms` (the
    retention setting); returns how many rows went. Bounded, so a caller running it on the
    ingest database holds the write lock only briefly; call again while it returns `limit`.
    dead_seqs stay: they are the ack's memory, and a lost event stays lost in status."""
    n = db.execute(
        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE last_seen_ms < ?"
        " ORDER BY last_seen_ms LIMIT %d)" % int(limit),
        (before_ms,),
    )
    n += db.execute(
        "DELETE FROM refusals WHERE (site, device, window_ms, reason) IN (SELECT site, device, window_ms, reason"
        " FROM refusals WHERE last_ms < ? ORDER BY last_ms LIMIT %d)" % int(limit),
        (before_ms,),
    )
    return max(n, 0)


# ---- refusals (gateway.limits) ---------------------------------------------------------------


def add_refusals(db: Database, rows: Iterable[tuple[str, str, int, str, int, int, int, int]]) -> None:
    """Add [(site, device, window_ms, reason, messages, bytes, first_ms, last_ms)] to the counts
    of refused messages (gateway/limits.py): one row per panel, window and reason."""
    db.executemany(
        "INSERT INTO refusals (site, device, window_ms, reason, messages, bytes, first_ms, last_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, window_ms, reason) DO UPDATE SET"
        " messages = refusals.messages + excluded.messages, bytes = refusals.bytes + excluded.bytes,"
        " first_ms = CASE WHEN excluded.first_ms < refusals.first_ms THEN excluded.first_ms"
        " ELSE refusals.first_ms END, last_ms = CASE WHEN excluded.last_ms > refusals.last_ms"
        " THEN excluded.last_ms ELSE refusals.last_ms END",
        rows,
    )


def refusals(db: Database, since_ms: int | None = None) -> list[Row]:
    """What the per-panel limits refused (not stored, not acked; the panel resends what was its
    own), summed per panel and reason, most messages first: [{"site", "device", "reason",
    "messages", "bytes", "first_ms", "last_ms"}]. site = device = "" for messages of no
    configured panel. since_ms: only windows with a refusal at or after it (e.g. the last hour)."""
    sql = (
        "SELECT site, device, reason, SUM(messages) AS messages, SUM(bytes) AS bytes, MIN(first_ms) AS first_ms,"
        " MAX(last_ms) AS last_ms FROM refusals"
    )
    params: tuple = ()
    if since_ms is not None:
        sql += " WHERE last_ms >= ?"
        params = (since_ms,)
    rows = db.query(sql + " GROUP BY site, device, reason ORDER BY 4 DESC, site, device, reason", params)
    for r in rows:  # PostgreSQL sums BIGINT to NUMERIC
        r["messages"], r["bytes"] = int(r["messages"]), int(r["bytes"])
    return rows


# ---- the canary: is it the message or the database? -------------------------------------------

CANARY = "~canary"  # no valid site, device or topic (protocol.topics.check_id): never a panel's


class _CanaryDone(Exception):
    pass


def canary(db: Database, now_ms: int) -> None:
    """Write a known-good row into every table the ingest writes, then roll back; raises what
    the database raises. The ingest asks it after a failed batch: an error that recurs for the
    canary (privilege revoked, table dropped, read-only transaction, connection gone, disk
    full) is the database's, never one message's, so nothing may be dead-lettered and acked."""
    c = CANARY
    payload = '{"v":1,"seq":1,"boot":1,"up":0,"t":%d,"ev":"yes"}' % now_ms
    event: Row = dict(zip(EVENT_COLUMNS, (c, c, 1, 1, 0, now_ms, "yes", None, now_ms, payload), strict=True))
    try:
        with db.transaction():
            insert_events(db, [event])
            touch_last_seen_many(db, [(c, c, now_ms)])
            upsert_state(db, c, c, {"online": True, "boot": 1, "up": 0, "seq": 1, "pending": 0}, now_ms, "{}")
            record_boot_clock(db, c, c, 1, now_ms, 0, "canary", now_ms)
            (key,) = insert_dead_letters(db, [Letter(c, payload.encode(), "canary", now_ms, c, c, 1)])
            insert_dead_seqs(db, [(c, c, 1, key, 0, now_ms)])
            record_acks(db, [(c, c, 1, now_ms)])
            insert_counts(db, c, c, now_ms, now_ms + 1, 1, 1, "canary", now_ms)
            add_refusals(db, [(c, c, 0, "canary", 1, 1, now_ms, now_ms)])
            raise _CanaryDone  # roll back: nothing of the canary is ever committed
    except _CanaryDone:
        pass


# ---- counts ----------------------------------------------------------------------------------


def insert_counts(
    db: Database,
    site: str,
    device: str,
    from_ms: int,
    to_ms: int,
    transactions: int | None,
    visitors: int | None,
    source: str,
    received_ms: int,
) -> None:
    """Store one interval's counts; idempotent on (site, device, from_ms, to_ms).

    A repeated interval UPDATES the stored row (a corrected CSV re-imported wins), field by
    field: a value given replaces the stored one, a missing (None) value keeps it - so one source
    may give transactions and another visitors for the same interval. device '' = whole site.
    """
    db.execute(
        "INSERT INTO counts (site, device, from_ms, to_ms, transactions, visitors, source, received_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, from_ms, to_ms) DO UPDATE SET"
        " transactions = COALESCE(excluded.transactions, counts.transactions),"
        " visitors = COALESCE(excluded.visitors, counts.visitors),"
        " source = excluded.source, received_ms = excluded.received_ms",
        (site, device or "", from_ms, to_ms, transactions, visitors, source, received_ms),
    )


def counts(db: Database, site: str | None = None, from_ms: int | None = None, to_ms: int | None = None) -> list[Row]:
    """Counts rows (optionally one site, intervals overlapping [from_ms, to_ms))."""
    sql, params = "SELECT * FROM counts WHERE 1 = 1", []
    if site is not None:
        sql += " AND site = ?"
        params.append(site)
    if from_ms is not None:
        sql += " AND to_ms > ?"
        params.append(from_ms)
    if to_ms is not None:
        sql += " AND from_ms < ?"
        params.append(to_ms)
    return db.query(sql + " ORDER BY site, device, from_ms", tuple(params))
