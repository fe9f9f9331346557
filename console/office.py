"""The office page (/office?site=...): one office's KPIs with their 95 % intervals, the
bottleneck diagnosis, its panels, its employees' fair ranking, coverage and conversion, and
its force-majeure reports on a time line; also as JSON and CSV (`/office.json`, `/office.csv`).

Every figure is `gateway.report.build_report`'s (by office, and by employee ranked by DI-staff,
as /rankings ranks them), so the page shows the numbers of `rating report --format json` for
the same office and dates; the JSON export carries that report dict as it is. The panels are
the fleet page's rows (gateway.fleet / panelhealth). The time line is drawn here as SVG
elements in the page (attributes only: the CSP allows no inline style), times in the office's
timezone with the zone named."""

import csv
import datetime as _dt
import io
import json
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import Response

from console import data, drill
from console.dashboards import _zone_note
from console.web import NotFound, context
from gateway import derive, report_pos, review, transactions

router = APIRouter(include_in_schema=False)

FIGURES = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")
DRILLABLE = {"di_staff": "di_staff", "di_office": "di_office", "eli": "eli"}
PANELS_MAX = 500
# the time line's drawing (SVG user units; the picture scales to the page's width)
WIDTH, LEFT, LANE, TOP = 960, 120, 26, 22
STATUS_FILL = {"confirmed": "#0072b2", "pending": "#e69f00", "rejected": "#999999"}  # Okabe-Ito


def _office(c, params):
    """(view or None, errors, form) of the page's parameters; NotFound outside the scope."""
    params = dict(params)
    site = (params.get("site") or "").strip() or (c.offices()[0][0] if c.offices() else "")
    if not site:
        raise NotFound()
    c.require_site(site)
    params.update(site=site, by="site", period="all")
    kwargs, errors, form = data.report_params(c, params)
    if errors:
        return None, errors, form
    rep = data.build_report(c, kwargs)
    ranking = data.build_report(c, dict(kwargs, by="employee", sort="di_staff"))
    row = rep["rows"][0] if rep["rows"] else None
    panels, summary, _pages, _page, _letters = data.fleet_page(c, site, None, 1, PANELS_MAX)
    tz = c.tz(site)
    from_ms, to_ms = rep["from_ms"], rep["to_ms"]
    fms = force_majeure(c, site, from_ms, to_ms)
    view = {
        "site": site,
        "name": c.history.site_name(site),
        "tz": tz,
        "report": rep,
        "row": row,
        "ranking": ranking,
        "panels": panels,
        "summary": summary,
        "fms": fms,
        "timeline": timeline(c, site, fms, from_ms, to_ms, {p["device"] for p in panels}),
        "pos": pos_view(c, site, from_ms, to_ms),
    }
    return view, errors, form


POS_LIST_MAX = 200  # unmatched polls / sales listed on the page (the counts are always whole)


def pos_view(c, site, from_ms, to_ms):
    """The office's POS matches (gateway.report_pos.office: the figures of `rating transactions
    conversion` and GET /api/v1/pos), or None when the office has no sale stored. Employee rows
    carry the name; the lists are capped at POS_LIST_MAX, newest last. Never a loyalty reference."""
    if not transactions.count(c.db, site):
        return None
    pos = report_pos.office(c.db, c.history, site, from_ms, to_ms)
    frm, to = drill.row_dates(c, site, {"from_ms": from_ms, "to_ms": to_ms}, {"period": "all"})
    for by in ("device", "employee"):
        for r in pos["by_" + by]:
            who = {by: r["key"]}
            r["no_sale_url"] = drill.url(site, "polls", frm, to, what="no_sale", **who)
    for r in pos["by_employee"]:
        r["label"] = c.history.employee_name(r["key"]) if r["key"] else None
    for key in ("polls_without_sale", "sales_without_poll"):
        pos[key + "_n"] = len(pos[key])
        pos[key] = pos[key][-POS_LIST_MAX:]
        for r in pos[key]:
            r["employee_name"] = c.history.employee_name(r["employee"]) if r["employee"] else None
    return pos


def force_majeure(c, site, from_ms, to_ms):
    """The office's force-majeure reports overlapping [from_ms, to_ms), with their review status
    and the period in force (the expert's corrected one when confirmed with times)."""
    reports = derive.office_reports(c.db, site)
    keys = [(review.FM, f["site"], f["device"], f["seq"]) for f in reports]
    verdicts = review.latest_for(c.db, keys) if keys else {}
    out = []
    for f in reports:
        status = review.fm_status(verdicts, f["site"], f["device"], f["seq"])
        period = review.confirmed_periods([f], verdicts)
        start, end = (period[0]["start"], period[0]["end"]) if period else (f["start_ms"], f["end_ms"])
        lo, hi = min(start, f["start_ms"]), max(end, f["end_ms"])
        if (to_ms is not None and lo >= to_ms) or (from_ms is not None and hi <= from_ms):
            continue
        out.append(
            {
                "id": review.format_id(f["site"], f["device"], f["seq"]),
                "device": f["device"],
                "employee": f["employee"],
                "reported_start_ms": f["start_ms"],
                "reported_end_ms": f["end_ms"],
                "start_ms": start,
                "end_ms": end,
                "status": status,
            }
        )
    return out


def _ticks(from_ms, to_ms, tz):
    """(ms, label) of local midnights in the range: every day up to two weeks, else Mondays
    (or firsts of the month past three months)."""
    start = _dt.datetime.fromtimestamp(from_ms / 1000.0, tz).date()
    end = _dt.datetime.fromtimestamp((to_ms - 1) / 1000.0, tz).date()
    days = (end - start).days + 1
    out = []
    day = start
    while day <= end:
        if days <= 14 or (days <= 92 and day.weekday() == 0) or (days > 92 and day.day == 1):
            ms = int(_dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)
            out.append((ms, day.strftime("%d.%m")))
        day += _dt.timedelta(days=1)
    return out


def timeline(c, site, fms, from_ms, to_ms, devices):
    """The time line's SVG pieces: lanes (one per panel with a report, or every panel),
    bars and ticks in user units, drawn by office.html."""
    tz = c.tz(site)
    if from_ms is None or to_ms is None or to_ms <= from_ms:
        return None
    lanes = sorted({f["device"] for f in fms} or devices)
    span = float(to_ms - from_ms)
    width = WIDTH - LEFT - 10

    def x(ms):
        return round(LEFT + width * (min(max(ms, from_ms), to_ms) - from_ms) / span, 1)

    bars = []
    for f in fms:
        x0, x1 = x(f["start_ms"]), x(f["end_ms"])
        y = TOP + lanes.index(f["device"]) * LANE + 4
        bars.append(
            {
                "x": x0,
                "y": y,
                "w": max(2.0, round(x1 - x0, 1)),
                "h": LANE - 8,
                "fill": STATUS_FILL[f["status"]],
                "status": f["status"],
                "title": "%s: %s – %s (%s)"
                % (f["id"], c.time(f["start_ms"], site), c.time(f["end_ms"], site), c.t("fm_" + f["status"])),
            }
        )
    return {
        "width": WIDTH,
        "height": TOP + max(1, len(lanes)) * LANE + 6,
        "left": LEFT,
        "right": WIDTH - 10,
        "lanes": [(d, TOP + i * LANE) for i, d in enumerate(lanes)],
        "bars": bars,
        "ticks": [(x(ms), label) for ms, label in _ticks(from_ms, to_ms, tz)],
        "lane_h": LANE,
        "fills": STATUS_FILL,
    }


def _links(c, view, form):
    """Drill-down links of the office's figures and of its employees' rows."""
    rep, ranking = view["report"], view["ranking"]
    out = {"office": {}, "employees": {}}
    if view["row"]:
        for fig, target in list(DRILLABLE.items()) + [("polls", "polls")]:
            out["office"][fig] = drill.row_url(c, rep, view["row"], target)
    for r in ranking["rows"]:
        out["employees"][(r["key"], r["period"])] = drill.row_url(c, ranking, r, "di_staff", form["site"])
    return out


@router.get("/office")
def office_page(request: Request):
    with context(request, "reports") as c:
        view, errors, form = _office(c, request.query_params)
        query = urllib.parse.urlencode({k: form[k] for k in ("site", "from", "to") if form.get(k)})
        return c.render(
            "office.html",
            400 if errors else 200,
            view=view,
            errors=errors,
            form=form,
            offices=c.offices(),
            office_required=True,
            figures=FIGURES,
            drillable=DRILLABLE,
            links=_links(c, view, form) if view else {},
            zones=_zone_note(c, [], form["site"]),
            query=query,
        )


def export_dict(view):
    """The office page as JSON: the report dicts as `rating report --format json` gives them."""
    return {
        "office": view["site"],
        "name": view["name"],
        "timezone": str(view["tz"]),
        "report": view["report"],
        "ranking": view["ranking"],
        "panels": [
            {k: p.get(k) for k in ("device", "state", "last_seen_ms", "question", "fw", "faults", "lost")}
            for p in view["panels"]
        ],
        "force_majeure": view["fms"],
        "pos": _pos_export(view["pos"]),
    }


def _pos_export(pos):
    """The POS section as the API gives it (the page's links left out)."""
    if pos is None:
        return None
    rows = {
        by: [{k: v for k, v in r.items() if k != "no_sale_url"} for r in pos[by]] for by in ("by_device", "by_employee")
    }
    return dict(pos, **rows)


def _bad(errors):
    return Response("; ".join(errors.values()) + "\n", status_code=400, media_type="text/plain")


@router.get("/office.json")
def office_json(request: Request):
    with context(request, "reports") as c:
        view, errors, form = _office(c, request.query_params)
        if errors or view is None:
            return _bad(errors)
        name = "office-%s-%s_%s.json" % (form["site"], form["from"] or "start", form["to"] or "now")
        return Response(
            json.dumps(export_dict(view), ensure_ascii=False, indent=1, default=str),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="%s"' % name},
        )


def _num(x):
    return "" if x is None else repr(x)


def _text(x):
    x = x or ""
    return "'" + x if x[:1] in ("=", "+", "-", "@", "\t", "\r") else x


def csv_lines(view):
    """section, key, label, figure, value, low, high, n: the office's figures, then its
    employees' (fair value first), then its force-majeure reports."""
    lines = []
    if view["row"]:
        lines.append(
            ["office", view["site"], view["name"], "polls_valid", _num(view["row"]["polls"]["valid"]), "", "", ""]
        )
        for f in FIGURES:
            fig = view["row"]["kpi"].get(f) or {}
            lines.append(
                ["office", view["site"], view["name"], f] + [_num(fig.get(x)) for x in ("value", "low", "high", "n")]
            )
    for r in view["ranking"]["rows"]:
        fair, raw = r.get("fair") or {}, r["kpi"].get("di_staff") or {}
        label = _text(r["label"])
        lines.append(
            ["employee", _text(r["key"]), label, "di_staff_fair"]
            + [_num(fair.get(x)) for x in ("value", "low", "high", "n")]
        )
        lines.append(
            ["employee", _text(r["key"]), label, "di_staff"] + [_num(raw.get(x)) for x in ("value", "low", "high", "n")]
        )
    for by in ("device", "employee"):
        for r in (view["pos"] or {}).get("by_" + by, ()):
            fig = r["conversion"] or {}
            for name in ("transactions", "polls", "matched", "unmatched_polls", "unmatched_sales"):
                lines.append(
                    ["pos_" + by, _text(r["key"]), _text(r.get("label") or ""), name, str(r[name]), "", "", ""]
                )
            lines.append(
                ["pos_" + by, _text(r["key"]), _text(r.get("label") or ""), "exact_conversion"]
                + [_num(fig.get(x)) for x in ("value", "low", "high", "n")]
            )
    for f in view["fms"]:
        lines.append(["force_majeure", f["id"], f["status"], "period_ms", str(f["start_ms"]), "", str(f["end_ms"]), ""])
    return lines


@router.get("/office.csv")
def office_csv(request: Request):
    with context(request, "reports") as c:
        view, errors, form = _office(c, request.query_params)
        if errors or view is None:
            return _bad(errors)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["section", "key", "label", "figure", "value", "low", "high", "n"])
        w.writerows(csv_lines(view))
        name = "office-%s-%s_%s.csv" % (form["site"], form["from"] or "start", form["to"] or "now")
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="%s"' % name},
        )
