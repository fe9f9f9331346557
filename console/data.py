"""What the pages and the API share: the review queue, one review item, verdicts, the report
and the fleet, each read through the gateway's modules within the account's scope."""

import datetime as _dt
import threading
import time
import urllib.parse

from console import queue
from console.web import NotFound
from gateway import derive, fleet, report, report_regions, review, store

# Ready-made reasons for an invalid poll / a rejected force-majeure report (keys 1-6 pick one).
POLL_REASONS = (
    "reason_not_customer",
    "reason_no_service",
    "reason_pressed_by_staff",
    "reason_repeat",
    "reason_test",
    "reason_other_video",
)
FM_REASONS = (
    "reason_fm_none_on_video",
    "reason_fm_normal_queue",
    "reason_fm_staff_break",
    "reason_fm_test",
    "reason_fm_wrong_panel",
    "reason_other_video",
)
VIDEO_EXTENSIONS = (".mp4", ".webm", ".ogv", ".ogg", ".m4v")
NEIGHBOURS = 6
FLEET_PAGE = 50


def default_week(c, sites):
    """(monday, sunday) of the week of the newest poll in scope (today's week when none)."""
    latest = derive.latest_poll_ms(c.db, sites)
    if latest is None:
        return queue.week_of(_dt.date.today())
    first = sorted(sites)[0] if sites else (c.offices()[0][0] if c.offices() else None)
    tz = c.tz(first) if first else _dt.UTC
    return queue.week_of(_dt.datetime.fromtimestamp(latest / 1000.0, tz).date())


def review_filter(c, params):
    flt = queue.Filter.parse(params, c.t)
    if flt.site and not c.allows(flt.site):
        flt.errors["site"] = c.t("err_office")
        flt.site = None
    if flt.start is None and flt.end is None and "from" not in params and "to" not in params:
        flt.start, flt.end = default_week(c, c.sites if not flt.site else {flt.site})
    return flt


# The sample of a filter is kept for a minute: opening an item, giving a verdict and moving on
# to the next one re-read only the verdicts, not a week of polls. A poll that arrives meanwhile
# joins the queue at most SAMPLE_TTL_S later; verdicts are always read fresh.
SAMPLE_TTL_S = 60
_SAMPLES = {}
_SAMPLES_LOCK = threading.Lock()


def review_sample(c, flt):
    share = c.history.deployment(c.now_ms).get("review_share", 0.1)
    key = (
        c.console,
        None if c.sites is None else frozenset(c.sites),
        flt.site,
        flt.employee,
        flt.start,
        flt.end,
        share,
        id(c.history),
    )
    now = time.monotonic()
    with _SAMPLES_LOCK:
        found = _SAMPLES.get(key)
        if found and found[0] > now:
            return found[1]
    sampled = queue.sample_of(c.db, c.history, c.sites, flt, share)
    with _SAMPLES_LOCK:
        for k in [k for k, v in _SAMPLES.items() if v[0] <= now]:
            del _SAMPLES[k]
        _SAMPLES[key] = (now + SAMPLE_TTL_S, sampled)
    return sampled


def review_queue(c, flt):
    return queue.load(c.db, review_sample(c, flt), flt)


def is_playable(url):
    """A link the browser can play in a <video> (a plain video file over http(s))."""
    if not url:
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and parts.path.lower().endswith(VIDEO_EXTENSIONS)


def safe_link(url):
    """Only http(s) links are shown as links (a site file could hold javascript: or worse)."""
    return url if url and urllib.parse.urlsplit(url).scheme in ("http", "https") else None


def item(c, kind, site, device, seq):
    """One review item (a poll or a force-majeure report) in scope, with its context; NotFound
    when unknown or out of scope."""
    if not c.allows(site):
        raise NotFound()
    row = derive.poll(c.db, site, device, seq) if kind == "poll" else derive.report(c.db, site, device, seq)
    if row is None:
        raise NotFound()
    ident = review.format_id(site, device, seq)
    target = review.POLL if kind == "poll" else review.FM
    trail = [r for r in review.history(c.db, ident) if r["target"] == target]
    in_force = trail[-1] if trail and trail[-1]["verdict"] != review.REOPEN else None
    events = store.timed_events(c.db, site, device, after_seq=max(0, seq - NEIGHBOURS - 1), limit=2 * NEIGHBOURS + 1)
    out = {
        "kind": kind,
        "id": ident,
        "row": row,
        "site": site,
        "device": device,
        "seq": seq,
        "trail": trail,
        "verdict": in_force,
        "events": events,
        "video": safe_link(row.get("video_url")),
        "playable": is_playable(row.get("video_url")),
        "employee_name": c.history.employee_name(row["employee"]) if row.get("employee") else None,
    }
    if kind == "poll":
        q = c.history.question(row.get("question"), row["opened_ms"]) or {}
        out["question_text"] = question_text(c, q, row.get("employee"), row["opened_ms"]) or row.get("question")
    else:
        out.update(timeline(c, row, in_force))
    return out


def question_text(c, question, employee, at_ms):
    """The question as the customer read it, in the reader's language: {employee} filled with
    the name of the person on the poll (the site file's in_question form in the deployment's
    language, the plain name otherwise); nobody on shift drops the placeholder."""
    text = question.get("text_" + c.lang) or question.get("text_ru") or question.get("text_en")
    if not text or "{employee}" not in text:
        return text
    person = (c.history.get("employee", employee, at_ms) or {}) if employee else {}
    same_lang = c.lang == c.history.deployment(at_ms).get("lang")
    name = (person.get("in_question") if same_lang else None) or person.get("name") or ""
    text = " ".join(text.replace("{employee}", name).split())
    for mark in "?!.,:;":  # nobody on shift: "менеджера ?" -> "менеджера?"
        text = text.replace(" " + mark, mark)
    return text


def timeline(c, fm, verdict):
    """The force-majeure report on a time line: the reported and the confirmed period and the
    panel's polls around it, as fractions of the shown span for the picture."""
    start, end = fm["start_ms"], fm["end_ms"]
    conf_from = verdict["from_ms"] if verdict and verdict["verdict"] == "confirm" and verdict["from_ms"] else None
    conf_to = verdict["to_ms"] if verdict and verdict["verdict"] == "confirm" and verdict["to_ms"] else None
    pad = max(10 * 60000, (end - start) // 2)
    lo = min(start, conf_from or start) - pad
    hi = max(end, conf_to or end) + pad
    span = float(hi - lo)
    polls = derive.panel_polls(c.db, fm["site"], fm["device"], lo, hi)

    def x(ms):
        return round(100.0 * (ms - lo) / span, 2)

    return {
        "line": {
            "from_ms": lo,
            "to_ms": hi,
            "reported": (x(start), x(end)),
            "confirmed": (x(conf_from or start), x(conf_to or end))
            if verdict and verdict["verdict"] == "confirm"
            else None,
            "polls": [(x(p["opened_ms"]), p["answer"] or "silent", p["opened_ms"]) for p in polls],
            "ticks": [
                (x(ms), ms)
                for ms in range(lo - lo % 600000 + 600000, hi, max(600000, (hi - lo) // 8 // 600000 * 600000))
            ],
        }
    }


def give_verdict(c, kind, ident, verdict, reason, from_ms=None, to_ms=None):
    """Record a verdict under the signed-in account (review.record: the append-only trail)."""
    site, device, seq = review.parse_id(ident)
    if not c.allows(site):
        raise NotFound()
    target = review.POLL if kind == "poll" else review.FM
    if verdict == review.REOPEN:
        raise review.ReviewError("reopen is recorded by undo")
    return review.record(c.db, target, ident, verdict, reason, c.me["username"], c.now_ms, from_ms, to_ms)


def undo(c, kind, ident):
    site, _device, _seq = review.parse_id(ident)
    if not c.allows(site):
        raise NotFound()
    return review.undo(c.db, review.POLL if kind == "poll" else review.FM, ident, c.me["username"], c.now_ms)


def bulk(c, idents, verdict, reason):
    """One verdict on several items at once, all or none (one transaction)."""
    kinds = {"valid": "poll", "invalid": "poll", "confirm": "fm", "reject": "fm"}
    kind = kinds.get(verdict)
    if kind is None:
        raise review.ReviewError(c.t("err_verdict"))
    rows = []
    with c.db.transaction():
        for ident in idents:
            k, _, rest = ident.partition(":")
            if k != kind:
                raise review.ReviewError(c.t("err_bulk_kind"))
            rows.append(give_verdict(c, kind, rest, verdict, reason))
    return rows


# --- reports --------------------------------------------------------------------------------

REPORT_BYS = ("site", "region", "employee", "device", "question")


def report_params(c, params, first_office=True):
    """(kwargs for report.build_report, errors {field: message}, values for the form)."""
    errors = {}
    by = params.get("by") or "site"
    if by not in REPORT_BYS:
        errors["by"] = c.t("err_by")
        by = "site"
    period = params.get("period") or "all"
    if period not in report.PERIODS:
        errors["period"] = c.t("err_period")
        period = "all"
    if by == "region" and not c.history.region_tree(c.now_ms):
        errors["by"] = c.t("err_no_regions")
    asked = params.get("site")
    site = (asked or "").strip() or None
    offices = c.offices()
    if site is not None and (not c.allows(site) or ("site", site) not in c.history.keys("site")):
        raise NotFound()
    if by == "region":
        site = None  # the regions of the account's scope: every office of it is read
    elif site is None and offices and (len(offices) == 1 and c.sites is not None or asked is None and first_office):
        # the first office by default: a report over every office of a large chain reads a
        # lot (see bench/README.md); "all offices" stays one choice away for those who may
        site = offices[0][0]
    elif site is None and c.sites is not None and offices:
        errors["site"] = c.t("err_choose_office")
    dates = {}
    for name in ("from", "to"):
        text = (params.get(name) or "").strip()
        if text:
            try:
                dates[name] = _dt.date.fromisoformat(text)
            except ValueError:
                errors[name] = c.t("err_date")
    if "from" not in params and "to" not in params:
        monday, sunday = default_week(c, c.sites if site is None else {site})
        dates = {"from": monday, "to": sunday}
    if dates.get("from") and dates.get("to") and dates["to"] < dates["from"]:
        errors["to"] = c.t("err_date_order")

    def naive(day, plus=0):
        return None if day is None else _dt.datetime(day.year, day.month, day.day) + _dt.timedelta(days=plus)

    kwargs = {
        "by": by,
        "period": period,
        "start": naive(dates.get("from")),
        "end": naive(dates.get("to"), 1),
        "site": site,
        "lang": c.lang,
    }
    form = {
        "by": by,
        "period": period,
        "site": site or "",
        "from": dates["from"].isoformat() if dates.get("from") else "",
        "to": dates["to"].isoformat() if dates.get("to") else "",
    }
    return kwargs, errors, form


def build_report(c, kwargs):
    if kwargs["by"] == "region":
        # offices rolled up through the site file's regions; a region shows only when every
        # office of it is in the account's scope (report_regions.rollup)
        return report_regions.build(c.db, sites=c.sites, now_ms=c.now_ms, **kwargs)
    return report.build_report(c.db, now_ms=c.now_ms, **kwargs)


def with_pos(c, rep, kwargs):
    """The report with its POS section (gateway.report_pos: exact conversion from the matches,
    per panel and employee) over the report's offices and dates, as `rating report` adds it;
    unchanged when those offices have no sale stored."""
    from gateway import report_pos

    if kwargs.get("site"):
        sites = [kwargs["site"]]
    else:
        sites = [k for _kind, k in c.history.keys("site") if c.allows(k)]
    report_pos.attach([rep], report_pos.section(c.db, c.history, kwargs["start"], kwargs["end"], sites))
    return rep


# --- fleet ----------------------------------------------------------------------------------


def fleet_page(c, site=None, state=None, page=1, size=FLEET_PAGE):
    """(rows of the page with their gaps, summary over the filter, pages, dead letters in scope)."""
    sites = c.sites if site is None else ({site} if c.allows(site) else set())
    rows = fleet.rows(c.db, c.history, c.now_ms, sites)
    summary = fleet.summary(rows)
    if state:
        rows = [r for r in rows if r["state"] == state]
    pages = max(1, (len(rows) + size - 1) // size)
    page = min(max(1, page), pages)
    shown = fleet.add_gaps(c.db, rows[(page - 1) * size : page * size], c.now_ms)
    letters = [
        d
        for d in store.dead_letters(c.db, limit=200)
        if (d["site"] is None and c.sites is None) or (d["site"] is not None and c.allows(d["site"]))
    ][:20]
    return shown, summary, pages, page, letters
