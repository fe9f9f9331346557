"""Drill-down (/polls): the polls behind a figure of the KPI page, the office page, the
rankings, the trends and the heat map, with their verdicts in force and video links.

A figure is named by its office, optionally an employee / panel / question, local dates (a
report row's range or period) or an hour x weekday cell, and which figure (DI-staff: the staff
question's valid polls less the No/silent ones under confirmed force majeure; DI-office: the
office question's; ELI: the loyalty question's; polls: every valid poll). The list is counted
and paged in SQL (gateway.derive.count_selected / selected_page) with the report's rules:
invalid polls (gateway.review's verdicts in force) are left out, so the count on the page is
the figure's n. Verdicts of the page's polls come from review.latest_for, video links as the
review page makes them (console.data.safe_link / is_playable)."""

import csv
import datetime as _dt
import io
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import Response

from console import data, queue
from console.dashboards import _zone_note
from console.web import context
from gateway import derive, review, transactions

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
# figure -> (question kind or None for every poll, staff polls under confirmed force majeure left out)
FIGURES = {
    "polls": (None, False),
    "di_staff": ("staff", True),
    "di_office": ("office", False),
    "eli": ("loyalty", False),
}
WHATS = derive.DRILL_KINDS
NOBODY = "-"  # the employee / question filter for "none recorded" (the report's key "")


def url(site, figure="polls", frm=None, to=None, employee=None, device=None, question=None, cell=None, what=None):
    """The drill-down link of a figure (None parameters left out; "" employee/question: nobody)."""
    values = {
        "site": site,
        "figure": figure,
        "from": frm,
        "to": to,
        "employee": NOBODY if employee == "" else employee,
        "device": device,
        "question": NOBODY if question == "" else question,
        "cell": cell,
        "what": what,
    }
    return "/polls?" + urllib.parse.urlencode({k: v for k, v in values.items() if v is not None})


def row_url(c, rep, row, figure, form_site=None):
    """The drill-down link of a report row's figure (KPI page, trends, rankings, office page);
    None when the row is not within one office (a region, every office's employee)."""
    by = rep["by"]
    site = rep.get("site") or form_site
    extra = {}
    if by == "site":
        site = row["key"] if row["key"] != "*" else site
    elif by == "device":
        if row["key"] == "*":
            pass
        else:
            site, _, extra["device"] = row["key"].partition("/")
    elif by == "employee" and row["key"] != "*":
        extra["employee"] = row["key"]
    elif by == "question" and row["key"] != "*":
        extra["question"] = row["key"]
    elif by == "region":
        return None
    if not site:
        return None
    frm, to = row_dates(c, site, rep, row)
    return url(site, figure, frm, to, **extra)


def row_dates(c, site, rep, row):
    """(from, to) local dates of a report row in the office's timezone: the report's range cut
    to the row's period."""
    tz = c.tz(site)

    def day(ms, end=False):
        if ms is None:
            return None
        moment = _dt.datetime.fromtimestamp(ms / 1000.0, tz)
        if end:  # an exclusive end at midnight: the day before
            moment -= _dt.timedelta(milliseconds=1)
        return moment.date()

    lo = [d for d in (day(rep.get("from_ms")), day(row.get("period_start_ms"))) if d is not None]
    hi = [d for d in (day(rep.get("to_ms"), True), day(row.get("period_end_ms"), True)) if d is not None]
    if rep.get("from_local"):  # a local range: the same dates in every office
        lo.append(_dt.date.fromisoformat(rep["from_local"][:10]))
    if rep.get("to_local"):  # exclusive: midnight after the last day
        hi.append(_dt.datetime.fromisoformat(rep["to_local"]).date() - _dt.timedelta(days=1))
    return (max(lo).isoformat() if lo else None), (min(hi).isoformat() if hi else None)


def _day_ms(day, tz):
    return int(_dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def cell_windows(start, end, tz, weekday, hour):
    """[(from_ms, to_ms)] of local hour `hour` on ISO weekday `weekday` of the days start..end
    (dates, inclusive) in tz: the instants the heat map's cell counts (its local hour of the
    opening time)."""
    out = []
    day = start
    while day <= end:
        if day.isoweekday() == weekday:
            lo = _dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz)
            hi = (
                lo.replace(hour=hour + 1)
                if hour < 23
                else _dt.datetime.combine(day + _dt.timedelta(days=1), _dt.time(0), tz)
            )
            a, b = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
            if a < b:
                out.append((a, b))
        day += _dt.timedelta(days=1)
    return out


def _parse_cell(text):
    """'D-H' (ISO weekday 1-7, local hour 0-23) -> (D, H); ValueError otherwise."""
    d, _, h = (text or "").partition("-")
    weekday, hour = int(d), int(h)
    if not (1 <= weekday <= 7 and 0 <= hour <= 23):
        raise ValueError(text)
    return weekday, hour


def _dates(c, params, site, errors):
    dates = {}
    for name in ("from", "to"):
        text = (params.get(name) or "").strip()
        if text:
            try:
                dates[name] = _dt.date.fromisoformat(text)
            except ValueError:
                errors[name] = c.t("err_date")
    if "from" not in params and "to" not in params:
        dates["from"], dates["to"] = data.default_week(c, {site})
    if dates.get("from") and dates.get("to") and dates["to"] < dates["from"]:
        errors["to"] = c.t("err_date_order")
    return dates.get("from"), dates.get("to")


def selection(c, params):
    """(selection for derive.count_selected, form values, errors {field: message}). NotFound for
    an office that is unknown or outside the account's scope."""
    site = (params.get("site") or "").strip()
    c.require_site(site)
    errors = {}
    figure = params.get("figure") or "polls"
    if figure not in FIGURES:
        errors["figure"] = c.t("err_choice")
        figure = "polls"
    what = params.get("what") or "counted"
    if what not in WHATS:
        errors["what"] = c.t("err_choice")
        what = "counted"
    start, end = _dates(c, params, site, errors)
    cell = (params.get("cell") or "").strip() or None
    windows = None
    if cell is not None:
        try:
            weekday, hour = _parse_cell(cell)
            if start is None or end is None:
                errors["cell"] = c.t("err_cell_dates")
            else:
                windows = cell_windows(start, end, c.tz(site), weekday, hour)
        except ValueError:
            errors["cell"] = c.t("err_cell")
    page = (params.get("page") or "1").strip()
    if not page.isdigit() or int(page) < 1:
        errors["page"] = c.t("err_page")
        page = "1"
    tz = c.tz(site)
    kind, exclude_fm = FIGURES[figure]
    from_ms = _day_ms(start, tz) if start else None
    to_ms = _day_ms(end + _dt.timedelta(days=1), tz) if end else None
    sel = {
        "site": site,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "kind": kind,
        "exclude_fm": exclude_fm,
        "windows": windows,
        "what": what,
    }
    for name in ("employee", "device", "question"):
        value = (params.get(name) or "").strip()
        if value:
            sel[name] = "" if value == NOBODY and name != "device" else value
    form = {
        "site": site,
        "figure": figure,
        "what": what,
        "from": start.isoformat() if start else "",
        "to": end.isoformat() if end else "",
        "cell": cell or "",
        "employee": (params.get("employee") or "").strip(),
        "device": (params.get("device") or "").strip(),
        "question": (params.get("question") or "").strip(),
        "page": int(page),
    }
    return sel, form, errors


def with_verdicts(c, sel):
    """The selection with the office's invalid polls and confirmed force-majeure periods
    (gateway.review's verdicts in force), which decide what the figure counts."""
    fms = derive.office_reports(c.db, sel["site"])
    keys = [(review.FM, f["site"], f["device"], f["seq"]) for f in fms]
    verdicts = review.latest_for(c.db, keys) if keys else {}
    out = dict(
        sel,
        invalid=review.invalid_poll_ids_of(c.db, [sel["site"]], sel["from_ms"]),
        fm_periods=review.confirmed_periods(fms, verdicts),
    )
    if sel["what"] == "no_sale":  # the polls opened with no POS sale at their till (docs/transactions.md)
        out["no_sale"] = transactions.no_sale_ids(c.db, c.history, [sel["site"]], sel["from_ms"], sel["to_ms"])
    return out


def _periods_hit(row, periods):
    return any(p["device"] == row["device"] and p["start"] <= row["opened_ms"] < p["end"] for p in periods)


def _item(c, r, verdicts, sel):
    ident = review.format_id(r["site"], r["device"], r["open_seq"])
    _decided, verdict = queue.item_status("poll", r, verdicts)
    fm = r["kind"] == "staff" and (r["answer"] or "silent") in ("no", "silent")
    return {
        "row": r,
        "id": ident,
        "answer": r["answer"] or "silent",
        "verdict": verdict,
        "invalid": ident in (sel.get("invalid") or ()),
        "fm": fm and _periods_hit(r, sel.get("fm_periods") or ()),
        "video": data.safe_link(r.get("video_url")),
        "playable": data.is_playable(r.get("video_url")),
        "employee_name": c.history.employee_name(r["employee"]) if r.get("employee") else None,
    }


def load(c, sel, page, size=None):
    """(total, pages, page, items) of the selection: one COUNT and one page of rows in SQL."""
    size = size or PAGE_SIZE
    total = derive.count_selected(c.db, sel)
    pages = max(1, (total + size - 1) // size)
    page = min(max(1, page), pages)
    rows = derive.selected_page(c.db, sel, size, (page - 1) * size)
    verdicts = review.latest_for(c.db, [queue.target_key("poll", r) for r in rows]) if rows else {}
    items = [_item(c, r, verdicts, sel) for r in rows]
    return total, pages, page, items


@router.get("/polls")
def polls_page(request: Request):
    with context(request, "reports") as c:
        params = dict(request.query_params)
        sel, form, errors = selection(c, params)
        total = pages = 0
        items = []
        page = form["page"]
        if not errors:
            sel = with_verdicts(c, sel)
            total, pages, page, items = load(c, sel, form["page"])
        query = {k: v for k, v in params.items() if k != "page"}
        return c.render(
            "polls.html",
            400 if errors else 200,
            errors=errors,
            form=form,
            total=total,
            pages=pages,
            page=page,
            items=items,
            whats=WHATS,
            figures=tuple(FIGURES),
            site_name=c.history.site_name(form["site"]),
            employee_name=c.history.employee_name(form["employee"]) if form["employee"] not in ("", NOBODY) else None,
            zone=_zone(c, form["site"]),
            page_url=lambda p: "/polls?" + urllib.parse.urlencode(dict(query, page=p)),
            what_url=lambda w: "/polls?" + urllib.parse.urlencode(dict(query, what=w)),
            csv_url="/polls.csv?" + urllib.parse.urlencode(query),
        )


def _zone(c, site):
    return _zone_note(c, [], site)


EXPORT_CHUNK = 2000


@router.get("/polls.csv")
def polls_csv(request: Request):
    """The whole list as CSV, read a chunk at a time (one office's polls at most)."""
    with context(request, "reports") as c:
        sel, form, errors = selection(c, dict(request.query_params))
        if errors:
            return Response("; ".join(errors.values()) + "\n", status_code=400, media_type="text/plain")
        sel = with_verdicts(c, sel)
        tz = c.tz(sel["site"])
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(
            ["id", "opened", "timezone", "device", "employee", "question", "kind", "answer", "verdict"]
            + ["force_majeure", "video"]
        )
        offset = 0
        while True:
            rows = derive.selected_page(c.db, sel, EXPORT_CHUNK, offset)
            verdicts = review.latest_for(c.db, [queue.target_key("poll", r) for r in rows]) if rows else {}
            for r in rows:
                i = _item(c, r, verdicts, sel)
                w.writerow(
                    [
                        i["id"],
                        _dt.datetime.fromtimestamp(r["opened_ms"] / 1000.0, tz).isoformat(),
                        str(tz),
                        r["device"],
                        _text(r["employee"]),
                        _text(r["question"]),
                        r["kind"] or "",
                        i["answer"],
                        i["verdict"] or "",
                        "1" if i["fm"] else "0",
                        i["video"] or "",
                    ]
                )
            if len(rows) < EXPORT_CHUNK:
                break
            offset += EXPORT_CHUNK
        name = "polls-%s-%s-%s_%s.csv" % (form["site"], form["figure"], form["from"] or "start", form["to"] or "now")
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="%s"' % name},
        )


def _text(x):
    """A name as a CSV cell a spreadsheet will not run as a formula."""
    x = x or ""
    return "'" + x if x[:1] in ("=", "+", "-", "@", "\t", "\r") else x
