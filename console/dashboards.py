"""The dashboards: trends (/trends), the hour x weekday heat map (/heatmap) and the fair
rankings (/rankings), each within the account's office scope, each also as CSV (`.csv`).

Trends and rankings are `gateway.report.build_report` (its public signature only), so their
numbers are those of `rating report` for the same office, rows and period. The heat map needs
hours of the week, which build_report does not group by: its grid is counted by console/heatmap.py
over the office's polls of the range (derive's read API), with the report's k and small-sample
bound."""

import csv
import datetime as _dt
import io
import zoneinfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from console import charts, data, heatmap
from console.web import context
from gateway import derive, review

router = APIRouter(include_in_schema=False)

FIGURES = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")
TREND_PERIODS = ("week", "month")
TREND_BYS = ("site", "employee")
RANK_FIGURES = ("di_staff", "di_office")
RANK_PERIODS = ("all", "week", "month")
MAX_SERIES = 10  # the colour-blind palette's colours; more rows stay in the table
TREND_WEEKS = 8  # the default range: eight weeks (or six months) up to the newest poll's week
TREND_MONTHS = 6
HEAT_WEEKS = 4
HEAT_METRICS = ("di_staff", "polls", "silent_share")
# heat-map colours (console.css .heat-0 ... .heat-5, viridis: readable by colour-blind people)
SHARE_BINS = (0.05, 0.10, 0.20, 0.30, 0.50)


def _default_range(c, params, site, weeks=None, months=None):
    """from/to when neither is given: whole weeks (or months) ending with the newest poll's week."""
    if params.get("from") or params.get("to"):
        return params
    _monday, sunday = data.default_week(c, c.sites if not site else {site})
    if months:
        first = sunday.replace(day=1)
        for _ in range(months - 1):
            first = (first - _dt.timedelta(days=1)).replace(day=1)
        start = first
    else:
        start = sunday - _dt.timedelta(days=7 * (weeks or 1) - 1)
    return dict(params, **{"from": start.isoformat(), "to": sunday.isoformat()})


def _choice(params, name, allowed, default):
    value = params.get(name) or default
    return (value, None) if value in allowed else (default, name)


def _zone_note(c, rows, site):
    """'Europe/Moscow (MSK)' of the rows' offices; several when they differ."""
    zones = {r["timezone"] for r in rows if r.get("timezone")}
    if site:
        zones.add(str(c.tz(site)))
    out = []
    for z in sorted(zones):
        abbrev = _dt.datetime.fromtimestamp(c.now_ms / 1000.0, zoneinfo.ZoneInfo(z)).tzname()
        out.append("%s (%s)" % (z, abbrev) if abbrev and abbrev != z else z)
    return ", ".join(out)


def _csv_response(header, lines, name):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(lines)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="%s"' % name},
    )


def _text(x):
    """A name as a CSV cell a spreadsheet will not run as a formula."""
    x = x or ""
    return "'" + x if x[:1] in ("=", "+", "-", "@", "\t", "\r") else x


def _num(x):
    return "" if x is None else repr(x)


# --- trends ---------------------------------------------------------------------------------------


def _trends(c, params):
    params = dict(params)
    by, bad_by = _choice(params, "by", TREND_BYS, "site")
    period, bad_period = _choice(params, "period", TREND_PERIODS, "week")
    kpi, bad_kpi = _choice(params, "kpi", FIGURES, "di_staff")
    params.update(by=by, period=period)
    site_hint = (params.get("site") or "").strip() or None
    params = _default_range(c, params, site_hint, weeks=TREND_WEEKS, months=TREND_MONTHS if period == "month" else None)
    kwargs, errors, form = data.report_params(c, params)
    for name, bad in (("by", bad_by), ("period", bad_period), ("kpi", bad_kpi)):
        if bad:
            errors[name] = c.t("err_choice")
    form["kpi"] = kpi
    rep = None if errors else data.build_report(c, kwargs)
    return rep, errors, form, kpi


def trend_view(c, rep, kpi):
    """(periods, series for the chart, table rows) of a report split by week or month."""
    min_n = rep["thresholds"]["min_n"]
    periods = sorted({r["period"] for r in rep["rows"]})
    series, table = {}, []
    for r in rep["rows"]:
        fig = r["kpi"].get(kpi)
        small = fig is not None and fig.get("value") is not None and (fig.get("n") or 0) < min_n
        table.append({"row": r, "fig": fig, "small": small})
        s = series.setdefault(r["key"], {"name": r["label"] or r["key"] or "—", "key": r["key"], "points": {}})
        if fig is not None:
            s["points"][r["period"]] = dict(fig, small=small)
    ordered = [series[k] for k in sorted(series) if series[k]["points"]]  # rows without the figure: no line
    return periods, ordered, table


@router.get("/trends")
def trends_page(request: Request):
    with context(request, "reports") as c:
        rep, errors, form, kpi = _trends(c, request.query_params)
        chart = periods = table = series = None
        if rep is not None:
            periods, series, table = trend_view(c, rep, kpi)
            if series:
                svg = charts.trend_svg(
                    series[:MAX_SERIES],
                    periods,
                    c.t("kpi_" + kpi),
                    "%",
                    signed=kpi == "eli",
                    small_label=c.t("small_sample_mark", n=rep["thresholds"]["min_n"]),
                    band_label=c.t("interval_band"),
                )
                chart = charts.data_uri(svg)
        return c.render(
            "trends.html",
            400 if errors else 200,
            rep=rep,
            errors=errors,
            form=form,
            offices=c.offices(),
            figures=FIGURES,
            kpi=kpi,
            chart=chart,
            periods=periods,
            series=series,
            table=table,
            max_series=MAX_SERIES,
            zones=_zone_note(c, rep["rows"], form["site"]) if rep else "",
            query=request.url.query,
        )


@router.get("/trends.csv")
def trends_csv(request: Request):
    with context(request, "reports") as c:
        rep, errors, _form, kpi = _trends(c, request.query_params)
        if errors or rep is None:
            return Response("; ".join(errors.values()) + "\n", status_code=400, media_type="text/plain")
        _periods, _series, table = trend_view(c, rep, kpi)
        lines = []
        for t in table:
            r, f = t["row"], t["fig"] or {}
            lines.append(
                [
                    _text(r["key"]),
                    _text(r["label"]),
                    r["period"],
                    r["period_start_local"] or "",
                    r["timezone"] or "",
                    kpi,
                    _num(f.get("value")),
                    _num(f.get("low")),
                    _num(f.get("high")),
                    _num(f.get("n")),
                    "1" if t["small"] else "0",
                ]
            )
        header = ["key", "label", "period", "period_start", "timezone", "kpi", "value", "low", "high", "n", "small"]
        return _csv_response(header, lines, "trends-%s.csv" % kpi)


# --- rankings -------------------------------------------------------------------------------------


def _rankings(c, params):
    params = dict(params)
    by, bad_by = _choice(params, "by", TREND_BYS, "employee")
    period, bad_period = _choice(params, "period", RANK_PERIODS, "all")
    kpi, bad_kpi = _choice(params, "kpi", RANK_FIGURES, "di_staff")
    params.update(by=by, period=period)
    kwargs, errors, form = data.report_params(c, params)
    for name, bad in (("by", bad_by), ("period", bad_period), ("kpi", bad_kpi)):
        if bad:
            errors[name] = c.t("err_choice")
    form["kpi"] = kpi
    rep = None if errors else data.build_report(c, dict(kwargs, sort=kpi))
    return rep, errors, form, kpi


@router.get("/rankings")
def rankings_page(request: Request):
    with context(request, "reports") as c:
        rep, errors, form, kpi = _rankings(c, request.query_params)
        return c.render(
            "rankings.html",
            400 if errors else 200,
            rep=rep,
            errors=errors,
            form=form,
            offices=c.offices(),
            kpi=kpi,
            zones=_zone_note(c, rep["rows"], form["site"]) if rep else "",
            query=request.url.query,
        )


@router.get("/rankings.csv")
def rankings_csv(request: Request):
    with context(request, "reports") as c:
        rep, errors, _form, kpi = _rankings(c, request.query_params)
        if errors or rep is None:
            return Response("; ".join(errors.values()) + "\n", status_code=400, media_type="text/plain")
        lines = []
        for r in rep["rows"]:
            fair, raw = r.get("fair") or {}, r["kpi"].get(kpi) or {}
            lines.append(
                [r["period"], r["rank_range"] or "", _text(r["key"]), _text(r["label"])]
                + [_num(fair.get(x)) for x in ("value", "low", "high", "n")]
                + [_num(raw.get(x)) for x in ("value", "low", "high", "n")]
                + [r["rank_note"] or ""]
            )
        header = ["period", "rank_range", "key", "label", "fair", "fair_low", "fair_high", "n"]
        header += [kpi, kpi + "_low", kpi + "_high", kpi + "_n", "rank_note"]
        return _csv_response(header, lines, "rankings-%s.csv" % kpi)


# --- heat map -------------------------------------------------------------------------------------


def _heat_bin(metric, value, top):
    if value is None:
        return None
    if metric == "polls":
        if not top:
            return 0
        return min(5, int(6 * value / (top + 1)))
    return sum(1 for b in SHARE_BINS if value >= b)


def _heatmap(c, params):
    params = dict(params)
    metric, bad_metric = _choice(params, "metric", HEAT_METRICS, "di_staff")
    site = (params.get("site") or "").strip() or (c.offices()[0][0] if c.offices() else "")
    params.update(site=site, by="site", period="all")
    params = _default_range(c, params, site, weeks=HEAT_WEEKS)
    kwargs, errors, form = data.report_params(c, params)
    if bad_metric:
        errors["metric"] = c.t("err_choice")
    form["metric"] = metric
    if errors or not site:
        return None, errors, form, metric
    rep = data.build_report(c, kwargs)  # the office's figures of the range, its k and min_n
    tz = c.tz(site)
    start = _dt.datetime.fromisoformat(form["from"]).replace(tzinfo=tz)
    end = (_dt.datetime.fromisoformat(form["to"]) + _dt.timedelta(days=1)).replace(tzinfo=tz)
    from_ms, to_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    polls, _fms = derive.polls_and_reports(c.db, site, from_ms, to_ms)
    site_fms = [f for f in derive.force_majeure_reports(c.db) if f["site"] == site]
    keys = [(review.POLL, p["site"], p["device"], p["open_seq"]) for p in polls]
    keys += [(review.FM, f["site"], f["device"], f["seq"]) for f in site_fms]
    verdicts = review.latest_for(c.db, keys) if keys else {}
    invalid = review.invalid_poll_ids(verdicts)
    periods = review.confirmed_periods(site_fms, verdicts)
    k, min_n = rep["k"], rep["thresholds"]["min_n"]
    cells = heatmap.grid(polls, tz, k, min_n, periods, invalid)
    whole = heatmap.total(polls, k, min_n, periods, invalid)
    top = max(cell["polls"] for cell in cells.values())
    view = {"cells": cells, "whole": whole, "top": top, "tz": tz, "min_n": min_n, "k": k, "report": rep}
    return view, errors, form, metric


@router.get("/heatmap")
def heatmap_page(request: Request):
    with context(request, "reports") as c:
        view, errors, form, metric = _heatmap(c, request.query_params)
        return c.render(
            "heatmap.html",
            400 if errors else 200,
            view=view,
            errors=errors,
            form=form,
            offices=c.offices(),
            metric=metric,
            metrics=HEAT_METRICS,
            heat_bin=_heat_bin,
            share_bins=SHARE_BINS,
            zones=_zone_note(c, [], form["site"]) if form.get("site") else "",
            query=request.url.query,
        )


@router.get("/heatmap.csv")
def heatmap_csv(request: Request):
    with context(request, "reports") as c:
        view, errors, form, _metric = _heatmap(c, request.query_params)
        if errors or view is None:
            return Response("; ".join(errors.values()) + "\n", status_code=400, media_type="text/plain")
        lines = []
        for (day, hour), cell in sorted(view["cells"].items()):
            di, silent = cell["di_staff"], cell["silent_share"]
            lines.append(
                [day + 1, hour, cell["polls"], cell["staff"]]
                + [_num(getattr(di, x, None)) for x in ("value", "low", "high")]
                + [_num(getattr(silent, "value", None)), "1" if cell["small"] else "0"]
            )
        header = ["iso_weekday", "hour", "polls", "staff_polls", "di_staff", "di_staff_low", "di_staff_high"]
        header += ["silent_share", "small"]
        return _csv_response(header, lines, "heatmap-%s.csv" % form["site"])
