"""Raw events + settings history -> polls, force-majeure reports, unsolicited presses, anomalies.

`rebuild(db, now_ms)` drops every derived row and derives them again (deterministic).
`update(db, devices, now_ms)` is what ingest calls after each commit; it gives the same rows as
`rebuild` at the same now_ms (tests/gateway/test_derive.py checks that on random streams).

How update stays equal to rebuild. Per panel we keep the window builder's state after the last
fed event (`derive_state.snapshot`), never advanced by the clock. Outputs the builder emits
while being fed depend only on the events (its batch-split property), so they are final. The
outputs that only the clock closes (a silent poll whose window is over, a finished
force-majeure period) come from advancing a *copy* to now_ms - MARGIN_MS: they are stored as
`provisional = 1` and replaced on every update, so an answer that arrives late still lands.
A panel is re-derived from its first event when what we fed is no longer what rebuild would
feed: an older seq filled a gap, a boot whose events had only their arrival time now has a
clock offset, or the settings history changed since (a new `rating site apply`).
"""

import json
import weakref

from gateway import review as review_mod
from gateway import rollup, store, timerepair
from gateway import site as site_mod
from gateway.windows import Anomaly, ForceMajeure, PanelWindows, Poll, Unsolicited, WindowSettings

# How far behind now the clock is advanced: an answer pressed just before now may still be in
# flight, and a poll must not be shown silent before its window has really passed.
MARGIN_MS = 5000

_WORSE = {timerepair.DEVICE: 0, timerepair.REPAIRED: 1, timerepair.ARRIVAL: 2}

POLL_COLUMNS = (
    "site",
    "device",
    "open_seq",
    "opened_ms",
    "closes_ms",
    "answer",
    "answer_seq",
    "answered_ms",
    "extra_presses",
    "seller_presses",
    "time_source",
    "employee",
    "question",
    "kind",
    "video_url",
    "provisional",
    "contact",
)
FM_COLUMNS = (
    "site",
    "device",
    "seq",
    "pressed_ms",
    "start_ms",
    "end_ms",
    "presses",
    "time_source",
    "employee",
    "video_url",
    "provisional",
)
UNSOLICITED_COLUMNS = ("site", "device", "seq", "at_ms", "ev", "time_source")
ANOMALY_COLUMNS = ("site", "device", "seq", "n", "at_ms", "kind", "detail")
DERIVED_TABLES = ("polls", "force_majeure", "unsolicited", "anomalies", "derive_state")


_SETTINGS_MEMO = {}


def window_settings(panel):
    """Site-file panel settings (seconds, minutes) -> WindowSettings (ms); defaults if None."""
    if not panel:
        return WindowSettings()
    key = (panel.get("window_s", 30), panel.get("rearm_s", 3), panel.get("fm_minutes", 15))
    found = _SETTINGS_MEMO.get(key)
    if found is None:
        window = int(key[0]) * 1000
        found = _SETTINGS_MEMO[key] = WindowSettings(
            window_ms=window, rearm_ms=min(int(key[1]) * 1000, window), fm_ms=int(key[2]) * 60000
        )
    return found


# The settings history is read once per revision and database (it only grows by revisions).
_HISTORY = weakref.WeakKeyDictionary()


def _history(db, rev):
    cached = _HISTORY.get(db)
    if cached is None or cached[0] != rev:
        cached = _HISTORY[db] = (rev, site_mod.load(db))
    return cached[1]


def _ms(x):
    return None if x is None else int(round(x))


class PanelDerivation:
    """Pure: feeds one panel's events (in seq order) through PanelWindows and turns the outputs
    into table rows with time source, employee, question and video link. Resumable from
    `state()` (JSON-able)."""

    def __init__(self, site, device, history, offsets, state=None):
        self.site, self.device = site, device
        self.history = history
        self.offsets = offsets
        if state:
            self.windows = PanelWindows.restore(state["windows"])
            self.sources = {int(k): v for k, v in state["sources"].items()}
            self.arrival_boots = set(state["arrival_boots"])
            self.fed_seq, self.fed_count = state["fed_seq"], state["fed_count"]
        else:
            self.windows = PanelWindows()
            self.sources = {}  # seq -> (time source, at) of the presses still open
            self.arrival_boots = set()  # boots whose events had to take their arrival time
            self.fed_seq, self.fed_count = 0, 0
        self.tz = history.tz(site)

    def state(self):
        return {
            "windows": self.windows.snapshot(),
            "sources": {str(k): v for k, v in self.sources.items()},
            "arrival_boots": sorted(self.arrival_boots),
            "fed_seq": self.fed_seq,
            "fed_count": self.fed_count,
        }

    def feed(self, events):
        """events: raw_events rows in seq order. Returns {table: [row tuples]} (final rows)."""
        out = _empty()
        for e in events:
            at, source = timerepair.resolve(e["t_ms"], e["boot"], e["up_ms"], e["received_ms"], self.offsets)
            if source == timerepair.ARRIVAL:
                self.arrival_boots.add(e["boot"])
            wanted = window_settings(self.history.panel(self.site, self.device, at))
            if wanted != self.windows.settings:
                self.windows.set_settings(wanted)
            self.sources[e["seq"]] = (source, at)
            self._rows(self.windows.feed(e["seq"], at, e["ev"], e["hold_ms"]), out, provisional=0)
            self.fed_seq = e["seq"]
            self.fed_count += 1
        self._prune()
        return out

    def provisional(self, now_ms):
        """Rows closed by advancing a copy of the builder to now_ms (the state is unchanged)."""
        copy = PanelWindows.restore(self.windows.snapshot())
        out = _empty()
        self._rows(copy.advance(now_ms), out, provisional=1)
        return out

    def due(self, advanced_to):
        """The earliest time an update may close something more by the clock alone, given
        provisional rows advanced to `advanced_to`; None when nothing is open past it."""
        dues = []
        for item in self.windows.pending():
            due = item.closes_at if isinstance(item, Poll) else item.end if isinstance(item, ForceMajeure) else None
            if due is not None and due >= advanced_to:
                dues.append(int(due) + 1 + MARGIN_MS)
        return min(dues) if dues else None

    def _prune(self):
        # keep the time sources of the presses an open poll / period still refers to
        snap = self.windows.snapshot()
        keep = set()
        if snap["poll"]:
            keep.update((snap["poll"]["open_seq"], snap["poll"]["answer_seq"]))
        if snap["fm"]:
            keep.add(snap["fm"]["seq"])
        for seq in list(self.sources):
            if seq not in keep:
                del self.sources[seq]

    def _source(self, *seqs):
        found = [self.sources.get(s, (timerepair.DEVICE, None))[0] for s in seqs if s is not None]
        return max(found or [timerepair.DEVICE], key=lambda source: _WORSE.get(source, 0))

    def _video(self, panel, at_ms):
        template = (panel or {}).get("camera")
        return site_mod.camera_url(template, at_ms, self.tz) if template else None

    def _rows(self, outputs, out, provisional):
        h, site, device = self.history, self.site, self.device
        n_by_seq = {}
        for item in outputs:
            if isinstance(item, Poll):
                opened = _ms(item.opened_at)
                panel = h.panel(site, device, opened)
                qid = (panel or {}).get("question")
                question = h.question(qid, opened) or {}
                out["polls"].append(
                    (
                        site,
                        device,
                        item.open_seq,
                        opened,
                        _ms(item.closes_at),
                        item.answer,
                        item.answer_seq,
                        _ms(item.answered_at),
                        item.extra_presses,
                        item.duplicate_presses + 1,
                        self._source(item.open_seq, item.answer_seq),
                        h.employee_at(site, device, opened),
                        qid,
                        question.get("kind"),
                        self._video(panel, opened),
                        provisional,
                        is_contact(panel, question.get("kind")),
                    )
                )
            elif isinstance(item, ForceMajeure):
                pressed = self.sources.get(item.seq, (None, item.start))[1]
                pressed = _ms(pressed if pressed is not None else item.start)
                panel = h.panel(site, device, pressed)
                out["force_majeure"].append(
                    (
                        site,
                        device,
                        item.seq,
                        pressed,
                        _ms(item.start),
                        _ms(item.end),
                        item.presses,
                        self._source(item.seq),
                        h.employee_at(site, device, pressed),
                        self._video(panel, _ms(item.start)),
                        provisional,
                    )
                )
            elif isinstance(item, Unsolicited):
                out["unsolicited"].append((site, device, item.seq, _ms(item.at), item.ev, self._source(item.seq)))
            elif isinstance(item, Anomaly):
                n = n_by_seq[item.seq] = n_by_seq.get(item.seq, -1) + 1
                at = self.sources.get(item.seq, (None, None))[1]
                out["anomalies"].append((site, device, item.seq, n, _ms(at), item.kind, item.detail))


def is_contact(panel, kind):
    """1 when a poll counts toward exact conversion and visitor coverage: its panel's
    `conversion` setting at the poll's time, by default whether it asked a staff question."""
    setting = (panel or {}).get("conversion")
    return int(kind == "staff" if setting is None else bool(setting))


def _empty():
    return {"polls": [], "force_majeure": [], "unsolicited": [], "anomalies": []}


_COLUMNS = {
    "polls": POLL_COLUMNS,
    "force_majeure": FM_COLUMNS,
    "unsolicited": UNSOLICITED_COLUMNS,
    "anomalies": ANOMALY_COLUMNS,
}
_KEYS = {
    "polls": ("site", "device", "open_seq"),
    "force_majeure": ("site", "device", "seq"),
    "unsolicited": ("site", "device", "seq"),
    "anomalies": ("site", "device", "seq", "n"),
}


def _write(db, rows_by_table):
    for table, rows in rows_by_table.items():
        if not rows:
            continue
        cols = _COLUMNS[table]
        keys = _KEYS[table]
        sets = ", ".join("%s = excluded.%s" % (c, c) for c in cols if c not in keys)
        db.executemany(
            "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s"
            % (table, ", ".join(cols), ", ".join("?" * len(cols)), ", ".join(keys), sets),
            rows,
        )


def _clear_device(db, site, device):
    for table in DERIVED_TABLES:
        db.execute("DELETE FROM %s WHERE site = ? AND device = ?" % table, (site, device))
    rollup.clear_panel(db, site, device)


def _earliest(rows_by_table):
    """The earliest poll opening / report start among rows about to be written, or None."""
    times = [r[3] for r in rows_by_table["polls"]] + [r[4] for r in rows_by_table["force_majeure"]]
    return min(times) if times else None


def _min_time(*values):
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _derive_device(db, site, device, now_ms, history, rev, force_full=False, max_events=None):
    """Derive one panel; returns True when events are left for the next call (max_events)."""
    offsets = store.boot_offsets(db, site, device)
    row = (
        None
        if force_full
        else db.query_one(
            "SELECT fed_seq, fed_count, snapshot, watch FROM derive_state WHERE site = ? AND device = ?", (site, device)
        )
    )
    state = None
    had_provisional = True
    if row is not None:
        state = json.loads(row["snapshot"])
        watch = json.loads(row["watch"])
        had_provisional = watch.get("provisional", 1) > 0
        stale = (
            watch.get("rev") != rev
            or any(offsets.get(b) is not None for b in state["arrival_boots"])
            or store.event_count_through(db, site, device, row["fed_seq"]) != row["fed_count"]
        )
        if stale:
            state = None
    if state is None:
        _clear_device(db, site, device)
    d = PanelDerivation(site, device, history, offsets, state)
    events = store.events(db, site, device, after_seq=d.fed_seq, limit=max_events)
    more = max_events is not None and len(events) >= max_events
    final = d.feed(events)
    _write(db, final)
    touched = _earliest(final)  # the rollup is refreshed from the earliest local day touched
    if state is not None and had_provisional:  # (a reset panel has none left)
        touched = _min_time(touched, _earliest_provisional(db, site, device))
        for table in ("polls", "force_majeure"):
            db.execute("DELETE FROM %s WHERE site = ? AND device = ? AND provisional = 1" % table, (site, device))
    # what only the clock closes is derived once every event is fed: a later event may answer
    provisional = _empty() if more else d.provisional(now_ms - MARGIN_MS)
    _write(db, provisional)
    touched = _min_time(touched, _earliest(provisional))
    if state is None:
        rollup.refresh(db, site, device, history)
    elif touched is not None:
        # a rewritten report that an expert confirmed may cover older polls: the whole panel
        fms = final["force_majeure"] + provisional["force_majeure"]
        reviewed = fms and review_mod.any_fm_verdict(db, site, device, [r[2] for r in fms])
        rollup.refresh(db, site, device, history, None if reviewed else touched)
    n_provisional = len(provisional["polls"]) + len(provisional["force_majeure"])
    db.execute(
        "INSERT INTO derive_state (site, device, fed_seq, fed_count, snapshot, watch, updated_ms, due_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, device) DO UPDATE SET "
        "fed_seq = excluded.fed_seq, fed_count = excluded.fed_count, snapshot = excluded.snapshot, "
        "watch = excluded.watch, updated_ms = excluded.updated_ms, due_ms = excluded.due_ms",
        (
            site,
            device,
            d.fed_seq,
            d.fed_count,
            json.dumps(d.state()),
            json.dumps({"rev": rev, "provisional": n_provisional}),
            now_ms,
            now_ms if more else d.due(now_ms - MARGIN_MS),
        ),
    )
    return more


def _earliest_provisional(db, site, device):
    row = db.query_one(
        "SELECT (SELECT MIN(opened_ms) FROM polls WHERE site = ? AND device = ? AND provisional = 1) AS p,"
        " (SELECT MIN(start_ms) FROM force_majeure WHERE site = ? AND device = ? AND provisional = 1) AS f",
        (site, device, site, device),
    )
    return _min_time(row["p"], row["f"]) if row else None


def refresh_rollup(db, site, device, since_ms=None, until_ms=None):
    """Recompute one panel's rollup rows of the days from since_ms through until_ms (None:
    open): a verdict changed what its polls there count for."""
    rollup.refresh(db, site, device, _history(db, site_mod.revision(db)), since_ms, until_ms)


def update(db, devices, now_ms, max_events=None):
    """Bring the derived rows of `devices` [(site, device)] up to date (after an ingest commit),
    in one transaction. With max_events, at most that many events are fed per panel (bounded
    work: the gateway's derive worker runs one panel a transaction); returns the panels with
    events left, to be called again (their clock-closed rows wait until then)."""
    devices = sorted(set(tuple(d) for d in devices))
    left = set()
    if not devices:
        return left
    with db.transaction():
        rev = site_mod.revision(db)
        history = _history(db, rev)
        for site, device in devices:
            if _derive_device(db, site, device, now_ms, history, rev, max_events=max_events):
                left.add((site, device))
    return left


def rebuild(db, now_ms):
    """Drop every derived row and derive all panels again from raw events + settings history.
    Returns the number of panels derived.

    One transaction per panel, so a running gateway (SQLite: one writer at a time) waits for
    one panel, not for the whole rebuild. A panel the gateway updates meanwhile has no
    derive_state and is derived from scratch by that update: the result is the same."""
    with db.transaction():
        for table in DERIVED_TABLES:
            db.execute("DELETE FROM %s" % table)
        rollup.clear(db)
        panels = store.event_panels(db)
    for site, device in panels:
        with db.transaction():
            rev = site_mod.revision(db)
            _derive_device(db, site, device, now_ms, _history(db, rev), rev, force_full=True)
    return len(panels)


# ---- read API: the derived tables are this module's; others read them through these -------------


def polls_and_reports(db, site=None, from_ms=None, to_ms=None):
    """(polls, force-majeure reports) of an office (None: all) whose opening / start time lies in
    [from_ms, to_ms) (None: open), as rows in time order."""

    def where(col):
        sql, params = " WHERE 1 = 1", []
        if site:
            sql += " AND site = ?"
            params.append(site)
        if from_ms is not None:
            sql += " AND %s >= ?" % col
            params.append(from_ms)
        if to_ms is not None:
            sql += " AND %s < ?" % col
            params.append(to_ms)
        return sql, tuple(params)

    sql, params = where("opened_ms")
    polls = db.query("SELECT * FROM polls" + sql + " ORDER BY opened_ms, site, device, open_seq", params)
    sql, params = where("start_ms")
    fms = db.query("SELECT * FROM force_majeure" + sql + " ORDER BY start_ms, site, device, seq", params)
    return polls, fms


def stored_through(db):
    """{(site, device): seq} such that every seq 1..seq of the panel is stored: the last seq
    derivation fed when it had fed exactly that many events (no seq below it is missing; raw
    events are never deleted). Lets gap checks read only the events after it."""
    return {
        (r["site"], r["device"]): r["fed_seq"]
        for r in db.query("SELECT site, device, fed_seq FROM derive_state WHERE fed_count = fed_seq")
    }


def due_panels(db, now_ms, limit=None):
    """[(site, device)] whose derived rows the clock alone changes by now_ms (an open poll's
    window or force-majeure period has ended since their last update), most overdue first."""
    sql = "SELECT site, device FROM derive_state WHERE due_ms IS NOT NULL AND due_ms <= ? ORDER BY due_ms"
    if limit:
        sql += " LIMIT %d" % int(limit)
    return [(r["site"], r["device"]) for r in db.query(sql, (now_ms,))]


def force_majeure_reports(db):
    """Every force-majeure report (a confirmed period may reach into any report range)."""
    return db.query("SELECT * FROM force_majeure ORDER BY site, device, seq")


def panel_reports(db, site, device):
    """Every force-majeure report of one panel, in seq order."""
    return db.query("SELECT * FROM force_majeure WHERE site = ? AND device = ? ORDER BY seq", (site, device))


def panel_polls_between(db, site, device, from_ms=None, through_ms=None):
    """The polls of one panel opened in [from_ms, through_ms] (None: open)."""
    sql, params = "SELECT * FROM polls WHERE site = ? AND device = ?", [site, device]
    if from_ms is not None:
        sql += " AND opened_ms >= ?"
        params.append(from_ms)
    if through_ms is not None:
        sql += " AND opened_ms <= ?"
        params.append(through_ms)
    return db.query(sql, tuple(params))


def count_contact_polls(db, site, device=None, employee=None, from_ms=None, to_ms=None):
    """How many of an office's polls that count toward conversion and coverage (`contact`), of
    one panel / employee ("": nobody on the roster) when given, were opened in [from_ms, to_ms)."""
    sql, params = "SELECT COUNT(*) FROM polls WHERE site = ? AND contact = 1", [site]
    if device is not None:
        sql += " AND device = ?"
        params.append(device)
    if employee == "":
        sql += " AND employee IS NULL"
    elif employee is not None:
        sql += " AND employee = ?"
        params.append(employee)
    if from_ms is not None:
        sql += " AND opened_ms >= ?"
        params.append(from_ms)
    if to_ms is not None:
        sql += " AND opened_ms < ?"
        params.append(to_ms)
    return db.scalar(sql, tuple(params)) or 0


def count_contact_polls_in(db, spans, chunk=400):
    """count_contact_polls of each span (site, device or None, employee or None ("" = nobody on
    the roster), from_ms, to_ms), in order: one grouped query per `chunk` spans."""
    out = []
    for at in range(0, len(spans), chunk):
        part = spans[at : at + chunk]
        values = ", ".join(["(CAST(? AS BIGINT), ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT))"] * len(part))
        params = []
        for i, (site, device, employee, lo, hi) in enumerate(part):
            params += [i, site, device, employee, lo, hi]
        # a subquery per span (not a join, which a planner may turn into a scan of every poll):
        # each one an index range of the office's polls, as count_contact_polls
        found = db.query(
            "WITH s (i, site, device, employee, lo, hi) AS (VALUES %s)"
            " SELECT s.i AS i, (SELECT COUNT(*) FROM polls p WHERE p.site = s.site"
            " AND p.opened_ms >= s.lo AND p.opened_ms < s.hi AND p.contact = 1"
            " AND (s.device IS NULL OR p.device = s.device)"
            " AND (s.employee IS NULL OR COALESCE(p.employee, '') = s.employee)) AS n FROM s" % values,
            tuple(params),
        )
        counts = {int(r["i"]): int(r["n"]) for r in found}
        out += [counts[i] for i in range(len(part))]
    return out


def polls_by_ids(db, ids):
    """The poll rows of the ids "site/device/seq" that exist."""
    out = []
    for ident in sorted(ids):
        site, device, seq = ident.rsplit("/", 2)
        row = poll(db, site, device, int(seq))
        if row is not None:
            out.append(row)
    return out


def poll_exists(db, site, device, open_seq):
    return (
        db.query_one(
            "SELECT 1 AS x FROM polls WHERE site = ? AND device = ? AND open_seq = ?", (site, device, open_seq)
        )
        is not None
    )


def report_exists(db, site, device, seq):
    return (
        db.query_one("SELECT 1 AS x FROM force_majeure WHERE site = ? AND device = ? AND seq = ?", (site, device, seq))
        is not None
    )


def totals(db):
    """(polls, force-majeure reports) derived so far."""
    return (db.scalar("SELECT COUNT(*) FROM polls") or 0, db.scalar("SELECT COUNT(*) FROM force_majeure") or 0)


def derived(db):
    """Every derived row (the simulator's comparison with its ground truth): polls,
    force-majeure reports, anomalies in seq order, and unsolicited presses counted per panel."""
    return {
        "polls": db.query("SELECT * FROM polls ORDER BY site, device, open_seq"),
        "force_majeure": force_majeure_reports(db),
        "unsolicited": {
            (r["site"], r["device"]): r["n"]
            for r in db.query("SELECT site, device, COUNT(*) AS n FROM unsolicited GROUP BY site, device")
        },
        "anomalies": db.query("SELECT * FROM anomalies ORDER BY site, device, seq"),
    }


# Light rows for lists that cover many polls (the console's review queue): only what sorting,
# sampling and filtering need, so a week of a large chain stays cheap to read.
INDEX_POLL_COLUMNS = ("site", "device", "open_seq", "opened_ms", "answer", "employee")
INDEX_FM_COLUMNS = ("site", "device", "seq", "start_ms", "end_ms", "employee")


def _filters(sites, col, from_ms, to_ms, employee=None, answer=None):
    sql, params = " WHERE 1 = 1", []
    if sites is not None:
        sites = sorted(sites)
        if not sites:
            return " WHERE 1 = 0", ()
        sql += " AND site IN (%s)" % ", ".join("?" * len(sites))
        params += sites
    if from_ms is not None:
        sql += " AND %s >= ?" % col
        params.append(from_ms)
    if to_ms is not None:
        sql += " AND %s < ?" % col
        params.append(to_ms)
    if employee is not None:
        sql += " AND employee = ?"
        params.append(employee)
    if answer == "silent":
        sql += " AND answer IS NULL"
    elif answer is not None:
        sql += " AND answer = ?"
        params.append(answer)
    return sql, tuple(params)


def index(db, sites=None, from_ms=None, to_ms=None, employee=None):
    """(polls, force-majeure reports) of the offices `sites` (None: all) opened / started in
    [from_ms, to_ms), as light rows (INDEX_POLL_COLUMNS, INDEX_FM_COLUMNS) in time order."""
    sql, params = _filters(sites, "opened_ms", from_ms, to_ms, employee)
    polls = db.query(
        "SELECT %s FROM polls%s ORDER BY opened_ms, site, device, open_seq" % (", ".join(INDEX_POLL_COLUMNS), sql),
        params,
    )
    sql, params = _filters(sites, "start_ms", from_ms, to_ms, employee)
    fms = db.query(
        "SELECT %s FROM force_majeure%s ORDER BY start_ms, site, device, seq" % (", ".join(INDEX_FM_COLUMNS), sql),
        params,
    )
    return polls, fms


def polls_page(db, sites=None, from_ms=None, to_ms=None, answer=None, employee=None, after=None, limit=100):
    """Up to `limit` poll rows in (opened_ms, site, device, open_seq) order, after the key
    `after` (such a tuple, from the previous page's last row; None: from the start).
    answer: yes | no | unsure | silent | None (any)."""
    sql, params = _filters(sites, "opened_ms", from_ms, to_ms, employee, answer)
    if after is not None:
        sql += " AND (opened_ms, site, device, open_seq) > (?, ?, ?, ?)"
        params += tuple(after)
    return db.query(
        "SELECT * FROM polls%s ORDER BY opened_ms, site, device, open_seq LIMIT %d" % (sql, int(limit)), params
    )


def contact_polls_of(db, ids, from_ms=None, to_ms=None):
    """The contact polls (rows) among the ids "site/device/seq" opened in [from_ms, to_ms):
    one query per panel and 500 seqs."""
    by_panel = {}
    for ident in ids:
        site, device, seq = ident.rsplit("/", 2)
        by_panel.setdefault((site, device), []).append(int(seq))
    out = []
    for (site, device), seqs in sorted(by_panel.items()):
        seqs.sort()
        for i in range(0, len(seqs), 500):
            chunk = seqs[i : i + 500]
            sql = "SELECT * FROM polls WHERE site = ? AND device = ? AND contact = 1 AND open_seq IN (%s)" % (
                ", ".join("?" * len(chunk))
            )
            params = [site, device, *chunk]
            if from_ms is not None:
                sql += " AND opened_ms >= ?"
                params.append(from_ms)
            if to_ms is not None:
                sql += " AND opened_ms < ?"
                params.append(to_ms)
            out += db.query(sql + " ORDER BY open_seq", tuple(params))
    return out


def poll(db, site, device, open_seq):
    """One poll row, or None."""
    return db.query_one("SELECT * FROM polls WHERE site = ? AND device = ? AND open_seq = ?", (site, device, open_seq))


def report(db, site, device, seq):
    """One force-majeure report row, or None."""
    return db.query_one("SELECT * FROM force_majeure WHERE site = ? AND device = ? AND seq = ?", (site, device, seq))


def panel_polls(db, site, device, from_ms, to_ms):
    """The polls of one panel opened in [from_ms, to_ms), in time order."""
    return db.query(
        "SELECT * FROM polls WHERE site = ? AND device = ? AND opened_ms >= ? AND opened_ms < ? ORDER BY opened_ms",
        (site, device, from_ms, to_ms),
    )


def unsolicited_presses(db, sites=None, from_ms=None, to_ms=None):
    """Answer presses with no poll open (site, device, seq, at_ms, ev) of the offices `sites`
    (None: all) in [from_ms, to_ms), in time order (the doubt scores: gateway/doubt.py)."""
    sql, params = _filters(sites, "at_ms", from_ms, to_ms)
    return db.query("SELECT site, device, seq, at_ms, ev FROM unsolicited%s ORDER BY at_ms" % sql, params)


def latest_poll_ms(db, sites=None):
    """The opening time of the newest poll of the offices `sites` (None: all), or None."""
    sql, params = _filters(sites, "opened_ms", None, None)
    return db.scalar("SELECT MAX(opened_ms) FROM polls" + sql, params)
