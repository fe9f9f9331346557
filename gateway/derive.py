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

import contextlib
import json
import sys
import weakref

from gateway import db as dbmod
from gateway import partitions, rollup, store, timerepair, transactions
from gateway import review as review_mod
from gateway import site as site_mod
from gateway.windows import Anomaly, ForceMajeure, PanelWindows, Poll, Unsolicited, WindowSettings

# How far behind now the clock is advanced: an answer pressed just before now may still be in
# flight, and a poll must not be shown silent before its window has really passed.
MARGIN_MS = 5000

# Events fed per transaction when a panel is rebuilt: a panel's whole history never sits in
# memory at once (a year of a busy panel is ~10,000 events), and a running gateway waits for one
# chunk of one panel at most.
REBUILD_CHUNK = 5000

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
    "seller_hold_ms",
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
        self._panel_key = "%s/%s" % (site, device)
        self._settings = {}  # history epoch of the panel's settings -> WindowSettings

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
            epoch = self.history.epoch("panel", self._panel_key, at)
            wanted = self._settings.get(epoch)
            if wanted is None:
                wanted = self._settings[epoch] = window_settings(self.history.panel(self.site, self.device, at))
            if wanted != self.windows.settings:
                self.windows.set_settings(wanted)
            # the hold of a seller press rides with its time source while its poll is open: the
            # poll row carries the opening press's hold (when its button went down: doubt.py)
            self.sources[e["seq"]] = (source, at, e["hold_ms"])
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

    def _hold(self, seq):
        # (states saved before the hold was kept hold (source, at) pairs: hold unknown)
        kept = self.sources.get(seq, ())
        return kept[2] if len(kept) > 2 else None

    def _video(self, panel, at_ms):
        template = (panel or {}).get("camera")
        return site_mod.camera_url(template, at_ms, self.tz) if template else None

    def _rows(self, outputs, out, provisional):
        if not outputs:  # (most events close nothing)
            return
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
                        self._hold(item.open_seq),
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
        if table == "polls":
            # a plain insert: on PostgreSQL polls are partitioned by month of opened_ms, and a
            # unique key there must include it, so (site, device, open_seq) is no conflict
            # target. Nothing to replace: a panel's provisional polls are deleted before its
            # new rows are written, and the final ones are written once (under the panel's lock)
            db.executemany("INSERT INTO polls (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))), rows)
            continue
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
        had_provisional = json.loads(row["watch"]).get("provisional", 1) > 0
        if _stale(db, site, device, row, offsets, rev):
            state = None
    fresh = state is None
    if fresh:
        state = _restart_point(db, site, device)
    d = PanelDerivation(site, device, history, offsets, state)
    events = store.events(db, site, device, after_seq=d.fed_seq, limit=max_events)
    more = max_events is not None and len(events) >= max_events
    final = d.feed(events)
    touched = None
    if not fresh and had_provisional:  # (a reset panel has none left)
        # the clock-closed rows are replaced: gone before the final rows (maybe the same polls,
        # answered late) are written
        touched = _earliest_provisional(db, site, device)
        for table in ("polls", "force_majeure"):
            db.execute("DELETE FROM %s WHERE site = ? AND device = ? AND provisional = 1" % table, (site, device))
    _write(db, final)
    touched = _min_time(touched, _earliest(final))  # the rollup is refreshed from the earliest local day touched
    # what only the clock closes is derived once every event is fed: a later event may answer
    provisional = _empty() if more else d.provisional(now_ms - MARGIN_MS)
    _write(db, provisional)
    touched = _min_time(touched, _earliest(provisional))
    if fresh:
        rollup.refresh(db, site, device, history)
        transactions.after_derive(db, site, device, history)
    elif touched is not None:
        transactions.after_derive(db, site, device, history, touched)
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


def _stale(db, site, device, row, offsets, rev):
    """Whether what derive_state says was fed is no longer what a derivation from the start
    would feed: new settings, a clock offset learnt for a boot that had none, a gap filled."""
    state = json.loads(row["snapshot"])
    return (
        json.loads(row["watch"]).get("rev") != rev
        or any(offsets.get(b) is not None for b in state["arrival_boots"])
        or store.event_count_through(db, site, device, row["fed_seq"]) != row["fed_count"]
    )


def _pending_ids(windows_snapshot):
    """(open poll's open_seq, open period's seq) of a window builder snapshot (-1: none)."""
    poll, fm = windows_snapshot.get("poll"), windows_snapshot.get("fm")
    return (poll["open_seq"] if poll else -1), (fm["seq"] if fm else -1)


def _restart_point(db, site, device):
    """Clear what a derivation of the panel from its start writes again and return the state to
    start from: None (its first event), or its checkpoint's (its oldest events were archived and
    purged: the rows derived from them stay, the derivation goes on from there)."""
    ck = db.query_one("SELECT seq, snapshot FROM derive_checkpoints WHERE site = ? AND device = ?", (site, device))
    if ck is None:
        _clear_device(db, site, device)
        return None
    state = json.loads(ck["snapshot"])
    seq = ck["seq"]
    open_poll, open_fm = _pending_ids(state["windows"])
    db.execute(
        "DELETE FROM polls WHERE site = ? AND device = ? AND (open_seq > ? OR open_seq = ? OR provisional = 1)",
        (site, device, seq, open_poll),
    )
    db.execute(
        "DELETE FROM force_majeure WHERE site = ? AND device = ? AND (seq > ? OR seq = ? OR provisional = 1)",
        (site, device, seq, open_fm),
    )
    for table in ("unsolicited", "anomalies"):
        db.execute("DELETE FROM %s WHERE site = ? AND device = ? AND seq > ?" % table, (site, device, seq))
    db.execute("DELETE FROM derive_state WHERE site = ? AND device = ?", (site, device))
    rollup.clear_panel(db, site, device)
    return state


def derived_through(db, site, device):
    """The highest seq through which every event of the panel is derived with the settings in
    force (0: none): events at or below it may be purged once archived (gateway/archive.py)."""
    row = db.query_one(
        "SELECT fed_seq, fed_count, snapshot, watch FROM derive_state WHERE site = ? AND device = ?", (site, device)
    )
    if row is None:
        return 0
    if _stale(db, site, device, row, store.boot_offsets(db, site, device), site_mod.revision(db)):
        return 0
    return row["fed_seq"]


def checkpoint_seq(db, site, device):
    """The seq a panel's derivation restarts after (its checkpoint), 0 when it has none."""
    return db.scalar("SELECT seq FROM derive_checkpoints WHERE site = ? AND device = ?", (site, device)) or 0


def make_checkpoint(db, site, device, through_seq, now_ms, chunk=REBUILD_CHUNK):
    """Record where the panel's derivation restarts once its events through `through_seq` are
    purged: the builder's state after feeding them (from the previous checkpoint, chunk by
    chunk; they must still be stored). Returns the checkpoint's seq."""
    rev = site_mod.revision(db)
    ck = db.query_one("SELECT snapshot FROM derive_checkpoints WHERE site = ? AND device = ?", (site, device))
    d = PanelDerivation(
        site,
        device,
        _history(db, rev),
        store.boot_offsets(db, site, device),
        json.loads(ck["snapshot"]) if ck else None,
    )
    while d.fed_seq < through_seq:
        events = [
            e for e in store.events(db, site, device, after_seq=d.fed_seq, limit=chunk) if e["seq"] <= through_seq
        ]
        if not events:
            break
        d.feed(events)
    db.execute(
        "INSERT INTO derive_checkpoints (site, device, seq, fed_count, snapshot, made_ms) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (site, device) DO UPDATE SET seq = excluded.seq, fed_count = excluded.fed_count,"
        " snapshot = excluded.snapshot, made_ms = excluded.made_ms",
        (site, device, d.fed_seq, d.fed_count, json.dumps(d.state()), now_ms),
    )
    return d.fed_seq


def drop_checkpoints(db):
    """Forget every checkpoint (every purged event is back: gateway/archive.py restore): the
    next rebuild derives each panel from its first event again."""
    db.execute("DELETE FROM derive_checkpoints")


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


def clear_derived(db):
    """Drop every derived row (the first step of a rebuild), in one transaction."""
    with db.transaction():
        kept = db.query_one("SELECT 1 AS x FROM derive_checkpoints LIMIT 1") is not None
        for table in DERIVED_TABLES:
            if kept and table != "derive_state":
                # rows derived from purged events stay (rebuild_panel clears the rest per panel)
                db.execute(
                    "DELETE FROM %s WHERE NOT EXISTS (SELECT 1 FROM derive_checkpoints c"
                    " WHERE c.site = %s.site AND c.device = %s.device)" % (table, table, table)
                )
            else:
                db.execute("DELETE FROM %s" % table)
        rollup.clear(db)
        transactions.clear_matches(db)


# advisory lock namespace of a panel's derivation (gateway.db.lock_names): the gateways' workers
# (several on one PostgreSQL) and `rating rebuild` derive a panel one at a time
DERIVE_LOCKS = 0x52415402


def rebuild_panel(db, site, device, now_ms, chunk=REBUILD_CHUNK):
    """Derive one panel from its first event: chunks of `chunk` events, one transaction each
    (the incremental path the gateway's worker takes, so the result is the one-go result)."""
    first = True
    while True:
        with db.transaction():
            db.lock_names(DERIVE_LOCKS, ["%s/%s" % (site, device)])
            rev = site_mod.revision(db)
            more = _derive_device(db, site, device, now_ms, _history(db, rev), rev, force_full=first, max_events=chunk)
        first = False
        if not more:
            return


# Many panels rebuilt together (rebuild_panels): events read a query (one page in memory), events
# derived a transaction (whole panels: committed once a panel ends past this many), derived rows
# kept before they are written (at a panel's end).
REBUILD_PAGE = 5000
REBUILD_TRANSACTION = 20000
REBUILD_FLUSH_ROWS = 20000
# panels rebuild() hands to rebuild_panels at a time (their verdicts and boot clocks are read
# together, so in memory together)
REBUILD_PANELS = 256


def rebuild_panels(db, panels, now_ms, page=REBUILD_PAGE, per_transaction=REBUILD_TRANSACTION):
    """Derive `panels` [(site, device)] from their first events, like rebuild_panel of each with
    the same rows, at a fraction of its statements: each panel's events are read page by page
    in seq order once its derivation lock is held (a live gateway's worker derives it before
    or after, never in between), their boot clocks and verdicts with one query for all, and their derived rows and rollups are written at once with
    COPY on PostgreSQL (gateway.db.insert_rows), several panels a transaction (`per_transaction`
    events, whole panels: a panel is never half written). Memory: one page of events, one
    panel's polls (its rollup needs them all, as rollup.refresh does) and the rows waiting to
    be written. A panel with a checkpoint (purged events) takes rebuild_panel. Returns the
    number of panels derived."""
    panels = sorted(set(tuple(p) for p in panels))
    if not panels:
        return 0
    rev = site_mod.revision(db)
    history = _history(db, rev)
    checkpointed = _checkpointed(db, panels)
    for site, device in sorted(checkpointed):
        rebuild_panel(db, site, device, now_ms)
    todo = [p for p in panels if p not in checkpointed]
    if todo:
        _Rebuild(db, todo, now_ms, history, rev).run(page, per_transaction)
    return len(panels)


def _checkpointed(db, panels):
    out = set()
    for where, params in dbmod.panel_filters(panels):
        out.update(
            (r["site"], r["device"])
            for r in db.query("SELECT site, device FROM derive_checkpoints WHERE " + where, params)
        )
    return out


class _Rebuild:
    """The imperative shell of rebuild_panels: reads pages, feeds PanelDerivation, writes."""

    def __init__(self, db, panels, now_ms, history, rev):
        self.db, self.panels, self.now_ms, self.history, self.rev = db, panels, now_ms, history, rev
        self.offsets = store.boot_offsets_of(db, panels)
        self.verdicts = review_mod.latest_of_panels(db, panels)
        self.sales = transactions.sites_with_sales(db, {site for site, _ in panels})
        self.pending = _pending()
        self.pending_panels = []
        self.pending_rows = 0
        self._tx = None
        self._till_locks = False  # this transaction holds tills' locks (transactions.after_derive)

    def run(self, page, per_transaction):
        in_tx = 0  # events fed in this transaction
        try:
            for key in self.panels:
                self._begin()
                # A live gateway's worker may derive this panel now: one at a time, and its
                # events are read only once the lock is held, so none stored and derived by a
                # worker before the lock is missed (an event stored later is the worker's, fed
                # on from the state committed here).
                self.db.lock_names(DERIVE_LOCKS, ["%s/%s" % key])
                d = PanelDerivation(key[0], key[1], self.history, self.offsets.get(key, {}))
                rows, fed = _PanelRows(), False
                for events in self._events(key, page):
                    rows.add(d.feed(events))
                    fed = True
                if not fed:  # no event (yet): nothing to derive
                    continue
                in_tx += self._finish(key, d, rows)
                if in_tx >= per_transaction or self._till_locks:
                    self._commit()
                    in_tx = 0
            self._commit()
        except BaseException:
            tx, self._tx = self._tx, None
            if tx is not None:
                tx.__exit__(*sys.exc_info())  # rolled back
            raise

    def _begin(self):
        if self._tx is None:
            self._tx = contextlib.ExitStack()
            self._tx.enter_context(self.db.transaction())

    def _commit(self):
        if self._tx is not None:
            self._flush()
            tx, self._tx = self._tx, None
            tx.close()
        self._till_locks = False

    def _events(self, key, page):
        """One panel's events, `page` at most a query, in seq order: one primary-key range of
        that panel a query (an equality on (site, device): no order of text between panels is
        assumed, which a locale collation on PostgreSQL would not share with Python's)."""
        after = -(2**62)
        while True:
            events = store.events_to_derive(self.db, key[0], key[1], after, page)
            if events:
                yield events
            if len(events) < page:
                return
            after = events[-1]["seq"]

    def _finish(self, key, d, rows):
        """The panel's last event is fed: its clock-closed rows, state and rollup join the rows
        to write. Returns the number of events it had."""
        site, device = key
        provisional = d.provisional(self.now_ms - MARGIN_MS)
        rows.add(provisional)
        n_provisional = len(provisional["polls"]) + len(provisional["force_majeure"])
        state = (
            site,
            device,
            d.fed_seq,
            d.fed_count,
            json.dumps(d.state()),
            json.dumps({"rev": self.rev, "provisional": n_provisional}),
            self.now_ms,
            d.due(self.now_ms - MARGIN_MS),
        )
        fms = [dict(zip(FM_COLUMNS, r, strict=True)) for r in sorted(rows.force_majeure.values(), key=lambda r: r[2])]
        panel = rollup.Panel(None, site, device, self.verdicts.get(key, {}), fms)
        rolled = rollup.panel_rows(self.history, panel, (dict(zip(POLL_COLUMNS, r, strict=True)) for r in rows.polls))
        for table, out in (
            ("polls", rows.polls),
            ("force_majeure", list(rows.force_majeure.values())),
            ("unsolicited", list(rows.unsolicited.values())),
            ("anomalies", list(rows.anomalies.values())),
            ("derive_state", [state]),
            ("poll_rollup", rolled["poll_rollup"]),
            ("fm_rollup", rolled["fm_rollup"]),
        ):
            self.pending[table].extend(out)
            self.pending_rows += len(out)
        self.pending_panels.append(key)
        if site in self.sales:  # its tills are matched against its polls: written first
            self._flush()
            transactions.after_derive(self.db, site, device, self.history)
            # committed at once: holding the tills' locks while taking the next panel's lock
            # could close a cycle with a live worker that holds that panel and wants a till
            self._till_locks = True
        elif self.pending_rows >= REBUILD_FLUSH_ROWS:
            self._flush()
        return d.fed_count

    def _flush(self):
        """Clear what the pending panels had (a gateway may have derived one meanwhile) and write
        their rows, a statement a table."""
        if not self.pending_panels:
            return
        db = self.db
        for where, params in dbmod.panel_filters(self.pending_panels):
            for table in DERIVED_TABLES:
                db.execute("DELETE FROM %s WHERE %s" % (table, where), params)
        rollup.clear_panels(db, self.pending_panels)
        for table, columns in _BULK_COLUMNS.items():
            db.insert_rows(table, columns, self.pending[table])
        rollup.insert_rows(db, {t: self.pending[t] for t in rollup.ROLLUP_COLUMNS})
        self.pending = _pending()
        self.pending_panels = []
        self.pending_rows = 0


class _PanelRows:
    """A panel's derived rows while it is fed: the last row of a key wins, as the upserts of
    _write make it (a report or an anomaly may be emitted again)."""

    def __init__(self):
        self.polls = []
        self.force_majeure, self.unsolicited, self.anomalies = {}, {}, {}

    def add(self, out):
        self.polls.extend(out["polls"])
        for table, n_key in (("force_majeure", 3), ("unsolicited", 3), ("anomalies", 4)):
            kept = getattr(self, table)
            for r in out[table]:
                kept[r[:n_key]] = r


STATE_COLUMNS = ("site", "device", "fed_seq", "fed_count", "snapshot", "watch", "updated_ms", "due_ms")
_BULK_COLUMNS = {
    "polls": POLL_COLUMNS,
    "force_majeure": FM_COLUMNS,
    "unsolicited": UNSOLICITED_COLUMNS,
    "anomalies": ANOMALY_COLUMNS,
    "derive_state": STATE_COLUMNS,
}


def _pending():
    return {table: [] for table in (*_BULK_COLUMNS, *rollup.ROLLUP_COLUMNS)}


def rebuild(db, now_ms):
    """Drop every derived row and derive all panels again from raw events + settings history,
    in this process. Returns the number of panels derived (gateway/rebuild.py runs the panels
    in parallel worker processes).

    Many panels a transaction (rebuild_panels), so a running gateway (SQLite: one writer at a
    time) waits for a few of them, not for the whole rebuild. A panel the gateway updates
    meanwhile has no derive_state and is derived from scratch by that update: the result is
    the same (its rows are cleared again before the rebuild writes them)."""
    clear_derived(db)
    panels = store.event_panels(db)
    for i in range(0, len(panels), REBUILD_PANELS):
        rebuild_panels(db, panels[i : i + REBUILD_PANELS], now_ms)
    return len(panels)


def ensure_month_partitions(db, now_ms):
    """PostgreSQL: polls' partitions of last month through the coming months (the worker,
    hourly; gateway/partitions.py)."""
    return partitions.ensure(db, "polls", "opened_ms", now_ms)


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
# (the answer and seller timings: what the doubt score reads, gateway/doubt.py)
INDEX_POLL_COLUMNS = (
    "site",
    "device",
    "open_seq",
    "opened_ms",
    "answer",
    "employee",
    "answered_ms",
    "extra_presses",
    "seller_presses",
    "seller_hold_ms",
)
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


def negative_polls(db, from_ms, through_ms, panel=None):
    """The No and silent polls opened in [from_ms, through_ms] (of one panel (site, device) when
    given), in time order: the candidates for a CRM follow-up (gateway/followups.py)."""
    sql, params = (
        "SELECT * FROM polls WHERE (answer IS NULL OR answer = ?) AND opened_ms >= ? AND opened_ms <= ?",
        [
            "no",
            from_ms,
            through_ms,
        ],
    )
    if panel is not None:
        sql += " AND site = ? AND device = ?"
        params += list(panel)
    return db.query(sql + " ORDER BY opened_ms, site, device, open_seq", tuple(params))


# ---- the polls behind a figure (the console's drill-down): counted and paged in SQL --------------

DRILL_ANSWERS = ("yes", "no", "unsure", "silent")
DRILL_KINDS = ("counted", "yes", "no", "unsure", "silent", "fm", "invalid", "all", "no_sale")


def _invalid_by_panel(site, invalid):
    by_panel = {}
    for ident in invalid:
        s, device, seq = ident.rsplit("/", 2)
        if s == site:
            by_panel.setdefault(device, []).append(int(seq))
    return by_panel


def _any_of(clauses, params_list):
    """'(c1 OR c2 ...)' of clauses and their parameters; '1 = 0' when there is none."""
    if not clauses:
        return "1 = 0", []
    return "(" + " OR ".join(clauses) + ")", [p for ps in params_list for p in ps]


def _drill_where(sel):
    """WHERE clause and parameters of a drill-down selection (dict, see count_selected)."""
    sql, params = ["site = ?"], [sel["site"]]
    for col, name in (("opened_ms >= ?", "from_ms"), ("opened_ms < ?", "to_ms")):
        if sel.get(name) is not None:
            sql.append(col)
            params.append(sel[name])
    for col in ("device", "employee", "question", "kind"):
        value = sel.get(col)
        if value == "":
            sql.append("%s IS NULL" % col)  # nobody on the roster / no question known
        elif value is not None:
            sql.append("%s = ?" % col)
            params.append(value)
    if sel.get("windows") is not None:  # an hour x weekday cell: its hours in the range
        clause, ps = _any_of(["(opened_ms >= ? AND opened_ms < ?)"] * len(sel["windows"]), sel["windows"])
        sql.append(clause)
        params += ps
    invalid = _invalid_by_panel(sel["site"], sel.get("invalid") or ())
    inv_clause, inv_params = _any_of(
        ["(device = ? AND open_seq IN (%s))" % ", ".join("?" * len(seqs)) for seqs in invalid.values()],
        [[d, *sorted(seqs)] for d, seqs in invalid.items()],
    )
    periods = [p for p in sel.get("fm_periods") or () if p["site"] == sel["site"]]
    fm_clause, fm_params = _any_of(
        ["(device = ? AND opened_ms >= ? AND opened_ms < ?)"] * len(periods),
        [(p["device"], p["start"], p["end"]) for p in periods],
    )
    # a staff-question No / silent poll in a confirmed period of its panel (left out of DI-staff)
    fm_clause = "(kind = 'staff' AND (answer IS NULL OR answer = 'no') AND %s)" % fm_clause
    what = sel.get("what") or "counted"
    if what in ("invalid", "no_sale"):
        # no_sale: the ids the caller found with no POS sale (gateway.transactions.no_sale_ids;
        # the POS figures count every poll, invalid ones too)
        ids = _invalid_by_panel(sel["site"], sel.get(what) or ())
        clause, ps = _any_of(
            ["(device = ? AND open_seq IN (%s))" % ", ".join("?" * len(seqs)) for seqs in ids.values()],
            [[d, *sorted(seqs)] for d, seqs in ids.items()],
        )
        sql.append(clause)
        params += ps
        return " WHERE " + " AND ".join(sql), tuple(params)
    if what != "all":
        sql.append("NOT " + inv_clause)
        params += inv_params
    if what == "fm":
        sql.append(fm_clause)
        params += fm_params
    elif what != "all" and sel.get("exclude_fm"):
        sql.append("NOT " + fm_clause)
        params += fm_params
    if what == "silent":
        sql.append("answer IS NULL")
    elif what in DRILL_ANSWERS:
        sql.append("answer = ?")
        params.append(what)
    return " WHERE " + " AND ".join(sql), tuple(params)


def count_selected(db, sel):
    """How many polls of one office a drill-down selection holds. `sel`: site; from_ms / to_ms
    (None: open); device, employee, question, kind (None: any; "": none recorded); windows
    [(from_ms, to_ms)] (None: the whole range); invalid: the ids "site/device/seq" an expert
    marked invalid; fm_periods: confirmed periods (dicts site, device, start, end); exclude_fm:
    leave out staff No/silent polls in them (as DI-staff does); what: counted (valid polls) |
    yes | no | unsure | silent (valid polls with that answer) | fm (staff No/silent polls in a
    confirmed period) | invalid | all | no_sale (the ids in sel["no_sale"]: polls with no POS
    sale, gateway.transactions.no_sale_ids)."""
    where, params = _drill_where(sel)
    return db.scalar("SELECT COUNT(*) FROM polls" + where, params) or 0


def selected_page(db, sel, limit=50, offset=0):
    """A page of the selection's poll rows in time order (newest last)."""
    where, params = _drill_where(sel)
    return db.query(
        "SELECT * FROM polls%s ORDER BY opened_ms, device, open_seq LIMIT %d OFFSET %d"
        % (where, int(limit), int(offset)),
        params,
    )


def office_reports(db, site):
    """Every force-majeure report of one office (a confirmed period may reach into any range)."""
    return db.query("SELECT * FROM force_majeure WHERE site = ? ORDER BY start_ms, device, seq", (site,))
