"""Expert review: the sample to check, verdicts on polls and force-majeure reports, audit trail.

Verdicts are append-only rows in `verdicts` (who, when, what, why); the latest per target wins
and every earlier one stays as the audit trail. They refer to the stable identity
"site/device/seq" (a poll's opening press, a report's first long press), so they survive
`rating rebuild`.

- poll: `invalid` (excluded from every KPI) or `valid` (reverts an earlier invalid);
- fm:   `confirm` (optionally with a corrected period from/to) or `reject`. Only confirmed
        reports exclude anything, and only No/silent polls of that panel, from DI-staff.
- both: `reopen` puts the target back to pending review (what `undo` records when the verdict
        it takes back was the first one): the trail is appended to, never edited.
"""

import hashlib

from gateway.db import panel_filters as db_panel_filters
from gateway.i18n import _

POLL, FM = "poll", "fm"
REOPEN = "reopen"
POLL_VERDICTS = ("invalid", "valid", REOPEN)
FM_VERDICTS = ("confirm", "reject", REOPEN)
MAX_REASON = 500


class ReviewError(ValueError):
    """A verdict the store cannot take; the message says what to do."""


def parse_id(text):
    """'site/device/seq' -> (site, device, seq)."""
    parts = (text or "").strip().split("/")
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2].isdigit():
        raise ReviewError(
            _("%r is not an id like msk-tverskaya/desk-1/42 (site/device/seq); `rating review list` shows them")
            % (text,)
        )
    return parts[0], parts[1], int(parts[2])


def format_id(site, device, seq):
    return "%s/%s/%d" % (site, device, seq)


def _exists(db, target, site, device, seq):
    from gateway import derive

    exists = derive.poll_exists if target == POLL else derive.report_exists
    return exists(db, site, device, seq)


def record(db, target, ident, verdict, reason, by, now_ms, from_ms=None, to_ms=None):
    """Append a verdict; returns the stored row as a dict. Raises ReviewError on bad input."""
    site, device, seq, reason, by = check(target, ident, verdict, reason, by, from_ms, to_ms)
    if not _exists(db, target, site, device, seq):
        if target == POLL:
            said = _("no poll %s; `rating review list` shows the ids (after `rating rebuild` if the site file changed)")
        else:
            said = _(
                "no force-majeure report %s; `rating review list` shows the ids (after `rating rebuild` if the "
                "site file changed)"
            )
        raise ReviewError(said % ident)
    row = {
        "target": target,
        "site": site,
        "device": device,
        "seq": seq,
        "verdict": verdict,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "reason": reason,
        "by_name": by,
        "at_ms": now_ms,
    }
    cols = list(row)
    from gateway import derive

    with db.transaction():
        db.execute(
            "INSERT INTO verdicts (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))),
            tuple(row[c] for c in cols),
        )
        # what the panel's polls count for has changed: its rollup rows of the days concerned
        derive.refresh_rollup(db, site, device, *_affected(db, target, site, device, seq))
    return row


def _affected(db, target, site, device, seq):
    """(first, last) time whose polls a verdict on this target may change what they count for:
    a poll's opening; a report's period as reported and every period a verdict gave it."""
    from gateway import derive

    if target == POLL:
        poll = derive.poll(db, site, device, seq)
        return (poll["opened_ms"], poll["opened_ms"]) if poll else (None, None)
    fm = derive.report(db, site, device, seq)
    times = [fm["start_ms"], fm["end_ms"]] if fm else []
    for row in history(db, format_id(site, device, seq)):
        if row["target"] == FM:
            times += [t for t in (row["from_ms"], row["to_ms"]) if t is not None]
    return (min(times), max(times)) if times else (None, None)


def check(target, ident, verdict, reason, by, from_ms=None, to_ms=None):
    """A verdict's input checked without the database: (site, device, seq, reason, by), or
    ReviewError saying what to fix."""
    site, device, seq = parse_id(ident)
    allowed = POLL_VERDICTS if target == POLL else FM_VERDICTS
    if verdict not in allowed:
        raise ReviewError(_("verdict must be one of %s, got %r") % (", ".join(allowed), verdict))
    reason = (reason or "").strip()
    if verdict in ("invalid", "reject") and not reason:
        if target == POLL:
            said = _("--reason is required to mark a poll invalid (%s): say why (it is kept in the audit trail)")
        else:
            said = _("--reason is required to reject a report (%s): say why (it is kept in the audit trail)")
        raise ReviewError(said % ident)
    if len(reason) > MAX_REASON:
        raise ReviewError(
            _("--reason is %(n)d characters; keep it under %(max)d") % {"n": len(reason), "max": MAX_REASON}
        )
    by = (by or "").strip()
    if not by:
        raise ReviewError(_("--expert: say who gives the verdict"))
    if (from_ms is not None or to_ms is not None) and (target != FM or verdict != "confirm"):
        raise ReviewError(_("--from/--to only go with `rating review fm ID --confirm`"))
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise ReviewError(_("--to must be after --from"))
    return site, device, seq, reason, by


def unchanged(db, target, ident, verdict, from_ms=None, to_ms=None):
    """Whether the verdict in force on `ident` already says `verdict` with this period: then a
    new one would only lengthen the trail (`rating review` records nothing)."""
    rows = [r for r in history(db, ident) if r["target"] == target]
    if not rows:
        return False
    last = rows[-1]
    return last["verdict"] == verdict and last["from_ms"] == from_ms and last["to_ms"] == to_ms


def history(db, ident):
    """Every verdict on this id (poll and/or report), oldest first."""
    site, device, seq = parse_id(ident)
    # naming both targets lets the index verdicts_target (target, site, device, seq) answer
    return db.query(
        "SELECT * FROM verdicts WHERE target IN (?, ?) AND site = ? AND device = ? AND seq = ? ORDER BY id",
        (POLL, FM, site, device, seq),
    )


def _in_force(rows):
    """{(target, site, device, seq): verdict row} of verdict rows in id order: the last one wins."""
    return {(row["target"], row["site"], row["device"], row["seq"]): row for row in rows}


def latest(db):
    """{(target, site, device, seq): verdict row} - the verdict in force for each target."""
    return _in_force(db.query("SELECT * FROM verdicts ORDER BY id"))


def latest_of_panel(db, site, device):
    """Like latest(), for one panel's polls and reports (the index verdicts_target answers it)."""
    return _in_force(
        db.query(
            "SELECT * FROM verdicts WHERE target IN (?, ?) AND site = ? AND device = ? ORDER BY id",
            (POLL, FM, site, device),
        )
    )


def latest_of_panels(db, panels):
    """latest_of_panel() of several panels in one query (per 200 panels): {(site, device):
    {(target, site, device, seq): verdict row}}; a panel without verdicts: no entry."""
    out = {}
    for where, params in db_panel_filters(panels):
        rows = db.query("SELECT * FROM verdicts WHERE target IN (?, ?) AND %s ORDER BY id" % where, (POLL, FM, *params))
        for key, row in _in_force(rows).items():
            out.setdefault((key[1], key[2]), {})[key] = row
    return out


def any_fm_verdict(db, site, device, seqs):
    """Whether any of the panel's reports `seqs` has a verdict."""
    seqs = sorted(set(seqs))
    return (
        db.query_one(
            "SELECT 1 AS x FROM verdicts WHERE target = ? AND site = ? AND device = ? AND seq IN (%s) LIMIT 1"
            % ", ".join("?" * len(seqs)),
            (FM, site, device, *seqs),
        )
        is not None
    )


def latest_for(db, keys):
    """Like latest(), for the targets `keys` [(target, site, device, seq)] only: one query per
    panel over the seq range the keys span (a page of the review queue reads a few hundred
    verdicts, not the whole trail)."""
    spans = {}
    for target, site, device, seq in keys:
        lo, hi, targets = spans.get((site, device), (seq, seq, set()))
        targets.add(target)
        spans[(site, device)] = (min(lo, seq), max(hi, seq), targets)
    wanted = set(keys)
    out = {}
    for (site, device), (lo, hi, targets) in sorted(spans.items()):
        targets = sorted(targets)
        # the index verdicts_target (target, site, device, seq) answers this range directly
        for row in db.query(
            "SELECT * FROM verdicts WHERE target IN (%s) AND site = ? AND device = ? AND seq >= ? AND seq <= ?"
            " ORDER BY id" % ", ".join("?" * len(targets)),
            (*targets, site, device, lo, hi),
        ):
            key = (row["target"], row["site"], row["device"], row["seq"])
            if key in wanted:
                out[key] = row
    return out


def undo(db, target, ident, by, now_ms):
    """Take back the verdict in force on `ident`: record again the one before it (with its
    period), or `reopen` when it was the first. Returns the new row; ReviewError when there is
    nothing to undo. An undo is itself a verdict in the trail."""
    site, device, seq = parse_id(ident)
    rows = [r for r in history(db, ident) if r["target"] == target]
    if not rows or rows[-1]["verdict"] == REOPEN and len(rows) == 1:
        raise ReviewError("%s has no verdict to undo" % ident)
    last = rows[-1]
    # the verdict in force before `last`: walk back over earlier undo pairs
    before = rows[-2] if len(rows) >= 2 else None
    with db.transaction():
        if before is None or before["verdict"] == REOPEN:
            return record(db, target, ident, REOPEN, "undo of verdict #%d" % last["id"], by, now_ms)
        return record(
            db,
            target,
            ident,
            before["verdict"],
            ("undo of verdict #%d; again: %s" % (last["id"], before["reason"]))[:MAX_REASON],
            by,
            now_ms,
            before["from_ms"],
            before["to_ms"],
        )


CLOCK_AHEAD_MS = 86400000  # how far a panel's clock may run ahead of the server's


def invalid_poll_ids_of(db, sites=None, polls_since_ms=None):
    """The ids "site/device/seq" of the polls whose verdict in force is invalid, of these offices
    only (None: every office); reads only their verdicts (the verdicts_target index). With
    polls_since_ms, only polls opened then or later are asked about: a verdict comes after its
    poll, so the verdicts recorded before (less a day for panel clocks running ahead) are skipped."""
    sql, params = "SELECT * FROM verdicts WHERE target = ?", [POLL]
    if polls_since_ms is not None:
        sql += " AND at_ms >= ?"
        params.append(polls_since_ms - CLOCK_AHEAD_MS)
    if sites is not None:
        sites = sorted(set(sites))
        if not sites:
            return set()
        sql += " AND site IN (%s)" % ", ".join("?" * len(sites))
        params += sites
    return invalid_poll_ids(_in_force(db.query(sql + " ORDER BY id", tuple(params))))


def invalid_poll_ids(verdicts):
    return {format_id(s, d, q) for (t, s, d, q), row in verdicts.items() if t == POLL and row["verdict"] == "invalid"}


def fm_status(verdicts, site, device, seq):
    """'confirmed' | 'rejected' | 'pending'."""
    row = verdicts.get((FM, site, device, seq))
    if row is None or row["verdict"] == REOPEN:
        return "pending"
    return "confirmed" if row["verdict"] == "confirm" else "rejected"


def confirmed_periods(fm_rows, verdicts):
    """Periods (dicts start, end, site, device) of confirmed reports, with the expert's
    corrected from/to where given. They cover polls of the same panel only."""
    out = []
    for fm in fm_rows:
        row = verdicts.get((FM, fm["site"], fm["device"], fm["seq"]))
        if row is None or row["verdict"] != "confirm":
            continue
        start = row["from_ms"] if row["from_ms"] is not None else fm["start_ms"]
        end = row["to_ms"] if row["to_ms"] is not None else fm["end_ms"]
        out.append({"start": start, "end": end, "site": fm["site"], "device": fm["device"]})
    return out


def _draw(seed, ident):
    """A stable pseudo-random number in [0, 1) per (seed, id): the sample does not reshuffle
    when new polls arrive."""
    h = hashlib.sha256(("%s:%s" % (seed, ident)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def sample(polls, fms, share, seed=0):
    """Stratified sample: every No answer, every force-majeure report, and `share` of the other
    polls. Returns [(stratum, row)] sorted by time; stratum is 'no' | 'fm' | 'random'."""
    if not 0.0 <= share <= 1.0:
        raise ReviewError(_("--share must be between 0 and 1, got %s") % share)
    out = []
    for p in polls:
        ident = format_id(p["site"], p["device"], p["open_seq"])
        if p["answer"] == "no":
            out.append(("no", p["opened_ms"], ident, p))
        elif _draw(seed, ident) < share:
            out.append(("random", p["opened_ms"], ident, p))
    for f in fms:
        out.append(("fm", f["start_ms"], format_id(f["site"], f["device"], f["seq"]), f))
    out.sort(key=lambda x: (x[1], x[2]))
    return [(stratum, row) for stratum, _, _, row in out]


def risk_first(items, polls, doubts):
    """The sample `items` ([(stratum, row)] from `sample`) with every doubtful poll added
    (stratum 'doubt': a doubt score above 0, gateway/doubt.py) and the polls riskiest first;
    force-majeure reports after the polls, in time order. `doubts`: {poll id: Doubt}."""
    seen = {format_id(r["site"], r["device"], r["open_seq"]) for s, r in items if s != "fm"}
    out = list(items)
    for p in polls:
        ident = format_id(p["site"], p["device"], p["open_seq"])
        if ident not in seen and doubts[ident].score > 0:
            out.append(("doubt", p))

    def key(item):
        stratum, row = item
        if stratum == "fm":
            return (1, 0, row["start_ms"])
        return (0, -doubts[format_id(row["site"], row["device"], row["open_seq"])].score, row["opened_ms"])

    return sorted(out, key=key)


def verdicts_after(db, after_id, limit=1000):
    """Verdict rows recorded after the row `after_id`, in id order (at most `limit`): what an
    incremental reader (gateway/followups.py) has not seen yet."""
    return db.query("SELECT * FROM verdicts WHERE id > ? ORDER BY id LIMIT %d" % int(limit), (after_id,))


def last_verdict_id(db):
    """The id of the newest verdict row (0: none yet)."""
    return db.scalar("SELECT MAX(id) FROM verdicts") or 0
