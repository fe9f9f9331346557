"""The JSON API under /api/v1: the pages' permissions, for integrations (bearer tokens) and
scripts (the session cookie + X-CSRF-Token). OpenAPI at /api/v1/openapi.json."""

import base64
import binascii
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from console import data, fmt, queue
from console.web import NotFound, context
from gateway import derive, followups, review, transactions

router = APIRouter(prefix="/api/v1", tags=["v1"])

MAX_POLLS = 500
MAX_FOLLOWUPS = 1000
CURSOR_PREFIX = "fu1:"


def _bad(errors):
    return JSONResponse({"error": "bad request", "fields": errors}, status_code=400)


@router.get("/me", summary="The account the request acts as")
def me(request: Request):
    with context(request, "signed-in", api=True) as c:
        u = c.me
        return {
            "username": u["username"],
            "name": u["name"],
            "role": u["role"],
            "lang": c.lang,
            "offices": [s for s, _ in c.offices()],
        }


@router.get(
    "/offices",
    summary="Offices in the account's scope",
    description="Each with its timezone and region (the site file's [[regions]] id, or null).",
)
def offices(request: Request):
    with context(request, "signed-in", api=True) as c:
        return {
            "offices": [
                {"id": s, "name": name, "timezone": str(c.tz(s)), "region": c.history.region_of(s, c.now_ms)}
                for s, name in c.offices()
            ],
        }


@router.get(
    "/reports",
    summary="KPI report (the same dict as `rating report --format json`, docs/report-json.md)",
    description="Dates are each office's own calendar days; `to` is inclusive. Without `site`, an "
    "account limited to several offices must name one. Without from/to: the week of the newest poll. "
    "by=region: the offices of the scope rolled up through the site file's regions (a region only "
    "when every office of it is in the scope; `site` is not used).",
)
def reports(
    request: Request,
    by: Literal["site", "region", "employee", "device", "question"] = Query(
        "site", description="rows per office, region (the site file's [[regions]]), employee, panel or question"
    ),
    period: Literal["all", "day", "week", "month"] = "all",
    site: str | None = Query(None, description="office id"),
    from_: str | None = Query(None, alias="from", description="first day, YYYY-MM-DD"),
    to: str | None = Query(None, description="last day, YYYY-MM-DD (inclusive)"),
):
    with context(request, "reports", api=True) as c:
        params = {"by": by, "period": period}
        if site:
            params["site"] = site
        if from_ is not None:
            params["from"] = from_
        if to is not None:
            params["to"] = to
        kwargs, errors, _form = data.report_params(c, params, first_office=False)
        if errors:
            return _bad(errors)
        return data.build_report(c, kwargs)


@router.get(
    "/polls",
    summary="Polls, oldest first, a page at a time",
    description="Pass the `next` value of a page as `after` to get the next one. Times are epoch ms.",
)
def polls(
    request: Request,
    site: str | None = Query(None, description="office id"),
    from_ms: int | None = Query(None, description="opened at or after (epoch ms)"),
    to_ms: int | None = Query(None, description="opened before (epoch ms)"),
    answer: Literal["yes", "no", "unsure", "silent"] | None = None,
    employee: str | None = None,
    after: str | None = Query(None, description="the `next` value of the previous page"),
    limit: int = Query(100, ge=1, le=MAX_POLLS),
):
    with context(request, "polls", api=True) as c:
        if site is not None and not c.allows(site):
            raise NotFound()
        sites = {site} if site else c.sites
        key = None
        if after:
            try:
                opened, ident = after.split(":", 1)
                s, d, q = review.parse_id(ident)
                key = (int(opened), s, d, q)
            except (ValueError, review.ReviewError):
                return _bad({"after": "use the `next` value of the previous page"})
        rows = derive.polls_page(c.db, sites, from_ms, to_ms, answer, employee, key, limit)
        out = []
        for r in rows:
            out.append(
                dict(
                    r,
                    id=review.format_id(r["site"], r["device"], r["open_seq"]),
                    opened_local=fmt.time(r["opened_ms"], c.tz(r["site"]), "en"),
                )
            )
        nxt = None
        if len(rows) == limit:
            last = rows[-1]
            nxt = "%d:%s" % (last["opened_ms"], review.format_id(last["site"], last["device"], last["open_seq"]))
        return {"polls": out, "next": nxt}


@router.get(
    "/review",
    summary="The review queue: pending first, the riskiest first, with each poll's doubt score and reasons",
    description="The same queue as the console's /review page, a page of 50 at a time: every No answer, every "
    "force-majeure report, a share of the other polls and every doubtful poll (kind `doubt`). `doubt` is the "
    "poll's score (0: nothing doubtful; force-majeure reports 0), `doubt_reasons` the codes of its signs "
    "(docs/console.md) and `doubt_text` the same in the account's language. Dates are each office's own days.",
)
def review_queue(
    request: Request,
    site: str | None = Query(None, description="office id"),
    employee: str | None = None,
    kind: Literal["no", "fm", "random", "doubt"] | None = None,
    status: Literal["pending", "decided", "all"] = "pending",
    order: Literal["risk", "time"] = Query("risk", description="risk: the riskiest first; time: the oldest first"),
    from_: str | None = Query(None, alias="from", description="first day, YYYY-MM-DD (default: the newest week)"),
    to: str | None = Query(None, description="last day, YYYY-MM-DD (inclusive)"),
    page: int = Query(1, ge=1),
):
    with context(request, "review", api=True) as c:
        params = {"site": site, "employee": employee, "kind": kind, "status": status, "order": order}
        params.update({"from": from_, "to": to, "page": str(page)})
        flt = data.review_filter(c, {k: v for k, v in params.items() if v is not None})
        if flt.errors:
            return _bad(flt.errors)
        items, counts = data.review_queue(c, flt)
        shown, pages = queue.page(items, flt.page)
        return {
            "items": [_queue_item(c, i) for i in shown],
            "page": flt.page,
            "pages": pages,
            "counts": counts,
            "from": flt.start.isoformat() if flt.start else None,
            "to": flt.end.isoformat() if flt.end else None,
        }


def _queue_item(c, i):
    row = i["row"]
    reasons = list(row.get("doubt_reasons") or ())
    return {
        "id": i["id"],
        "kind": i["kind"],
        "stratum": i["stratum"],
        "site": row["site"],
        "device": row["device"],
        "at_ms": i["at_ms"],
        "at_local": fmt.time(i["at_ms"], c.tz(row["site"]), c.lang),
        "employee": row.get("employee"),
        "answer": row.get("answer") if i["kind"] == "poll" else None,
        "decided": i["decided"],
        "verdict": i["verdict"],
        "doubt": row.get("doubt") or 0,
        "doubt_reasons": reasons,
        "doubt_text": [c.t("doubt_" + r) for r in reasons],
    }


@router.get("/polls/{site}/{device}/{seq}", summary="One poll with its verdict trail")
def poll(request: Request, site: str, device: str, seq: int):
    with context(request, "polls", api=True) as c:
        if not c.allows(site):
            raise NotFound()
        row = derive.poll(c.db, site, device, seq)
        if row is None:
            raise NotFound()
        ident = review.format_id(site, device, seq)
        trail = [v for v in review.history(c.db, ident) if v["target"] == review.POLL]
        return {"poll": dict(row, id=ident), "verdicts": trail}


@router.get("/panels", summary="The panel fleet: connection, config, firmware, backlog, lost events, faults")
def panels(request: Request, site: str | None = None, page: int = Query(1, ge=1)):
    with context(request, "fleet", api=True) as c:
        if site:
            c.require_site(site)
        rows, summary, pages, page, letters = data.fleet_page(c, site, None, page)
        return {
            "panels": rows,
            "summary": summary,
            "page": page,
            "pages": pages,
            "dead_letters": [
                {
                    k: d[k]
                    for k in ("id", "topic", "reason", "received_ms", "last_seen_ms", "seen", "site", "device", "seq")
                }
                for d in letters
            ],
        }


class VerdictIn(BaseModel):
    target: Literal["poll", "fm"] = Field(description="a poll or a force-majeure report")
    id: str = Field(description="site/device/seq", examples=["msk-tverskaya/desk-1/42"])
    verdict: Literal["valid", "invalid", "confirm", "reject", "undo"] = Field(
        description="poll: valid | invalid; fm: confirm | reject; both: undo (records the verdict in force before)"
    )
    reason: str = Field("", max_length=review.MAX_REASON, description="required for invalid and reject")
    from_ms: int | None = Field(None, description="fm confirm: corrected period start (epoch ms)")
    to_ms: int | None = Field(None, description="fm confirm: corrected period end (epoch ms)")


@router.post("/verdicts", summary="Record a verdict under the account (append-only audit trail)", status_code=201)
def verdict(request: Request, body: VerdictIn):
    with context(request, "verdict", api=True) as c:
        c.check_csrf(request.headers.get("x-csrf-token"))
        try:
            site, device, seq = review.parse_id(body.id)
        except review.ReviewError as exc:
            return _bad({"id": str(exc)})
        if not c.allows(site):
            raise NotFound()
        exists = (
            derive.poll(c.db, site, device, seq) if body.target == "poll" else derive.report(c.db, site, device, seq)
        )
        if exists is None:
            raise NotFound()
        try:
            if body.verdict == "undo":
                row = data.undo(c, body.target, body.id)
            else:
                allowed = ("valid", "invalid") if body.target == "poll" else ("confirm", "reject")
                if body.verdict not in allowed:
                    return _bad({"verdict": "a %s takes %s" % (body.target, " or ".join(allowed))})
                row = data.give_verdict(c, body.target, body.id, body.verdict, body.reason, body.from_ms, body.to_ms)
        except review.ReviewError as exc:
            return _bad({"verdict": str(exc)})
        return JSONResponse(row, status_code=201)


@router.get("/verdicts/{site}/{device}/{seq}", summary="Every verdict on one id (poll and report), oldest first")
def verdicts(request: Request, site: str, device: str, seq: int):
    with context(request, "polls", api=True) as c:
        if not c.allows(site):
            raise NotFound()
        return {"verdicts": review.history(c.db, review.format_id(site, device, seq))}


def followup_cursor(event_id: int) -> str:
    """The opaque cursor after the event row `event_id` (0: from the start)."""
    return base64.urlsafe_b64encode(("%s%d" % (CURSOR_PREFIX, event_id)).encode()).decode().rstrip("=")


def _followup_after(cursor):
    """The event row id a cursor stands for; ValueError when it is not one of ours."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if not text.startswith(CURSOR_PREFIX) or not text[len(CURSOR_PREFIX) :].isdigit():
        raise ValueError(cursor)
    return int(text[len(CURSOR_PREFIX) :])


@router.get(
    "/followups",
    summary="CRM follow-ups and retractions of the token's offices, in issue order",
    description="For integration accounts only (role `integration`, a bearer token). Pass the `next` value "
    "of a response as `since` to get what was issued after it; `next` is returned even when nothing is "
    "new, and re-reading with the same `since` returns the same events (idempotent). Each event's `id` is "
    "its idempotency key. docs/integrations.md describes the payloads.",
)
def followups_feed(
    request: Request,
    since: str | None = Query(None, description="the `next` value of the previous response (none: from the start)"),
    limit: int = Query(100, ge=1, le=MAX_FOLLOWUPS),
):
    with context(request, "followups", api=True) as c:
        try:
            after = _followup_after(since)
        except ValueError:
            return _bad({"since": "use the `next` value of the previous response"})
        events, last = followups.feed(c.db, after, c.sites, limit)
        return {"followups": events, "next": followup_cursor(last)}


class TransactionIn(BaseModel):
    site: str = Field(description="office id", examples=["msk-tverskaya"])
    till: str = Field(description="till id (or the panel id when panels have no till setting)", examples=["till-1"])
    t: int = Field(description="time of the sale, Unix epoch ms (the POS's clock)", examples=[1764842400000])
    id: str = Field(description="the POS's id of the sale (receipt number), unique per office", examples=["R-000123"])
    loyalty: str | None = Field(
        None, description="pseudonymous loyalty-card reference; a raw card number is stored only as an HMAC"
    )


@router.post(
    "/transactions",
    summary="Take one POS sale (idempotent on site + id; docs/transactions.md)",
    description="201 when stored, 200 when a sale with this id was already stored for the office "
    "(nothing changes: the first arrival wins). Matched to the poll that followed it at the same till.",
    status_code=201,
)
def post_transaction(request: Request, body: TransactionIn):
    with context(request, "pos", api=True) as c:
        c.check_csrf(request.headers.get("x-csrf-token"))
        if not c.allows(body.site) or ("site", body.site) not in c.history.keys("site"):
            return _bad({"site": "no office %r in your scope" % body.site})
        sale = {"id": body.id, "till": body.till, "t": body.t}
        if body.loyalty is not None:
            sale["loyalty"] = body.loyalty
        try:
            checked, new = transactions.intake(c.db, body.site, sale, "http:" + c.me["username"], c.now_ms)
        except transactions.TransactionError as exc:
            field, _sep, problem = str(exc).partition(": ")
            return _bad({field: problem or str(exc)})
        return JSONResponse(
            {"site": body.site, "id": checked["id"], "till": checked["till"], "t": checked["t"], "stored": new},
            status_code=201 if new else 200,
        )


@router.get(
    "/pos",
    summary="POS sales matched to polls in one office: exact conversion, polls with no sale, sales with no poll",
    description="Per panel and per employee: sales, polls, matched polls, exact conversion = matched / sales "
    "with its 95 % Wilson interval (docs/transactions.md). Dates are the office's calendar days; `to` is "
    "inclusive. Loyalty references are never in the answer.",
)
def pos(
    request: Request,
    site: str = Query(description="office id"),
    from_: str | None = Query(None, alias="from", description="first day, YYYY-MM-DD"),
    to: str | None = Query(None, description="last day, YYYY-MM-DD (inclusive)"),
):
    from gateway import report_pos, times

    with context(request, "reports", api=True) as c:
        c.require_site(site)
        tz = c.tz(site)
        bounds = {}
        for name, text, end in (("from", from_, False), ("to", to, True)):
            try:
                bounds[name] = None if text is None else times.parse_bound(text, tz, end=end)
            except ValueError as exc:
                return _bad({name: str(exc)})
        lo, hi = bounds["from"], bounds["to"]
        out = report_pos.office(c.db, c.history, site, lo, hi)
        for p in out["polls_without_sale"]:
            p.pop("device")
        return out
