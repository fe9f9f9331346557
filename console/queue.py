"""The expert's review queue: what `rating review list` samples, with filters, status and
counts. The core (`Filter.parse`, `build`) is pure; `load` reads through gateway.derive and
gateway.review.

The sample is review.sample's: every No answer, every force-majeure report, and the share
`deployment.review_share` of the other polls (a stable draw per poll id). Dates are each
office's own calendar days (as `rating review list --from/--to` without --site). Every poll
is scored for doubt (gateway/doubt.py) and the doubtful ones join the sample (stratum `doubt`,
as `rating review list --risk`); each row carries `doubt` (score) and `doubt_reasons` (codes).
Pending items come first, then the riskiest (order `risk`, the default) or the oldest (`time`).
"""

import datetime as _dt

from gateway import derive, doubt, review, transactions

KINDS = ("no", "fm", "random", "doubt")
STATUSES = ("pending", "decided", "all")
ORDERS = ("risk", "time")
PAGE_SIZE = 50


class Filter:
    """What the queue shows; `errors` {field: message} for values that could not be read."""

    FIELDS = ("site", "employee", "kind", "status", "order", "from", "to", "page")

    def __init__(self, site=None, employee=None, kind=None, status="pending", start=None, end=None, page=1):
        self.site, self.employee, self.kind, self.status = site, employee, kind, status
        self.start, self.end, self.page = start, end, page
        self.order = "risk"
        self.errors = {}

    @classmethod
    def parse(cls, params, t=None):
        """From query parameters (a mapping of strings). `t(key)` translates the messages."""
        t = t or (lambda key: key)
        f = cls()
        f.site = (params.get("site") or "").strip() or None
        f.employee = (params.get("employee") or "").strip() or None
        kind = (params.get("kind") or "").strip() or None
        if kind is not None and kind not in KINDS:
            f.errors["kind"] = t("err_kind")
        else:
            f.kind = kind
        status = (params.get("status") or "pending").strip()
        if status not in STATUSES:
            f.errors["status"] = t("err_status")
        else:
            f.status = status
        order = (params.get("order") or "risk").strip()
        if order not in ORDERS:
            f.errors["order"] = t("err_order")
        else:
            f.order = order
        for name, attr in (("from", "start"), ("to", "end")):
            text = (params.get(name) or "").strip()
            if text:
                try:
                    setattr(f, attr, _dt.date.fromisoformat(text))
                except ValueError:
                    f.errors[name] = t("err_date")
        if f.start and f.end and f.end < f.start:
            f.errors["to"] = t("err_date_order")
        page = (params.get("page") or "1").strip()
        if not page.isdigit() or int(page) < 1:
            f.errors["page"] = t("err_page")
        else:
            f.page = int(page)
        return f

    def query(self, **change):
        """The filter as query parameters (for links), with `change` applied."""
        values = {
            "site": self.site,
            "employee": self.employee,
            "kind": self.kind,
            "status": self.status,
            "order": self.order if self.order != "risk" else None,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "page": self.page if self.page != 1 else None,
        }
        values.update(change)
        return {k: v for k, v in values.items() if v not in (None, "")}


def week_of(day):
    """(monday, sunday) of the ISO week containing `day`."""
    monday = day - _dt.timedelta(days=day.weekday())
    return monday, monday + _dt.timedelta(days=6)


def _ms(day, tz):
    return int(_dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def ident(stratum, row):
    seq = row["seq"] if stratum == "fm" else row["open_seq"]
    return review.format_id(row["site"], row["device"], seq)


def target_key(stratum, row):
    if stratum == "fm":
        return (review.FM, row["site"], row["device"], row["seq"])
    return (review.POLL, row["site"], row["device"], row["open_seq"])


def item_status(stratum, row, verdicts):
    """(decided?, verdict in force or None)."""
    v = verdicts.get(target_key(stratum, row))
    if v is None or v["verdict"] == review.REOPEN:
        return False, None
    return True, v["verdict"]


def build(sampled, verdicts, flt):
    """Pure: the sample [(stratum, light row)] with its verdicts -> (items, counts).

    items: dicts {stratum, row, id, kind ('poll'|'fm'), decided, verdict, at_ms} after the
    kind and status filters, pending first then by time. counts: {stratum: {pending, decided}}
    and 'total' over the kind-filtered sample (before the status filter)."""
    counts = {k: {"pending": 0, "decided": 0} for k in KINDS + ("total",)}
    items = []
    for stratum, row in sampled:
        if flt.kind and stratum != flt.kind:
            continue
        decided, verdict = item_status(stratum, row, verdicts)
        key = "decided" if decided else "pending"
        counts[stratum][key] += 1
        counts["total"][key] += 1
        if flt.status != "all" and key != flt.status:
            continue
        items.append(
            {
                "stratum": stratum,
                "row": row,
                "id": ident(stratum, row),
                "kind": "fm" if stratum == "fm" else "poll",
                "decided": decided,
                "verdict": verdict,
                "at_ms": row["start_ms"] if stratum == "fm" else row["opened_ms"],
            }
        )
    items.sort(key=lambda i: (i["decided"],) + order_key(i["stratum"], i["row"], flt.order))
    return items, counts


def order_key(stratum, row, order):
    """Sort key of an item: the riskiest first (ties and force-majeure reports in time order) or
    the oldest first."""
    at = row["start_ms"] if stratum == "fm" else row["opened_ms"]
    risk = -(row.get("doubt") or 0) if order == "risk" else 0
    return (risk, at, ident(stratum, row))


def ordered(sampled, order):
    """The sample [(stratum, row)] in the queue's order (without the pending-first split)."""
    return sorted(sampled, key=lambda sr: order_key(sr[0], sr[1], order))


def page(items, number, size=PAGE_SIZE):
    """(the items of page `number`, pages)."""
    pages = max(1, (len(items) + size - 1) // size)
    number = min(max(1, number), pages)
    return items[(number - 1) * size : number * size], pages


def bounds(flt, history, sites):
    """{site: (from_ms, to_ms)} of the filter's dates in each office's timezone."""
    out = {}
    for s in sites:
        tz = history.tz(s)
        out[s] = (
            _ms(flt.start, tz) if flt.start else None,
            _ms(flt.end + _dt.timedelta(days=1), tz) if flt.end else None,
        )
    return out


def sample_of(db, history, sites, flt, share, seed=0):
    """The sample [(stratum, light row)] in time order for the offices `sites` (a set; None:
    every office the history knows), the filter's office, employee and dates, before kind and
    status (those need no new read). Reads light rows only (derive.index)."""
    if sites is None:
        sites = {k for _, k in history.keys("site")}
    if flt.site:
        sites = {flt.site} & set(sites)
    sites = sorted(sites)
    if not sites:
        return []
    per_site = bounds(flt, history, sites)
    # one query for all offices, from the earliest office's start to the latest one's end
    starts = [b[0] for b in per_site.values()]
    ends = [b[1] for b in per_site.values()]
    lo = None if None in starts else min(starts)
    hi = None if None in ends else max(ends)
    polls, fms = derive.index(db, None if len(sites) == len(history.keys("site")) else sites, lo, hi, flt.employee)

    def inside(site, at):
        b = per_site.get(site)
        if b is None:
            return False
        return (b[0] is None or at >= b[0]) and (b[1] is None or at < b[1])

    polls = [p for p in polls if inside(p["site"], p["opened_ms"])]
    fms = [f for f in fms if inside(f["site"], f["start_ms"])]
    near = doubt.DoubtSettings.near_ms
    presses = derive.unsolicited_presses(
        db, sites, None if lo is None else lo - near, None if hi is None else hi + near
    )
    # the POS matches: polls opened with no sale at their till (gateway/transactions.py)
    no_sale = transactions.no_sale_ids(db, history, sorted({p["site"] for p in polls}), lo, hi) if polls else set()
    return with_doubt(review.sample(polls, fms, share, seed), polls, presses, no_sale)


class _Scores(dict):
    """{poll id: Doubt} of the doubtful polls; any other poll has none (NO_DOUBT)."""

    def __missing__(self, key):
        return doubt.NO_DOUBT


def with_doubt(sampled, polls, presses, no_sale=()):
    """Pure: the sample with every doubtful poll added (stratum 'doubt') and each row's doubt
    score and reasons (`doubt`, `doubt_reasons`; 0 and () for force-majeure reports).

    Only the polls with a sign go on past scoring (doubt.doubtful, in the range's order):
    review.risk_first adds no other poll, and a week of the whole chain holds tens of
    thousands of polls with none (bench/console.py)."""
    found = doubt.doubtful(polls, presses, no_sale=no_sale)
    position = {id(p): i for i, p in enumerate(polls)} if found else {}
    marked = sorted((p for p, _d in found.values()), key=lambda p: position[id(p)])
    scores = _Scores((ident, d) for ident, (_p, d) in found.items())
    out = []
    for stratum, row in review.risk_first(sampled, marked, scores):
        d = scores.get(ident(stratum, row)) if stratum != "fm" else None
        out.append((stratum, dict(row, doubt=d.score if d else 0, doubt_reasons=d.reasons if d else ())))
    return out


def load(db, sampled, flt):
    """(items, counts) of the sample for the filter, with the verdicts of its items
    (review.latest_for)."""
    if flt.kind:
        sampled = [(s, r) for s, r in sampled if s == flt.kind]
    verdicts = review.latest_for(db, [target_key(s, r) for s, r in sampled])
    return build(sampled, verdicts, flt)


def neighbours(db, sampled, key, chunk=100):
    """(the item before `key` in time order, the next pending item after it, wrapping round)
    as 'poll:site/device/seq' keys. Reads verdicts a chunk at a time, so a long week costs a
    few small reads when the next pending item is near."""
    keys = [("fm" if s == "fm" else "poll") + ":" + ident(s, r) for s, r in sampled]
    here = keys.index(key) if key in keys else -1
    before = keys[here - 1] if here > 0 else None
    order = list(range(here + 1, len(sampled))) + list(range(0, max(here, 0)))
    for i in range(0, len(order), chunk):
        part = [sampled[j] for j in order[i : i + chunk]]
        verdicts = review.latest_for(db, [target_key(s, r) for s, r in part])
        for j, (s, r) in zip(order[i : i + chunk], part, strict=True):
            if not item_status(s, r, verdicts)[0]:
                return before, keys[j]
    return before, None
