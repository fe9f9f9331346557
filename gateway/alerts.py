"""Alerts: the rules of gateway/alertrules.py over what the stores hold, raised once, kept in
this module's tables (migration 030: `alerts`, `alert_marks`, `alert_outbox`) and handed to the
channels through a durable outbox (gateway/alertsend.py delivers it).

`evaluate(db, now_ms, sites)` runs on the gateway's background worker after each derivation
round (gateway/worker.py), off the ack path: the operations rules over every panel, the service
rules over the offices `sites` whose polls just changed (None: every office).

Raising, in one transaction with the rules' marks:
- deduplication: a firing whose dedup key (rule:subject) has an alert not yet resolved only
  updates that alert (last_ms, fired, cleared_ms back to NULL): no second message;
- cooldown: a key whose last alert was resolved less than the rule's cooldown_min ago raises
  nothing;
- a new alert gets one outbox row per channel listed in the site file's alerts.channels, in the
  same transaction (nothing raised is lost if the process dies before delivery).
An operations alert whose condition is gone gets cleared_ms (shown; still open until a person
resolves it, so a flapping panel is one alert, not many).

The other stores are read through their modules (fleet.rows, store.panel_states,
derive.index, review.latest_for, store.counts, store.dead_letter_count); nothing else reads
these tables.
"""

import json
import logging

from gateway import alertrules, derive, fleet, outboxtable, review, store, times
from gateway import site as site_mod

log = logging.getLogger("gateway.alerts")

OPERATIONS = (
    "panel_offline",
    "stuck_button",
    "clock_unsynced",
    "journal_dropping",
    "config_not_applied",
    "dead_letters",
    "counts_missing",
)
STATES = ("open", "acked", "resolved")


class AlertError(ValueError):
    """No such alert, or it is already resolved."""


# ---- opening hours ------------------------------------------------------------------------------


def open_now(config, history, site, now_ms):
    """Whether the office is open at now_ms (its own timezone): alerts.offices.<site> hours/days,
    else alerts.hours/days, else all day."""
    config = config or {}
    own = config.get("offices", {}).get(site, {})
    hours = own.get("hours", config.get("hours", alertrules.DEFAULT_HOURS))
    days = own.get("days", config.get("days"))
    local = times.local(now_ms, history.tz(site, now_ms))
    if days is not None and local.weekday() not in times.parse_days(days):
        return False
    return times.in_hours(local.hour * 60 + local.minute, times.parse_hours(hours))


# ---- reading the facts --------------------------------------------------------------------------


def gather(db, history, config, now_ms, sites=None):
    """alertrules.Facts from the stores; service facts only for the offices `sites` (None: all)."""
    facts = alertrules.Facts(k=history.deployment(now_ms)["k"])
    states = {(r["site"], r["device"]): r for r in store.panel_states(db)}
    for row in fleet.rows(db, history, now_ms):
        st = states.get((row["site"], row["device"])) or {}
        row["t_ms"], row["state_ms"] = st.get("t_ms"), st.get("state_ms")
        facts.panels.append(row)
    all_sites = sorted({k for _, k in history.keys("site") if history.get("site", k, now_ms) is not None})
    facts.sites = all_sites
    facts.open_sites = {s for s in all_sites if open_now(config, history, s, now_ms)}
    facts.dead_letters = store.dead_letter_count(db)
    counts_since = now_ms - 7 * times.DAY_MS
    for r in store.counts(db, from_ms=counts_since):
        facts.counts_last_ms[r["site"]] = max(facts.counts_last_ms.get(r["site"], 0), r["to_ms"])
    wanted = all_sites if sites is None else sorted(set(sites) & set(all_sites))
    if wanted:
        run = alertrules.rule_settings(config, "negative_run")
        days = max(run["baseline_days"] * 1.25, 8)
        polls, fms = derive.index(db, sites=wanted, from_ms=now_ms - int(days * times.DAY_MS))
        verdicts = review.latest_for(
            db,
            [(review.POLL, p["site"], p["device"], p["open_seq"]) for p in polls]
            + [(review.FM, f["site"], f["device"], f["seq"]) for f in fms],
        )
        invalid = review.invalid_poll_ids(verdicts)
        periods = {}
        for period in review.confirmed_periods(fms, verdicts):
            periods.setdefault((period["site"], period["device"]), []).append((period["start"], period["end"]))
        for s in wanted:
            facts.polls[s] = []
            facts.fms[s] = []
        for p in polls:
            valid = review.format_id(p["site"], p["device"], p["open_seq"]) not in invalid
            # under a confirmed force majeure of its panel (kpi_core: left out of DI-staff)
            fm = any(a <= p["opened_ms"] < b for a, b in periods.get((p["site"], p["device"]), ()))
            facts.polls[p["site"]].append(dict(p, valid=valid, fm=fm))
        for f in fms:
            facts.fms[f["site"]].append(dict(f, status=review.fm_status(verdicts, f["site"], f["device"], f["seq"])))
    return facts


# ---- evaluation ---------------------------------------------------------------------------------


def _marks(db):
    return {r["key"]: r["value"] for r in db.query("SELECT key, value FROM alert_marks")}


def _save_marks(db, before, after):
    for key, value in after.items():
        if before.get(key) != value:
            db.execute("DELETE FROM alert_marks WHERE key = ?", (key,))
            db.execute("INSERT INTO alert_marks (key, value) VALUES (?, ?)", (key, int(value)))
    for key in set(before) - set(after):
        db.execute("DELETE FROM alert_marks WHERE key = ?", (key,))


def region_of(history, site, now_ms):
    """The region of the site file's location tree the office is in, or None (None also while
    the settings history knows no regions: `History.regions(t)` -> {region: [offices]})."""
    own = getattr(history, "region_of", None)
    if site is not None and callable(own):
        return own(site, now_ms)  # the office's own region, not a region that holds it further up
    regions = getattr(history, "regions", None)
    if site is None or not callable(regions):
        return None
    tree = regions(now_ms)
    for name, offices in sorted(tree.items()) if isinstance(tree, dict) else ():
        if site in offices:
            return str(name)
    return None


def with_thresholds(config, deployment):
    """The [alerts] config with the deployment's KPI threshold for the force-majeure rate
    (`[deployment.thresholds] fm_rate_max`, the reports' flag) as the fm_rate rule's `max`,
    unless [alerts.rules.fm_rate] sets its own."""
    fm_max = (deployment.get("thresholds") or {}).get("fm_rate_max")
    if fm_max is None or "max" in (config or {}).get("rules", {}).get("fm_rate", {}):
        return config
    config = dict(config or {})
    rules = dict(config.get("rules", {}))
    rules["fm_rate"] = dict(rules.get("fm_rate", {}), max=fm_max)
    config["rules"] = rules
    return config


class Evaluation:
    """The rules' verdict, computed by reading only (`compute`), recorded by `record`: the
    worker reads without holding the write turn and writes in one short transaction."""

    def __init__(self, history, config, firings, before, after, now_ms):
        self.history, self.config, self.firings = history, config, firings
        self.before, self.after, self.now_ms = before, after, now_ms


def compute(db, now_ms, sites=None, history=None):
    """Read the facts and run the rules (no write). Service rules only for `sites`."""
    history = history or site_mod.load(db)
    config = with_thresholds(history.alerts(now_ms), history.deployment(now_ms))
    facts = gather(db, history, config, now_ms, sites)
    before = _marks(db)
    firings, after = alertrules.evaluate(config, facts, before, now_ms)
    return Evaluation(history, config, firings, before, after, now_ms)


def record(db, ev):
    """Raise what `ev` found (dedup, cooldown, outbox) and store the rules' marks, in one
    transaction; returns the alerts raised (rows)."""
    now_ms = ev.now_ms
    raised = []
    with db.transaction():
        _save_marks(db, ev.before, ev.after)
        fired_keys = set()
        for f in ev.firings:
            fired_keys.add(f.dedup)
            row = _raise(db, ev.config, f, now_ms, region_of(ev.history, f.site, now_ms))
            if row is not None:
                raised.append(row)
        # operations conditions that are gone (the service rules are about past runs: they stay)
        for row in db.query("SELECT id, dedup, rule FROM alerts WHERE resolved_ms IS NULL AND cleared_ms IS NULL"):
            if row["rule"] in OPERATIONS and row["dedup"] not in fired_keys:
                db.execute("UPDATE alerts SET cleared_ms = ? WHERE id = ?", (now_ms, row["id"]))
    for row in raised:
        log.warning("alert #%d %s: %s", row["id"], row["severity"], row["summary"])
    return raised


def evaluate(db, now_ms, sites=None, history=None):
    """compute + record: the alerts raised now (rows)."""
    return record(db, compute(db, now_ms, sites, history))


def _raise(db, config, f, now_ms, region=None):
    """Raise `f` unless it is a duplicate or cooling down; the new row, else None."""
    current = db.query_one(
        "SELECT id FROM alerts WHERE dedup = ? AND resolved_ms IS NULL ORDER BY id DESC LIMIT 1", (f.dedup,)
    )
    if current is not None:
        db.execute(
            "UPDATE alerts SET last_ms = ?, fired = fired + 1, cleared_ms = NULL WHERE id = ?", (now_ms, current["id"])
        )
        return None
    cooldown = alertrules.rule_settings(config, f.rule)["cooldown_min"] * 60000
    last = db.scalar("SELECT MAX(resolved_ms) FROM alerts WHERE dedup = ?", (f.dedup,))
    if last is not None and now_ms - last < cooldown:
        return None
    detail = json.dumps(f.detail, sort_keys=True)
    (new_id,) = db.query_one(
        "INSERT INTO alerts (dedup, rule, severity, site, region, subject, summary, detail, raised_ms, last_ms, fired)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id",
        (f.dedup, f.rule, f.severity, f.site, region, f.subject, f.summary, detail, now_ms, now_ms),
    ).values()
    row = get(db, new_id)
    for channel in (config or {}).get("channels", []):
        db.execute(
            "INSERT INTO alert_outbox (alert_id, channel, payload, created_ms, attempts, next_ms)"
            " VALUES (?, ?, ?, ?, 0, ?)",
            (new_id, channel, json.dumps(message(row), sort_keys=True, ensure_ascii=False), now_ms, now_ms),
        )
    return row


def message(row):
    """The JSON body every channel carries; `id` is the idempotency key (one per alert)."""
    return {
        "id": "alert-%d" % row["id"],
        "alert": row["id"],
        "rule": row["rule"],
        "severity": row["severity"],
        "site": row["site"],
        "region": row["region"],
        "subject": row["subject"],
        "summary": row["summary"],
        "detail": json.loads(row["detail"]),
        "raised_ms": row["raised_ms"],
    }


# ---- reading and acting on alerts (CLI, console) --------------------------------------------------


def get(db, alert_id):
    return db.query_one("SELECT * FROM alerts WHERE id = ?", (alert_id,))


def state_of(row):
    if row["resolved_ms"] is not None:
        return "resolved"
    return "acked" if row["acked_ms"] is not None else "open"


def listing(db, state=None, sites=None, limit=100):
    """Alerts newest first; state: open (not acked or resolved) | acked | resolved | unresolved
    | None (all); sites: the offices (None: all; deployment-wide alerts are always shown)."""
    sql, params = "SELECT * FROM alerts WHERE 1 = 1", []
    if state == "open":
        sql += " AND resolved_ms IS NULL AND acked_ms IS NULL"
    elif state == "acked":
        sql += " AND resolved_ms IS NULL AND acked_ms IS NOT NULL"
    elif state == "unresolved":
        sql += " AND resolved_ms IS NULL"
    elif state == "resolved":
        sql += " AND resolved_ms IS NOT NULL"
    if sites is not None:
        sites = sorted(sites)
        sql += " AND (site IS NULL%s)" % ("".join(" OR site = ?" for _ in sites))
        params += sites
    sql += " ORDER BY id DESC LIMIT %d" % int(limit)
    rows = db.query(sql, tuple(params))
    for r in rows:
        r["state"] = state_of(r)
    return rows


def ack(db, alert_id, by, now_ms):
    """Someone is on it: no change to delivery, the alert stays until resolved."""
    with db.transaction():
        row = get(db, alert_id)
        if row is None:
            raise AlertError("no alert #%s" % alert_id)
        if row["resolved_ms"] is not None:
            raise AlertError("alert #%d is already resolved" % alert_id)
        if row["acked_ms"] is None:
            db.execute("UPDATE alerts SET acked_ms = ?, acked_by = ? WHERE id = ?", (now_ms, by, alert_id))
    return get(db, alert_id)


def resolve(db, alert_id, by, now_ms):
    """Done: the rule's cooldown starts now; a later firing is a new alert."""
    with db.transaction():
        row = get(db, alert_id)
        if row is None:
            raise AlertError("no alert #%s" % alert_id)
        if row["resolved_ms"] is not None:
            raise AlertError("alert #%d is already resolved" % alert_id)
        db.execute("UPDATE alerts SET resolved_ms = ?, resolved_by = ? WHERE id = ?", (now_ms, by, alert_id))
    return get(db, alert_id)


# ---- the outbox (gateway/alertsend.py delivers) ---------------------------------------------------


OUTBOX = outboxtable.OutboxTable("alert_outbox")  # what alertsend.deliver_outbox works
outbox_due = OUTBOX.due
outbox_pending = OUTBOX.pending
