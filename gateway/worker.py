"""The gateway's background worker: everything that is not storing and acking, off the ack
path, with its own thread and its own database connection - derivation, the configs due to
panels, and the retention of dead letters.

The ingest thread only hands over the panels each commit changed (`changed()`, a set under a
lock: no database work, no wait). The worker derives them in rounds, at most every `every_s`:

- one transaction per panel and at most `max_events` events fed per panel and transaction
  (gateway.derive.update(..., max_events)): a panel re-derived from scratch after a settings
  change, or one with a week's backlog, is worked off over several rounds, and the ingest
  thread never waits for more than one short transaction (SQLite has one writer at a time);
- at most `max_panels` panels a round; the rest stay pending for the next round;
- by the clock, every `tick_s`: only the panels whose open poll window or force-majeure period
  has ended since their last update (derive.due_panels), not every panel seen in the last
  hours; after a new settings revision (`rating site apply`) the panels seen in the last
  `recent_ms` too;
- every `config_push_s`, the configs due to panels (configpush.due, which loads the settings
  history) are computed here and handed to the service to publish (`take_configs()`); the
  service reports each one the broker confirmed (`pushed()`) and it is recorded here
  (configpush.mark_pushed) before the next computation;
- every `retention_every_s`, dead letters and refusal counts older than the retention are
  deleted in small batches (store.expire_dead_letters), and loyalty-card references older than
  the site file's `loyalty_days` are wiped (transactions.purge_loyalty);
- every hour on PostgreSQL, the monthly partitions of raw_events and polls for the coming
  months (gateway/partitions.py);
- once a day, when the gateway settings name an archive folder and a retention in months, the
  months of raw events that are over are archived and what is archived and derived and older
  than the retention is purged (gateway/archive.py);
- alerts (gateway/alerts.py): every `alerts_every_s` the operations rules over every panel (a
  panel going quiet is news too) and the service rules over the offices whose polls were
  derived since the last evaluation (a service rule reads weeks of an office's polls: once per
  `alerts_every_s`, not once per round); then the alert outbox is delivered
  (gateway/alertsend.py), one pass a round;
- CRM follow-ups (gateway/followups.py): every `followups_every_s` the polls whose hold ended
  and up to `followup_panels` of the panels derived since (bench/followups.py: a few ms a
  panel); then their webhook outbox, one pass a round.

A failure is logged and counted (`stats["errors"]`) and the panel is tried again next round;
derived rows can always be rebuilt (`rating rebuild`). `run_round(db, now_ms)` is the whole
round without the thread, for tests.
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator

from gateway import alerts, alertsend, configpush, derive, followups, schema, store, transactions
from gateway import site as site_mod

log = logging.getLogger("gateway.worker")

Panel = tuple[str, str]
PARTITIONS_EVERY_S = 3600.0
RAW_RETENTION_EVERY_S = 86400.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class WriteTurn:
    """Whose turn it is to write, between the ingest thread and the worker of one process.

    SQLite has one writer at a time and its busy handler is not fair: a worker running
    transactions back to back kept the ingest thread's BEGIN IMMEDIATE sleeping in its busy
    handler's back-off, and a probe panel waited 9 s for acks under 2,000 busy panels. So the
    ingest thread always goes first: the worker starts a transaction only when the ingest
    thread is neither writing nor waiting to."""

    def __init__(self):
        self._cond = threading.Condition()
        self._ingest_waiting = 0
        self._busy = False
        self._hold_until = 0.0

    def hold(self, seconds: float) -> None:
        """The ingest thread is working through a backlog: the worker starts nothing for this
        long (it shares the GIL and the cores; derivation may lag, acks may not)."""
        with self._cond:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    @contextlib.contextmanager
    def ingest(self) -> Iterator[None]:
        with self._cond:
            self._ingest_waiting += 1
            while self._busy:
                self._cond.wait()
            self._ingest_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        with self._cond:
            while True:
                held = self._hold_until - time.monotonic()
                if held > 0:
                    self._cond.wait(held)
                elif self._busy or self._ingest_waiting:
                    self._cond.wait()
                else:
                    break
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class Worker:
    def __init__(
        self,
        url: str,
        root: str,
        every_s: float = 1.0,
        tick_s: float = 10.0,
        config_push_s: float = 5.0,
        max_events: int = 2000,
        max_panels: int = 500,
        recent_ms: int = 6 * 3600 * 1000,
        retention_ms: int | None = None,
        retention_every_s: float = 3600.0,
        turn: WriteTurn | None = None,
        duty: float = 0.5,
        alerts_every_s: float = 10.0,
        followups_every_s: float = 10.0,
        followup_panels: int = 200,
        raw_archive_dir: str = "",
        raw_keep_months: int = 0,
    ):
        self.url = url
        self.root = root
        self.every_s = every_s
        self.tick_s = tick_s
        self.config_push_s = config_push_s
        self.max_events = max_events
        self.max_panels = max_panels
        self.recent_ms = recent_ms
        self.retention_ms = retention_ms
        self.retention_every_s = retention_every_s
        self.turn = turn or WriteTurn()
        # the worker's share of the time while it has work (on its thread): it shares the GIL
        # and the cores with the ingest thread, and derivation may lag where acks may not
        self.duty = duty
        self._pending: set[Panel] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rev: int | None = None
        self._next_retention = 0.0
        self._next_loyalty = 0.0
        self._next_partitions = 0.0
        # the retention of raw events (gateway/archive.py): both set, or off
        self.raw_archive_dir, self.raw_keep_months = raw_archive_dir, raw_keep_months
        self._next_raw = 0.0
        self._next_tick = time.monotonic() + tick_s
        self._next_push = 0.0
        self._configs_due: list[tuple[str, bytes]] = []  # computed here, published by the service
        self._pushed: list[tuple[str, bytes]] = []  # confirmed by the broker, to record
        self.alerts_every_s = alerts_every_s
        self._next_alerts = time.monotonic() + alerts_every_s  # the first after derivation started
        self._alert_sites: set[str] = set()  # offices with newly derived polls, not yet evaluated
        self.followups_every_s = followups_every_s
        self.followup_panels = followup_panels
        self._next_followups = time.monotonic() + followups_every_s
        self._followup_panels: set[Panel] = set()  # derived since the last follow-up pass
        self.stats = {"rounds": 0, "panels": 0, "errors": 0, "expired": 0, "alerts": 0, "alerts_sent": 0}
        self.stats.update(followups=0, followups_sent=0)
        self.stats["loyalty_purged"] = 0

    # ---- the ingest thread's side: cheap --------------------------------------------------
    def changed(self, panels: set[Panel], now_ms: int | None = None) -> None:
        """Panels a commit changed (Ingestor's on_commit signature)."""
        with self._lock:
            self._pending |= panels

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def take_configs(self) -> list[tuple[str, bytes]]:
        """The configs due to panels since the last call: (topic, payload) to publish retained."""
        with self._lock:
            due, self._configs_due = self._configs_due, []
        return due

    def pushed(self, topic: str, payload: bytes) -> None:
        """The broker confirmed a config publish: recorded (configpush.mark_pushed) next round."""
        with self._lock:
            self._pushed.append((topic, payload))
        self._wake.set()

    # ---- the thread ------------------------------------------------------------------------
    def start(self) -> "Worker":
        self._thread = threading.Thread(target=self._run, name="gateway-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the round (or what is pending, within `timeout`), then end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        # below the ingest and MQTT threads for the OS scheduler too (Linux: a thread's nice)
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        db = None
        while True:
            try:
                if db is None:
                    db = self._connect()
                started = time.monotonic()
                more = self.run_round(db, _now_ms())
                if self._stop.is_set() and (not more or time.monotonic() - started > 5):
                    break
            except Exception:  # the database is away: keep the pending panels, try again
                self.stats["errors"] += 1
                log.exception("derive round failed; retried in %.0f s", self.every_s)
                if db is not None:
                    db.close()
                    db = None
                more = False
                if self._stop.is_set():
                    break
            if not more:
                self._wake.wait(self.every_s)
                self._wake.clear()
        if db is not None:
            db.close()

    def _connect(self):
        db = schema.open_database(self.url)
        if db.dialect == "postgresql":
            # derived rows, config pushes and retention are all rebuilt or redone after a crash:
            # no need to wait for the WAL flush, which the ingest thread's commits wait for
            db.execute("SET synchronous_commit = off")
        return db

    # ---- one round -------------------------------------------------------------------------
    def run_round(self, db, now_ms: int) -> bool:
        """Derive what is due; returns True when work is left for another round right away."""
        self.stats["rounds"] += 1
        panels = self._take(db, now_ms)
        done = 0
        for panel in sorted(panels):
            if done >= self.max_panels:
                break
            done += 1
            try:
                with self._background(), db.transaction():
                    # another gateway's worker may derive the same panel (shared subscriptions):
                    # one at a time, each from what the other committed
                    db.lock_names(derive.DERIVE_LOCKS, ["%s/%s" % panel])
                    left = derive.update(db, [panel], now_ms, max_events=self.max_events)
            except Exception:
                self.stats["errors"] += 1
                log.exception("deriving %s/%s failed; tried again next round", *panel)
                left = {panel}
            panels.discard(panel)
            panels |= left
            self.stats["panels"] += 1
            self._alert_sites.add(panel[0])
            self._followup_panels.add(panel)
        with self._lock:
            self._pending |= panels
            more = bool(self._pending)
        self._configs(db, now_ms)
        self._expire(db, now_ms)
        self._purge_loyalty(db, now_ms)
        self._partitions(db, now_ms)
        self._raw_retention(db, now_ms)
        self._alerts(db, now_ms)
        self._followups(db, now_ms)
        return more

    def _followups(self, db, now_ms: int) -> None:
        """The CRM follow-ups of the polls whose hold ended or that were just derived
        (gateway/followups.py), then their webhook outbox. Never on the ack path."""
        if self._stop.is_set():
            return
        try:
            history = None
            if time.monotonic() >= self._next_followups:
                self._next_followups = time.monotonic() + self.followups_every_s
                history = site_mod.load(db)
                # bounded work a pass: the panels derived since are rechecked (late polls, a poll
                # answered after all) a few hundred at a time, the rest in the next passes
                batch = set(sorted(self._followup_panels)[: self.followup_panels])
                with self._background():
                    self.stats["followups"] += len(followups.update(db, now_ms, batch, history))
                self._followup_panels -= batch  # kept for the next try when the pass failed
            if followups.outbox_pending(db):
                history = history or site_mod.load(db)
                sent, _failed = followups.deliver(db, history, now_ms)
                self.stats["followups_sent"] += sent
        except Exception:
            self.stats["errors"] += 1
            log.exception("follow-ups: pass or delivery failed; tried again next round")

    def _alerts(self, db, now_ms: int) -> None:
        """Evaluate the alert rules (after new polls, or by the clock) and deliver the outbox.
        A failure is logged and tried again next round: alerts are never on the ack path."""
        if self._stop.is_set():
            return  # stopping: derive what is pending; the next start evaluates and delivers
        try:
            if time.monotonic() >= self._next_alerts:
                self._next_alerts = time.monotonic() + self.alerts_every_s
                history = site_mod.load(db)
                # weeks of polls are read outside the write turn; only the raising takes it
                found = alerts.compute(db, now_ms, self._alert_sites, history)
                with self._background():
                    self.stats["alerts"] += len(alerts.record(db, found))
                self._alert_sites = set()  # kept for the next try when the evaluation failed
            else:
                history = None
            if alerts.outbox_pending(db):
                history = history or site_mod.load(db)
                sent, _failed = alertsend.deliver(db, history.alerts(now_ms), now_ms)
                self.stats["alerts_sent"] += sent
        except Exception:
            self.stats["errors"] += 1
            log.exception("alerts: evaluation or delivery failed; tried again next round")

    @contextlib.contextmanager
    def _background(self) -> Iterator[None]:
        """One transaction of the worker: after the ingest thread's, then a pause in proportion
        (the duty cycle) when running on its own thread."""
        started = time.monotonic()
        with self.turn.background():
            yield
        if self._thread is not None and self.duty < 1:
            time.sleep((time.monotonic() - started) * (1 - self.duty) / self.duty)

    def _configs(self, db, now_ms: int) -> None:
        with self._lock:
            pushed, self._pushed = self._pushed, []
        for topic, payload in pushed:
            try:
                with self._background():
                    configpush.mark_pushed(db, topic, payload, now_ms)
            except Exception:
                self.stats["errors"] += 1
                log.exception("could not record the config pushed on %s", topic)
        if time.monotonic() < self._next_push:
            return
        self._next_push = time.monotonic() + self.config_push_s
        due = configpush.due(db, now_ms, root=self.root)
        with self._lock:
            self._configs_due = due

    def _take(self, db, now_ms: int) -> set[Panel]:
        with self._lock:
            panels, self._pending = self._pending, set()
        if time.monotonic() < self._next_tick:
            return panels
        self._next_tick = time.monotonic() + self.tick_s
        panels.update(derive.due_panels(db, now_ms, limit=self.max_panels))
        rev = site_mod.revision(db)
        if rev != self._rev:  # new settings (or the first tick): recent panels are stale
            panels |= store.panels_seen_since(db, now_ms - self.recent_ms)
            self._rev = rev
        return panels

    def _purge_loyalty(self, db, now_ms: int) -> None:
        """Loyalty-card references older than the site file's `loyalty_days` are wiped
        (gateway/transactions.py), every `retention_every_s`, in small batches."""
        if time.monotonic() < self._next_loyalty:
            return
        self._next_loyalty = time.monotonic() + self.retention_every_s
        try:
            days = transactions.loyalty_days(site_mod.load(db), now_ms)
            while not self._stop.is_set():
                with self._background(), db.transaction():
                    n = transactions.purge_loyalty(db, now_ms - int(days * 86400000), limit=1000)
                self.stats["loyalty_purged"] += n
                if n < 1000:
                    break
        except Exception:
            self.stats["errors"] += 1
            log.exception("loyalty retention failed; tried again in %d s", self.retention_every_s)

    def _partitions(self, db, now_ms: int) -> None:
        """PostgreSQL: the monthly partitions of raw_events and polls, created ahead of need
        every PARTITIONS_EVERY_S (docs/partitions.md); nothing on SQLite."""
        if db.dialect != "postgresql" or time.monotonic() < self._next_partitions:
            return
        self._next_partitions = time.monotonic() + PARTITIONS_EVERY_S
        try:
            with self._background(), db.transaction():
                made = store.ensure_month_partitions(db, now_ms) + derive.ensure_month_partitions(db, now_ms)
            if made:
                log.info("partitions: %d monthly partitions created", made)
        except Exception:
            self.stats["errors"] += 1
            log.exception("partitions: creating the coming months failed; tried again next round")
            self._next_partitions = time.monotonic() + 60

    def _raw_retention(self, db, now_ms: int) -> None:
        """With raw_archive_dir and raw_keep_months set, every RAW_RETENTION_EVERY_S: archive the
        months that are over and not archived yet, then purge what is archived and derived and
        older than raw_keep_months (docs/partitions.md). Its transactions are short but for the
        final delete, which SQLite's ingest waits for (seconds for a month of a small store)."""
        if not (self.raw_archive_dir and self.raw_keep_months) or time.monotonic() < self._next_raw:
            return
        if self._stop.is_set():
            return
        self._next_raw = time.monotonic() + RAW_RETENTION_EVERY_S
        from gateway import archive

        try:
            for month in archive.months_to_archive(db, now_ms):
                row = archive.archive_month(db, month, self.raw_archive_dir, now_ms)
                log.info("raw events of %s archived to %s (%d events)", month, row["file"], row["events"])
            done = archive.purge(db, self.raw_keep_months, now_ms)
            if done.purge or done.stopped:
                log.info(
                    "raw-event retention: %d events received before %s deleted, %d kept%s",
                    done.purge,
                    archive.partitions.month_label(done.cutoff_ms),
                    done.kept,
                    "; stopped: " + done.stopped if done.stopped else "",
                )
        except Exception:
            self.stats["errors"] += 1
            log.exception("raw-event archive or retention failed; tried again in an hour")
            self._next_raw = time.monotonic() + 3600

    def _expire(self, db, now_ms: int) -> None:
        if self.retention_ms is None or time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + self.retention_every_s
        while not self._stop.is_set():
            with self._background(), db.transaction():
                n = store.expire_dead_letters(db, now_ms - self.retention_ms, limit=1000)
            self.stats["expired"] += n
            if n < 1000:
                break
        if self.stats["expired"]:
            log.info("retention: %d dead letters and refusal counts deleted so far", self.stats["expired"])
