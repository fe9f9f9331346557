"""CRM follow-up of dissatisfied customers: every No and silent poll that is valid and not under a
confirmed force majeure becomes a durable follow-up record (the METHOD's last step: dissatisfied
customers are the respondents of follow-up surveys), delivered by webhook and readable through
the console's JSON API (`GET /api/v1/followups`); a later "invalid" verdict or a confirmed force
majeure covering it sends a retraction, a verdict back to valid sends it again.

This module owns the tables of migration 050 (`followups`, `followup_events`,
`followup_outbox`, `followup_marks`). Polls are read through gateway/derive.py, verdicts through
gateway/review.py (the verdict in force, `_in_force`), force-majeure reports through derive and
their confirmation through `review.confirmed_periods` / `review.fm_status`.

When a poll becomes a follow-up (docs/integrations.md, "When"): a poll is final once its window
has closed and `hold_min` (default 30 min) has passed: late events of a panel that was offline,
the seller's long press reported just after, and a quick verdict all land in that time. A poll
that a force-majeure report of its panel covers while no expert has confirmed or rejected it is
held up to `fm_wait_h` (default 24 h) after its window closed, then sent anyway (a later
confirmation retracts it): a call to a customer under force majeure is a bad experience, but a
follow-up days late is useless. A poll first seen final more than `max_age_h` (default 48 h)
after its window closed (a `rating rebuild`, the first start, a panel's week-old backlog) gets
no follow-up: it is recorded as excluded ("too_old"), so nothing floods the CRM.

Incremental, by the gateway's background worker (gateway/worker.py) after each derivation round:
`update(db, now_ms, panels)` looks at (1) the polls whose hold ended since the last pass (a time
mark), (2) the polls of the panels just derived (late events, a poll answered after all), (3)
the held records, (4) the verdicts recorded since the last pass (an id mark). Each record's
decision is the pure `decide`; `step` turns it into the event to issue. Idempotent: one record
per poll identity (site, device, open_seq), events numbered per record, so a rebuild or a
second pass issues nothing new.

Exactly once for the receiver: each event has an id `followup:<site>/<device>/<seq>:<n>` (the
webhook's `X-Rating-Idempotency-Key`, the JSON's `id`); a webhook delivery that was not
acknowledged may come again with the same id, and the API's cursor re-reads the same events.
"""

import json
import logging
import os

from gateway import alertsend, derive, followupconf, outboxtable, review, times, transactions
from gateway import site as site_mod

log = logging.getLogger("gateway.followups")

SEND, HOLD, EXCLUDE = "send", "hold", "exclude"
FOLLOWUP, RETRACTION = "followup", "retraction"
STATES = ("held", "sent", "retracted", "excluded")
OVERLAP_MS = 60 * 60000  # the time pass looks back this far behind its mark (windows, polls stored late)
MAX_VERDICTS = 2000  # verdicts read a pass
LOCKS = 0x52415450  # advisory lock namespace of the follow-up pass (gateway.db.lock_names)


def transaction_of(db, site, device, open_seq):
    """The POS sale the poll followed (gateway/transactions.py's match) and its pseudonymous
    loyalty reference: {"transaction": {...}, "loyalty_ref": ...} or None when unmatched."""
    match = transactions.match_of(db, site, device, open_seq)
    if match is None:
        return None
    at = match["at_ms"]
    return {
        "transaction": {
            "id": match["tx_id"],
            "till": match["till"],
            "at_ms": at,
            "at_utc": times.format_iso(at, times.UTC).replace("+00:00", "Z"),
        },
        "loyalty_ref": match["loyalty"],
    }


# ---- the pure part ---------------------------------------------------------------------------


def decide(poll, invalid, confirmed_fm, pending_fm, now_ms, config):
    """(action, reason) for a poll row (None: it is gone) whose hold is over: SEND, HOLD
    (a force-majeure report covers it, not yet judged) or EXCLUDE (with why)."""
    if poll is None or poll["answer"] not in (None, "no"):
        return EXCLUDE, "answered"
    if invalid:
        return EXCLUDE, "invalid"
    if confirmed_fm:
        return EXCLUDE, "force_majeure"
    if pending_fm and now_ms < poll["closes_ms"] + config["fm_wait_h"] * 3600000:
        return HOLD, "fm_pending"
    return SEND, None


def step(record, action, reason, too_old):
    """(event kind to issue or None, new state, reason, live) from a record (None: new) and
    the decision. A follow-up goes out once; a retraction only after a live follow-up; a new
    follow-up of a poll older than max_age is not sent (a re-send after a retraction is)."""
    live = bool(record and record["live"])
    issued = bool(record and record["events"])
    if action == SEND:
        if live:
            return None, "sent", None, True
        if too_old and not issued:
            return None, "excluded", "too_old", False
        return FOLLOWUP, "sent", None, True
    if live:
        if action == HOLD:
            return None, "sent", None, True  # sent before the report came: its verdict decides
        return RETRACTION, "retracted", reason, False
    if action == HOLD:
        return None, "held", reason, False
    return None, ("retracted" if issued else "excluded"), reason, False


def event_id(site, device, seq, n):
    return "followup:%s/%s/%d:%d" % (site, device, seq, n)


def payload(kind, poll, key, n, reason, history, match, now_ms):
    """The JSON body of an event (docs/integrations.md): the poll, office, employee, question,
    time in UTC and in the office's timezone; a retraction names what it takes back."""
    site, device, seq = key
    ident = review.format_id(site, device, seq)
    body = {
        "id": event_id(site, device, seq, n),
        "kind": kind,
        "followup": ident,
        "version": n,
        "issued_ms": now_ms,
        "office": {"id": site, "name": history.site_name(site), "region": history.region_of(site, now_ms)},
    }
    if kind == RETRACTION:
        body["reason"] = reason
        body["retracts"] = event_id(site, device, seq, n - 1)
        body["poll"] = {"id": ident, "site": site, "device": device, "seq": seq}
        return body
    tz = history.tz(site, poll["opened_ms"])
    question = history.question(poll["question"], poll["opened_ms"]) or {}
    employee = poll["employee"]
    name = history.employee_name(employee) if employee else None
    texts = {}
    for lang in ("ru", "en"):
        text = question.get("text_" + lang)
        texts["text_" + lang] = text.replace("{employee}", name or "") if isinstance(text, str) else None
    body["poll"] = {
        "id": ident,
        "site": site,
        "device": device,
        "seq": seq,
        "answer": poll["answer"] or "silent",
        "opened_ms": poll["opened_ms"],
        "opened_utc": times.format_iso(poll["opened_ms"], times.UTC).replace("+00:00", "Z"),
        "opened_local": times.format_iso(poll["opened_ms"], tz),
        "timezone": str(tz),
    }
    body["employee"] = {"id": employee, "name": name} if employee else None
    body["question"] = dict({"id": poll["question"], "kind": question.get("kind")}, **texts)
    body["transaction"] = (match or {}).get("transaction")
    body["loyalty_ref"] = (match or {}).get("loyalty_ref")
    return body


# ---- the shell: the incremental pass ---------------------------------------------------------


def config_of(history, now_ms):
    return followupconf.settings(history.followups(now_ms))


def _marks(db):
    return {r["key"]: r["value"] for r in db.query("SELECT key, value FROM followup_marks")}


def _set_mark(db, key, value):
    db.execute(
        "INSERT INTO followup_marks (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, int(value)),
    )


def _record_rows(db, sql, params):
    return {(r["site"], r["device"], r["open_seq"]): r for r in db.query("SELECT * FROM followups" + sql, params)}


class Pass:
    """What one pass reads before it writes: the keys to decide, their polls and records."""

    def __init__(self, db, now_ms, config):
        self.db, self.now_ms, self.config = db, now_ms, config
        self.polls = {}  # key -> poll row (None: gone)
        self.records = {}  # key -> record row
        self.keys = set()

    def add_new_polls(self, rows, through_ms):
        """Final polls that have no record yet (a record's later changes come by other triggers)."""
        for p in rows:
            key = (p["site"], p["device"], p["open_seq"])
            if p["closes_ms"] <= through_ms and key not in self.records:
                self.polls[key] = p
                self.keys.add(key)

    def add_records(self, records):
        self.records.update(records)
        self.keys |= set(records)


def _candidates(db, now_ms, config, panels, marks):
    """The pass's keys: polls whose hold ended since the mark (new ones), new polls of the panels
    just derived and their live records whose poll is gone or answered now, held records,
    targets of new verdicts. -> (Pass, new marks). A steady pass reads a few rows a panel."""
    hold_ms = int(config["hold_min"] * 60000)
    max_age_ms = int(config["max_age_h"] * 3600000)
    final_through = now_ms - hold_ms
    ps = Pass(db, now_ms, config)
    since = marks.get("final_through_ms", now_ms - max_age_ms)
    # a window is at most a few minutes: polls opened since the mark less the overlap
    lo = since - OVERLAP_MS
    ps.records.update(_record_rows(db, " WHERE opened_ms >= ? AND opened_ms <= ?", (lo, final_through)))
    ps.add_new_polls(derive.negative_polls(db, lo, final_through), final_through)
    for panel in sorted(panels or ()):
        negative = derive.negative_polls(db, now_ms - max_age_ms, final_through, panel)
        own = _record_rows(
            db, " WHERE site = ? AND device = ? AND opened_ms >= ?", (panel[0], panel[1], now_ms - max_age_ms)
        )
        ps.records.update(own)
        ps.add_new_polls(negative, final_through)
        still = {(p["site"], p["device"], p["open_seq"]) for p in negative}
        ps.add_records({k: r for k, r in own.items() if r["live"] and k not in still})
    ps.add_records(_record_rows(db, " WHERE state = ?", ("held",)))
    if "verdict_id" in marks:
        verdicts = review.verdicts_after(db, marks["verdict_id"], MAX_VERDICTS)
    else:  # the first pass: every decision reads the verdicts in force anyway
        verdicts, marks["verdict_id"] = [], review.last_verdict_id(db)
    for v in verdicts:
        key = (v["site"], v["device"], v["seq"])
        if v["target"] == review.POLL:
            ps.add_records(_record_rows(db, " WHERE site = ? AND device = ? AND open_seq = ?", key))
            ps.keys.add(key)
        else:
            ps.add_records(_covered_records(db, v))
    new_marks = {"final_through_ms": max(since, final_through), "verdict_id": marks["verdict_id"]}
    if verdicts:
        new_marks["verdict_id"] = verdicts[-1]["id"]
    return ps, new_marks


def _covered_records(db, verdict):
    """The records of a panel that a verdict on one of its force-majeure reports may change:
    those opened within the report's period as reported or any period a verdict gave it."""
    site, device, seq = verdict["site"], verdict["device"], verdict["seq"]
    fm = derive.report(db, site, device, seq)
    spans = [fm["start_ms"], fm["end_ms"]] if fm else []
    for row in review.history(db, review.format_id(site, device, seq)):
        if row["target"] == review.FM:
            spans += [t for t in (row["from_ms"], row["to_ms"]) if t is not None]
    if not spans:
        return {}
    return _record_rows(
        db,
        " WHERE site = ? AND device = ? AND opened_ms >= ? AND opened_ms <= ?",
        (site, device, min(spans), max(spans)),
    )


def _fm_cover(db, keys, verdicts):
    """{key: (confirmed, pending)}: whether a confirmed / a not yet judged force-majeure report
    of the poll's panel covers its opening."""
    by_panel = {}
    for key in keys:
        by_panel.setdefault(key[:2], []).append(key)
    out = {}
    for (site, device), panel_keys in by_panel.items():
        reports = derive.panel_reports(db, site, device)
        fm_verdicts = review.latest_for(db, [(review.FM, site, device, r["seq"]) for r in reports])
        verdicts.update(fm_verdicts)
        periods = [(p["start"], p["end"]) for p in review.confirmed_periods(reports, fm_verdicts)]
        pending = [
            (r["start_ms"], r["end_ms"])
            for r in reports
            if review.fm_status(fm_verdicts, site, device, r["seq"]) == "pending"
        ]
        for key in panel_keys:
            out[key] = periods, pending
    return out


def update(db, now_ms, panels=None, history=None):
    """One incremental pass (see the module docstring): decide every candidate and issue the
    events, in one transaction. `panels`: the panels derived since the last pass. Returns the
    events issued (dicts: the payloads)."""
    history = history or site_mod.load(db)
    config = config_of(history, now_ms)
    if not config["enabled"]:
        return []
    issued = []
    with db.transaction():
        # gateways sharing one PostgreSQL: one pass at a time, each from what the other committed
        db.lock_names(LOCKS, ["followups"])
        ps, new_marks = _candidates(db, now_ms, config, panels, _marks(db))
        records = ps.records
        for key in ps.keys - set(ps.polls):
            ps.polls[key] = derive.poll(db, *key)
        verdicts = review.latest_for(db, [(review.POLL, *k) for k in sorted(ps.keys)])
        cover = _fm_cover(db, ps.keys, verdicts)
        for key in sorted(ps.keys, key=lambda k: ((ps.polls[k] or {}).get("opened_ms", 0), k)):
            event = _apply(db, ps, key, records.get(key), verdicts, cover[key], history)
            if event is not None:
                issued.append(event)
        for name, value in new_marks.items():
            _set_mark(db, name, value)
    return issued


def _apply(db, ps, key, record, verdicts, cover, history):
    poll, now_ms, config = ps.polls.get(key), ps.now_ms, ps.config
    if record is None and (
        poll is None or poll["answer"] not in (None, "no") or poll["closes_ms"] > now_ms - config["hold_min"] * 60000
    ):
        return None  # no record for a poll that is not a final No/silent one (a verdict came early)
    opened = poll["opened_ms"] if poll is not None else (record or {})["opened_ms"]
    verdict = verdicts.get((review.POLL, *key))
    invalid = verdict is not None and verdict["verdict"] == "invalid"
    periods, pending = cover
    confirmed = any(a <= opened < b for a, b in periods)
    pending_fm = any(a <= opened < b for a, b in pending)
    action, reason = decide(poll, invalid, confirmed, pending_fm, now_ms, config)
    too_old = poll is not None and now_ms - poll["closes_ms"] > config["max_age_h"] * 3600000
    kind, state, reason, live = step(record, action, reason, too_old)
    n = (record["events"] if record else 0) + (1 if kind else 0)
    if record is None:
        db.execute(
            "INSERT INTO followups (site, device, open_seq, opened_ms, state, reason, live, events, created_ms,"
            " updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, opened, state, reason, int(live), n, now_ms, now_ms),
        )
    elif (record["state"], record["reason"], bool(record["live"]), record["events"]) != (state, reason, live, n):
        db.execute(
            "UPDATE followups SET opened_ms = ?, state = ?, reason = ?, live = ?, events = ?, updated_ms = ?"
            " WHERE site = ? AND device = ? AND open_seq = ?",
            (opened, state, reason, int(live), n, now_ms, *key),
        )
    if kind is None:
        return None
    match = transaction_of(db, *key) if kind == FOLLOWUP else None
    body = payload(kind, poll, key, n, reason, history, match, now_ms)
    _issue(db, key, kind, body, config, now_ms)
    return body


def _issue(db, key, kind, body, config, now_ms):
    text = json.dumps(body, sort_keys=True, ensure_ascii=False)
    (new_id,) = db.query_one(
        "INSERT INTO followup_events (event_id, site, device, open_seq, kind, payload, created_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (body["id"], *key, kind, text, now_ms),
    ).values()
    for name, hook in sorted(config["webhooks"].items()):
        if hook.get("offices") is not None and key[0] not in hook["offices"]:
            continue
        db.execute(
            "INSERT INTO followup_outbox (event_id, channel, payload, created_ms, attempts, next_ms)"
            " VALUES (?, ?, ?, ?, 0, ?)",
            (new_id, name, text, now_ms, now_ms),
        )


# ---- delivery (gateway/alertsend.py's outbox pass and webhook) --------------------------------


OUTBOX = outboxtable.OutboxTable("followup_outbox")  # what alertsend.deliver_outbox works
outbox_pending = OUTBOX.pending


def env_key_name(name):
    return "RATING_FOLLOWUPS_KEY_" + name.upper().replace("-", "_")


def webhook_secrets(name, hook):
    """{"webhook_key": ...} of an integration: its secrets file, else the environment."""
    secrets = alertsend.read_secrets(hook.get("secrets"))
    if not secrets.get("webhook_key") and os.environ.get(env_key_name(name)):
        secrets = {"webhook_key": os.environ[env_key_name(name)]}
    return secrets


def deliver(db, history, now_ms, limit=50):
    """One pass over the follow-up outbox: (delivered, failed)."""
    hooks = config_of(history, now_ms)["webhooks"]
    secrets = {}  # read once a pass per integration

    def route(channel):
        hook = hooks.get(channel)
        if not hook:
            raise alertsend.SecretsError("the site file has no [followups.webhooks.%s] table now" % channel)
        if channel not in secrets:
            secrets[channel] = webhook_secrets(channel, hook)
        return alertsend.send_webhook, hook, secrets[channel]

    return alertsend.deliver_outbox(db, OUTBOX, route, now_ms, limit, "follow-up webhook")


# ---- reading (the API, the CLI) ----------------------------------------------------------------


def feed(db, after_id, sites, limit):
    """Events after the event `after_id` in issue order, of the offices `sites` (None: all):
    (payload dicts, the id of the last one or after_id)."""
    sql, params = "SELECT id, payload FROM followup_events WHERE id > ?", [int(after_id)]
    if sites is not None:
        sites = sorted(sites)
        if not sites:
            return [], after_id
        sql += " AND site IN (%s)" % ", ".join("?" * len(sites))
        params += sites
    rows = db.query(sql + " ORDER BY id LIMIT %d" % int(limit), tuple(params))
    return [json.loads(r["payload"]) for r in rows], (rows[-1]["id"] if rows else after_id)


def listing(db, state=None, sites=None, limit=100):
    """Records newest first (state: one of STATES or None)."""
    sql, params = "SELECT * FROM followups WHERE 1 = 1", []
    if state is not None:
        sql += " AND state = ?"
        params.append(state)
    if sites is not None:
        sites = sorted(sites)
        sql += " AND site IN (%s)" % ", ".join("?" * len(sites)) if sites else " AND 1 = 0"
        params += sites
    return db.query(sql + " ORDER BY opened_ms DESC, site, device, open_seq DESC LIMIT %d" % int(limit), tuple(params))


def status(db):
    """Counts per state, events issued per kind, the outbox per integration."""
    states = {s: 0 for s in STATES}
    for r in db.query("SELECT state, COUNT(*) AS n FROM followups GROUP BY state"):
        states[r["state"]] = r["n"]
    kinds = {FOLLOWUP: 0, RETRACTION: 0}
    for r in db.query("SELECT kind, COUNT(*) AS n FROM followup_events GROUP BY kind"):
        kinds[r["kind"]] = r["n"]
    channels = db.query(
        "SELECT channel, COUNT(*) AS n, SUM(CASE WHEN delivered_ms IS NULL THEN 1 ELSE 0 END) AS pending,"
        " MIN(CASE WHEN delivered_ms IS NULL THEN created_ms END) AS oldest_ms,"
        " MAX(CASE WHEN delivered_ms IS NULL THEN last_error END) AS last_error"
        " FROM followup_outbox GROUP BY channel ORDER BY channel"
    )
    return {"records": states, "events": kinds, "webhooks": channels}


def delivered_ids(db, channel):
    """The event ids delivered to an integration, in delivery order (tests, `status`)."""
    return [
        json.loads(r["payload"])["id"]
        for r in db.query(
            "SELECT payload FROM followup_outbox WHERE channel = ? AND delivered_ms IS NOT NULL ORDER BY delivered_ms, id",
            (channel,),
        )
    ]
