"""POS transactions (sales) and their matches to polls: the `transactions`, `tx_matches` and
`tx_secrets` tables (migration 045), which only this module reads or writes. docs/transactions.md.

Intake (three doors, one rule: stored once per (site, tx_id), the first arrival wins):
- MQTT `<root>/<site>/transactions` (gateway/ingest.py calls `store_many` inside its batch
  transaction, so the PUBACK follows the commit like an event's);
- `rating transactions import FILE.csv` (`import_file`: all lines or nothing);
- `POST /api/v1/transactions` (console/api.py calls `intake`).

A loyalty-card reference is kept pseudonymous: what looks like a raw card number (digits,
spaces and dashes only, 8 or more digits) is replaced by `h:` + HMAC-SHA256 under a
deployment secret made here (`tx_secrets`), so the same card gives the same reference and the
number itself is never stored. References are wiped (set NULL) once older than the site
file's `[deployment] loyalty_days` (`purge_loyalty`, run by the gateway's worker); listings
never show them, only `match_of` hands them to the CRM follow-ups.

Matching (`rematch`, the rules of gateway/txmatch.py) is kept in `tx_matches` per office and
till as polls are derived (gateway/derive.py calls `after_derive`) and as sales arrive, from
the earliest time touched onwards; `rating rebuild` clears it (`clear_matches`) and the
derivation of every panel fills it again.
"""

import hashlib
import hmac
import json
import os
import re
import secrets
import weakref
from typing import Any

from gateway import csvtext, txmatch
from gateway import site as site_mod
from gateway.i18n import _
from protocol import ProtocolError, messages

TILL_LOCKS = 0x52415403  # advisory lock namespace of a till's matching (gateway.db.lock_names)
RULES = txmatch.MatchRules()
DEFAULT_LOYALTY_DAYS = 90
_CARD_NUMBER = re.compile(r"^[0-9][0-9 -]*[0-9]$")


class TransactionError(ValueError):
    """A sale that cannot be taken; str() is one line for the sender."""


# ---- intake ---------------------------------------------------------------------------------


def check(site: str, tx: dict[str, Any]) -> dict[str, Any]:
    """A sale as the POS gave it (dict: id, till, t, loyalty?) -> the checked dict, or
    TransactionError naming the field. `t` must be Unix epoch ms."""
    try:
        if not site_mod.is_id(site):
            raise ProtocolError("site", "%r is not a valid id (%s)" % (site, site_mod.ID_RULE))
        out = messages.decode_transaction(messages.encode_transaction(dict(tx, v=messages.VERSION)))
    except ProtocolError as exc:
        raise TransactionError(str(exc)) from None
    return out


def _secret(db, now_ms):
    row = db.query_one("SELECT secret FROM tx_secrets WHERE name = ?", ("loyalty",))
    if row is not None:
        return row["secret"]
    db.execute(
        "INSERT INTO tx_secrets (name, secret, created_ms) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        ("loyalty", secrets.token_hex(32), now_ms),
    )
    return db.scalar("SELECT secret FROM tx_secrets WHERE name = ?", ("loyalty",))


def looks_like_card_number(value):
    """Digits (with spaces or dashes between), at least 8 of them: a raw card number."""
    return bool(_CARD_NUMBER.match(value)) and sum(ch.isdigit() for ch in value) >= 8


def pseudonym(secret, value):
    """What is stored for a loyalty value: a raw card number becomes `h:` + 32 hex digits of
    HMAC-SHA256(secret, digits) (the same card, the same reference in every office); anything
    else is already the POS's pseudonymous reference and is kept as sent."""
    if value is None or not looks_like_card_number(value):
        return value
    digits = "".join(ch for ch in value if ch.isdigit())
    return "h:" + hmac.new(secret.encode(), digits.encode(), hashlib.sha256).hexdigest()[:32]


def store_many(db, rows: list[tuple[str, dict[str, Any]]], source: str, now_ms: int, rematch_after: bool = True) -> int:
    """Store checked sales [(site, tx dict)] inside the caller's transaction; returns how many
    were new (a repeated (site, id) changes nothing). Their tills are matched again."""
    secret = None
    new = 0
    touched = {}
    for site, tx in rows:
        loyalty = tx.get("loyalty")
        if loyalty is not None and looks_like_card_number(loyalty):
            secret = secret or _secret(db, now_ms)
            loyalty = pseudonym(secret, loyalty)
        n = db.execute(
            "INSERT INTO transactions (site, tx_id, till, at_ms, loyalty, source, received_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, tx_id) DO NOTHING",
            (site, tx["id"], tx["till"], tx["t"], loyalty, source, now_ms),
        )
        if n:
            new += 1
            key = (site, tx["till"])
            touched[key] = min(touched.get(key, tx["t"]), tx["t"])
    if rematch_after and touched:
        history = _settings(db)
        for (site, till), at in sorted(touched.items()):
            rematch(db, site, till, history, at - reach(history)[1])
    return new


# The settings history, read once per revision and database (ingest stores sales batch by batch).
_HISTORY = weakref.WeakKeyDictionary()


def _settings(db):
    rev = site_mod.revision(db)
    cached = _HISTORY.get(db)
    if cached is None or cached[0] != rev:
        cached = _HISTORY[db] = (rev, site_mod.load(db))
    return cached[1]


def intake(db, site: str, tx: dict[str, Any], source: str, now_ms: int) -> tuple[dict[str, Any], bool]:
    """One sale (HTTP): checked, stored and matched in one transaction. Returns (checked sale,
    True when new / False when already stored)."""
    checked = check(site, tx)
    with db.transaction():
        new = store_many(db, [(site, checked)], source, now_ms)
    return checked, bool(new)


# ---- CSV import -----------------------------------------------------------------------------

CSV_REQUIRED = ("site", "till", "time", "id")
CSV_OPTIONAL = ("loyalty",)


class CsvError(csvtext.ImportProblems):
    """A sales file with bad lines (gateway/csvtext.ImportProblems)."""


def _csv_header(header):
    errors = []
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = [c for c in header if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if missing:
        errors.append(_("line 1: missing column(s) %s") % ", ".join(missing))
    if unknown:
        errors.append(
            _("line 1: unknown column(s) %(unknown)s (known: %(known)s)")
            % {"unknown": ", ".join(unknown), "known": ", ".join(CSV_REQUIRED + CSV_OPTIONAL)}
        )
    return errors


def _csv_row(row, offices, tz_of):
    from gateway import counts

    if None in row:
        return None, [_("more values than columns")]
    site = (row.get("site") or "").strip()
    problems = []
    if offices is not None and site_mod.is_id(site) and site not in offices:
        problems.append(
            "site: "
            + _("no office %(site)r in the settings; the offices are: %(known)s")
            % {"site": site, "known": ", ".join(sorted(offices)) or "-"}
        )
    tz = tz_of(site) if tz_of and site_mod.is_id(site) else None
    try:
        at = counts._time(row.get("time") or "", tz)
    except ValueError as exc:
        problems.append("time: %s" % exc)
        at = None
    tx = {"id": (row.get("id") or "").strip(), "till": (row.get("till") or "").strip(), "t": at}
    loyalty = (row.get("loyalty") or "").strip()
    if loyalty:
        tx["loyalty"] = loyalty
    if at is not None:
        try:
            tx = check(site, tx)
        except TransactionError as exc:
            problems.append(_csv_problem(str(exc), tx, site))
    elif not site_mod.is_id(site):
        problems.append("site: " + _("%r is not a valid id (%s)") % (site, site_mod.ID_RULE))
    return (site, tx), problems


def _csv_problem(error, tx, site):
    """A sale's problem in the user's language (the protocol's checks speak English)."""
    field = error.partition(":")[0]
    if field == "id":
        return "id: " + _("must be the receipt number: 1-%(max)d characters without spaces, got %(got)r") % {
            "max": messages.MAX_TX_ID,
            "got": tx.get("id"),
        }
    if field == "till":
        return "till: " + _("%r is not a valid till id (%s); the POS must send the same id") % (
            tx.get("till"),
            site_mod.ID_RULE,
        )
    if field == "loyalty":
        return "loyalty: " + _("must be 1-%d characters without control characters") % messages.MAX_LOYALTY
    if field == "site":
        return "site: " + _("%r is not a valid id (%s)") % (site, site_mod.ID_RULE)
    if field == "t":
        return "time: " + _("must be a time from 2020 to 2100")
    return error


def parse_csv(text, source="transactions.csv", offices=None, tz_of=None):
    """CSV text -> [(site, checked sale)]; pure. Columns: site, till, time, id, loyalty
    (optional). offices: the office ids the settings know (None: not checked); tz_of(site):
    the timezone of a time without an offset (None: such a time is refused)."""
    reader = csvtext.dict_reader(text)
    errors = _csv_header(reader.fieldnames or [])
    if errors:
        raise CsvError(errors, source)
    rows, seen = [], {}
    for row in reader:
        line = reader.line_num
        if csvtext.blank(row):
            continue
        rec, problems = _csv_row(row, offices, tz_of)
        errors += [_("line %(line)d: %(problem)s") % {"line": line, "problem": p} for p in problems]
        if rec is None or problems:
            continue
        key = (rec[0], rec[1]["id"])
        if key in seen and seen[key][1] != rec[1]:
            errors.append(
                _("line %(line)d: sale %(id)s of %(site)s differs from line %(first)d")
                % {"line": line, "id": key[1], "site": key[0], "first": seen[key][0]}
            )
        seen.setdefault(key, (line, rec[1]))
        rows.append(rec)
    if errors:
        raise CsvError(errors, source)
    return rows


def import_file(db, path, now_ms, history):
    """Parse and store a transactions CSV in one transaction (all lines or none); returns
    (lines read, new sales). UnicodeDecodeError for a file that is not UTF-8."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    name = os.path.basename(path)
    offices = {key for _kind, key in history.keys("site")}
    rows = parse_csv(text, name, offices, lambda site: history.tz(site))
    with db.transaction():
        new = store_many(db, rows, "csv:" + name, now_ms)
    return len(rows), new


# ---- matching -------------------------------------------------------------------------------


def rules_at(history, t: int) -> txmatch.MatchRules:
    """The matching window in force at `t`: the site file's `[deployment] pos_before_minutes`
    and `pos_after_minutes` (docs/transactions.md), else the defaults (RULES)."""
    dep = history.deployment(t)
    before, after = dep.get("pos_before_minutes"), dep.get("pos_after_minutes")
    if before is None and after is None:
        return RULES
    return txmatch.MatchRules(
        RULES.before_ms if before is None else before * 60_000, RULES.skew_ms if after is None else after * 60_000
    )


def reach(history) -> tuple[int, int]:
    """(widest before, widest after) over every window the settings history ever had: how far
    back an incremental re-match must look."""
    before, after = RULES.before_ms, RULES.skew_ms
    for _f, _r, _e, raw in history.rows("deployment", site_mod.DEPLOYMENT_KEY):
        dep = _json(raw) if raw else {}
        before = max(before, (dep.get("pos_before_minutes") or 0) * 60_000)
        after = max(after, (dep.get("pos_after_minutes") or 0) * 60_000)
    return before, after


def rules_of(history, t: int) -> dict[str, int]:
    """The window in force at `t` as the reports show it: {"before_ms", "skew_ms"}."""
    r = rules_at(history, t)
    return {"before_ms": r.before_ms, "skew_ms": r.skew_ms}


def _panels_at(history, site, till):
    """The panels of `site` that stand (or stood) at `till`."""
    out = []
    for _kind, key in history.keys("panel"):
        psite, device = key.split("/", 1)
        if psite != site:
            continue
        tills = {txmatch.till_of(_json(raw), device) for _f, _r, _e, raw in history.rows("panel", key) if raw}
        if till in tills:
            out.append(device)
    return out


def _json(raw):
    return json.loads(raw)


def till_at(history, site, device, t):
    return txmatch.till_of(history.panel(site, device, t), device)


def _till_polls(db, history, site, till, since_ms):
    from gateway import derive

    polls = []
    for device in _panels_at(history, site, till):
        for p in derive.panel_polls_between(db, site, device, since_ms):
            if till_at(history, site, device, p["opened_ms"]) == till:
                polls.append({"device": device, "open_seq": p["open_seq"], "poll_ms": p["opened_ms"]})
    return polls


def rematch(db, site: str, till: str, history, since_ms: int | None = None) -> int:
    """Match one till again from since_ms (None: from the start) onwards, inside the caller's
    transaction. The matches of earlier polls stand (txmatch: rule 2 runs forwards)."""
    db.lock_names(TILL_LOCKS, ["%s/%s" % (site, till)])
    if since_ms is None:
        db.execute("DELETE FROM tx_matches WHERE site = ? AND till = ?", (site, till))
        taken = []
        sales = db.query("SELECT tx_id, at_ms FROM transactions WHERE site = ? AND till = ?", (site, till))
    else:
        before, skew = reach(history)
        db.execute("DELETE FROM tx_matches WHERE site = ? AND till = ? AND poll_ms >= ?", (site, till, since_ms))
        taken = [
            r["tx_id"]
            for r in db.query(
                "SELECT tx_id FROM tx_matches WHERE site = ? AND till = ? AND poll_ms >= ?",
                (site, till, since_ms - before - skew),
            )
        ]
        sales = db.query(
            "SELECT tx_id, at_ms FROM transactions WHERE site = ? AND till = ? AND at_ms >= ?",
            (site, till, since_ms - before),
        )
    polls = _till_polls(db, history, site, till, since_ms)
    pairs = txmatch.match(polls, sales, lambda t: rules_at(history, t), taken)
    # a poll still matched under the till its panel stood at before a settings change (derive
    # re-matches that panel once it sees the new revision): this till's match replaces it
    db.executemany(
        "DELETE FROM tx_matches WHERE site = ? AND device = ? AND open_seq = ?",
        [(site, p["device"], p["open_seq"]) for p, _s in pairs],
    )
    db.executemany(
        "INSERT INTO tx_matches (site, device, open_seq, till, poll_ms, tx_id, tx_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(site, p["device"], p["open_seq"], till, p["poll_ms"], s["tx_id"], s["at_ms"]) for p, s in pairs],
    )
    return len(pairs)


def after_derive(db, site, device, history, since_ms=None):
    """A panel's polls were (re)derived from since_ms (None: all of them, e.g. after a settings
    change): match its tills again. Inside the derivation's transaction."""
    if db.query_one("SELECT 1 AS x FROM transactions WHERE site = ? LIMIT 1", (site,)) is None:
        return  # no POS feed for this office (and so no matches): nothing to do
    tills = set()
    for _f, _r, _e, raw in history.rows("panel", "%s/%s" % (site, device)):
        if raw:
            tills.add(txmatch.till_of(_json(raw), device))
    tills.add(device)
    if since_ms is None:  # the panel may have left a till: its old matches go first
        db.execute("DELETE FROM tx_matches WHERE site = ? AND device = ?", (site, device))
    for till in sorted(tills):
        rematch(db, site, till, history, since_ms)


def sites_with_sales(db, sites):
    """The offices of `sites` with a POS feed (after_derive has matching to do only there)."""
    sites = sorted(set(sites))
    out = set()
    for i in range(0, len(sites), 200):
        part = sites[i : i + 200]
        # an index seek per office (EXISTS): a DISTINCT over the feed would read every sale
        rows = db.query(
            "WITH s (site) AS (VALUES %s) SELECT site FROM s"
            " WHERE EXISTS (SELECT 1 FROM transactions t WHERE t.site = s.site)" % ", ".join(["(?)"] * len(part)),
            tuple(part),
        )
        out.update(r["site"] for r in rows)
    return out


def clear_matches(db):
    """Every match (`rating rebuild`: the derivation of each panel matches again)."""
    db.execute("DELETE FROM tx_matches")


# ---- reads ----------------------------------------------------------------------------------


def match_of(db, site: str, device: str, open_seq: int) -> dict[str, Any] | None:
    """The sale a poll followed: {"tx_id", "at_ms", "till", "loyalty"} (loyalty None when the
    sale had none or it was purged), or None when the poll is not matched."""
    row = db.query_one(
        "SELECT m.tx_id, m.tx_ms, m.till, t.loyalty FROM tx_matches m JOIN transactions t"
        " ON t.site = m.site AND t.tx_id = m.tx_id WHERE m.site = ? AND m.device = ? AND m.open_seq = ?",
        (site, device, open_seq),
    )
    if row is None:
        return None
    return {"tx_id": row["tx_id"], "at_ms": row["tx_ms"], "till": row["till"], "loyalty": row["loyalty"]}


def count(db, site=None):
    if site is None:
        return db.scalar("SELECT COUNT(*) FROM transactions") or 0
    return db.scalar("SELECT COUNT(*) FROM transactions WHERE site = ?", (site,)) or 0


def _fed_through(db, site):
    """{till: latest sale time} of an office: the POS feed of a till covers the times before."""
    rows = db.query("SELECT till, MAX(at_ms) AS last FROM transactions WHERE site = ? GROUP BY till", (site,))
    return {r["till"]: r["last"] for r in rows}


def _sales(db, site, from_ms, to_ms):
    sql = (
        "SELECT t.tx_id, t.till, t.at_ms, m.device, m.open_seq FROM transactions t LEFT JOIN tx_matches m"
        " ON m.site = t.site AND m.tx_id = t.tx_id WHERE t.site = ?"
    )
    params = [site]
    if from_ms is not None:
        sql += " AND t.at_ms >= ?"
        params.append(from_ms)
    if to_ms is not None:
        sql += " AND t.at_ms < ?"
        params.append(to_ms)
    return db.query(sql + " ORDER BY t.at_ms, t.tx_id", tuple(params))


def _matched_polls(db, site, from_ms, to_ms):
    sql = "SELECT device, open_seq, tx_id FROM tx_matches WHERE site = ?"
    params = [site]
    if from_ms is not None:
        sql += " AND poll_ms >= ?"
        params.append(from_ms)
    if to_ms is not None:
        sql += " AND poll_ms < ?"
        params.append(to_ms)
    return {(r["device"], r["open_seq"]): r["tx_id"] for r in db.query(sql, tuple(params))}


def office_view(db, history, site, from_ms=None, to_ms=None):
    """An office's polls and sales over [from_ms, to_ms) as matching sees them:
    {"polls": [poll rows of panels at a till with a POS feed, each with "till", "tx_id" (None:
    unmatched) and "judged" (the feed covers its time)], "sales": [{"tx_id","till","at_ms",
    "device","open_seq","panel","employee"}]} where panel/employee are the matched poll's, or
    the till's panel and its rostered employee at the sale's time (sales at a till no panel
    stands at are left out)."""
    from gateway import derive

    fed = _fed_through(db, site)
    matched = _matched_polls(db, site, from_ms, to_ms)
    polls = []
    tills_of = {}
    for till in sorted(fed):
        for device in _panels_at(history, site, till):
            tills_of.setdefault(device, set()).add(till)
    for device in sorted(tills_of):
        for p in derive.panel_polls_between(db, site, device, from_ms, None if to_ms is None else to_ms - 1):
            till = till_at(history, site, device, p["opened_ms"])
            if till not in fed:
                continue
            row = dict(p)
            row["till"] = till
            row["tx_id"] = matched.get((device, p["open_seq"]))
            skew = rules_at(history, p["opened_ms"]).skew_ms
            row["judged"] = row["tx_id"] is not None or fed[till] > p["opened_ms"] + skew
            polls.append(row)
    sales = []
    for s in _sales(db, site, from_ms, to_ms):
        row = dict(s)
        panel = s["device"] or _first_panel(history, site, s["till"], s["at_ms"])
        if panel is None:  # a till no panel stands at: no poll could follow its sales
            continue
        row["panel"] = panel
        row["employee"] = history.employee_at(site, panel, s["at_ms"]) if panel else None
        sales.append(row)
    return {"polls": polls, "sales": sales}


def _first_panel(history, site, till, t):
    for device in sorted(_panels_at(history, site, till)):
        if till_at(history, site, device, t) == till:
            return device
    return None


def unmatched(db, history, site, from_ms=None, to_ms=None):
    """(polls with no sale, sales with no poll) of an office over [from_ms, to_ms): only polls
    whose till's POS feed covers their time are judged."""
    view = office_view(db, history, site, from_ms, to_ms)
    polls = [p for p in view["polls"] if p["tx_id"] is None and p["judged"]]
    sales = [s for s in view["sales"] if s["device"] is None]
    return polls, sales


def no_sale_ids(db, history, sites, from_ms=None, to_ms=None):
    """The ids "site/device/seq" of the polls with no sale (gateway.doubt's `no_sale` input)."""
    out = set()
    for site in sites:
        polls, _sales = unmatched(db, history, site, from_ms, to_ms)
        out.update("%s/%s/%s" % (site, p["device"], p["open_seq"]) for p in polls)
    return out


def conversion_rows(db, history, site, by, from_ms=None, to_ms=None):
    """Exact conversion from the matches, one row per panel (by="device") or employee
    (by="employee"): {"key", "transactions", "matched", "polls", "unmatched_polls",
    "unmatched_sales"} where matched / transactions is the exact conversion."""
    view = office_view(db, history, site, from_ms, to_ms)
    rows = {}

    def row(key):
        return rows.setdefault(
            key,
            {
                "site": site,
                "key": key,
                "transactions": 0,
                "matched": 0,
                "polls": 0,
                "unmatched_polls": 0,
                "unmatched_sales": 0,
            },
        )

    for p in view["polls"]:
        r = row(p["device"] if by == "device" else (p.get("employee") or ""))
        r["polls"] += 1
        if p["tx_id"] is not None:
            r["matched"] += 1
        elif p["judged"]:
            r["unmatched_polls"] += 1
    for s in view["sales"]:
        r = row((s["panel"] or "") if by == "device" else (s["employee"] or ""))
        r["transactions"] += 1
        if s["device"] is None:
            r["unmatched_sales"] += 1
    return [rows[k] for k in sorted(rows)]


# ---- retention ------------------------------------------------------------------------------


def loyalty_days(history, now_ms):
    """How long loyalty references are kept: the site file's `[deployment] loyalty_days`."""
    return history.deployment(now_ms).get("loyalty_days") or DEFAULT_LOYALTY_DAYS


def purge_loyalty(db, before_ms: int, limit: int = 1000) -> int:
    """Wipe the loyalty references of sales made before `before_ms` (at most `limit` rows);
    returns how many were wiped."""
    rows = db.query(
        "SELECT site, tx_id FROM transactions WHERE loyalty IS NOT NULL AND at_ms < ? LIMIT %d" % int(limit),
        (before_ms,),
    )
    db.executemany(
        "UPDATE transactions SET loyalty = NULL WHERE site = ? AND tx_id = ?", [(r["site"], r["tx_id"]) for r in rows]
    )
    return len(rows)


def loyalty_kept(db):
    """How many sales still carry a loyalty reference (for status and tests)."""
    return db.scalar("SELECT COUNT(*) FROM transactions WHERE loyalty IS NOT NULL") or 0
