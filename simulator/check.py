"""Compare what the system derived with the truth; a list of readable differences (pure).

Polls are matched by identity site/device/seq (the seq of the opening press), force-majeure
reports by the seq of their first long press. Times may differ by what the firmware adds
(debounce, the button poll period): TIME_SLACK_MS.
"""

TIME_SLACK_MS = 500
MAX_LINES = 40


def _key(site, device, seq):
    return "%s/%s/%s" % (site, device, seq)


def compare(truth_doc, system):
    """-> [str]: empty when polls, answers, extra presses, force-majeure reports and
    unsolicited counts all agree."""
    diffs = []
    want = {_key(p["site"], p["device"], p["open_seq"]): p for p in truth_doc["polls"]}
    got = {_key(p["site"], p["device"], p["open_seq"]): p for p in system["polls"]}
    for k in sorted(set(want) - set(got)):
        p = want[k]
        diffs.append(
            "poll %s missing: truth has a %s poll opened at %s (employee %s)"
            % (k, p["answer"] or "silent", _when(p["opened_at"]), p["employee"])
        )
    for k in sorted(set(got) - set(want)):
        p = got[k]
        diffs.append(
            "poll %s extra: the system made a %s poll at %s that nobody asked for"
            % (k, p["answer"] or "silent", _when(p["opened_at"]))
        )
    for k in sorted(set(want) & set(got)):
        a, b = want[k], got[k]
        if a["answer"] != b["answer"]:
            diffs.append("poll %s answer: truth %s, system %s" % (k, a["answer"] or "silent", b["answer"] or "silent"))
        if a.get("extra_presses", 0) != b.get("extra_presses", 0):
            diffs.append(
                "poll %s extra presses: truth %d, system %d" % (k, a.get("extra_presses", 0), b.get("extra_presses", 0))
            )
        if abs(a["opened_at"] - b["opened_at"]) > TIME_SLACK_MS:
            diffs.append(
                "poll %s opened at: truth %s, system %s (%+d ms)"
                % (k, _when(a["opened_at"]), _when(b["opened_at"]), b["opened_at"] - a["opened_at"])
            )
    wf = {_key(f["site"], f["device"], f["seq"]): f for f in truth_doc["fms"]}
    gf = {_key(f["site"], f["device"], f["seq"]): f for f in system["fms"]}
    for k in sorted(set(wf) - set(gf)):
        diffs.append("force majeure %s missing (truth: %s..%s)" % (k, _when(wf[k]["start"]), _when(wf[k]["end"])))
    for k in sorted(set(gf) - set(wf)):
        diffs.append("force majeure %s extra (system: %s..%s)" % (k, _when(gf[k]["start"]), _when(gf[k]["end"])))
    for k in sorted(set(wf) & set(gf)):
        a, b = wf[k], gf[k]
        for edge in ("start", "end"):
            if abs(a[edge] - b[edge]) > TIME_SLACK_MS:
                diffs.append("force majeure %s %s: truth %s, system %s" % (k, edge, _when(a[edge]), _when(b[edge])))
    for k, n in sorted(truth_doc["unsolicited"].items()):
        m = system["unsolicited"].get(k, 0)
        if n != m:
            diffs.append("unsolicited presses on %s: truth %d, system %d" % (k, n, m))
    return diffs


def compare_kpis(truth_kpi, system_kpi, path="kpi"):
    """Recursive comparison of two KPI dicts (numbers within 1e-9)."""
    diffs = []
    if isinstance(truth_kpi, dict) and isinstance(system_kpi, dict):
        for k in sorted(set(truth_kpi) | set(system_kpi), key=str):
            if k not in system_kpi:
                diffs.append("%s.%s: missing in the system's figures (truth %r)" % (path, k, truth_kpi[k]))
            elif k not in truth_kpi:
                continue  # the system may say more than the truth knows
            else:
                diffs += compare_kpis(truth_kpi[k], system_kpi[k], "%s.%s" % (path, k))
    elif isinstance(truth_kpi, float) or isinstance(system_kpi, float):
        if not (
            isinstance(truth_kpi, (int, float))
            and isinstance(system_kpi, (int, float))
            and abs(truth_kpi - system_kpi) <= 1e-9
        ):
            diffs.append("%s: truth %r, system %r" % (path, truth_kpi, system_kpi))
    elif truth_kpi != system_kpi:
        diffs.append("%s: truth %r, system %r" % (path, truth_kpi, system_kpi))
    return diffs


def _when(ms):
    import datetime as dt

    if ms is None:
        return "?"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def render(diffs, limit=MAX_LINES):
    lines = diffs[:limit]
    if len(diffs) > limit:
        lines.append("... and %d more differences" % (len(diffs) - limit))
    return "\n".join("  - " + d for d in lines)


# ---- KPIs as the gateway's report shows them, from the truth ---------------------------------

REPORT_FIGURES = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")


def _fig(f):
    return None if f is None else {"value": f.value, "low": f.low, "high": f.high, "n": f.n}


def _report_row(polls, fms, periods, invalid, k, tx=None, vis=None, counted=(), kinds=("staff", "office", "loyalty")):
    """The figures of one report row (docs/report-json.md rules) from truth polls/fms.

    Conversion and coverage count the valid polls of staff-question panels (the site file's
    default) opened inside a counted interval (`counted`: [(from, to)]); kinds: the question
    kinds whose figures the row shows (people: staff only)."""
    import kpi_core

    records = [dict(p, id="%s/%s/%s" % (p["site"], p["device"], p["open_seq"])) for p in polls]
    valid = [r for r in records if r["id"] not in invalid]
    out = {"polls": {"valid": len(valid), "invalid": len(records) - len(valid), "by_kind": {}}}
    figs = {}
    for kind, fn, name in (
        ("staff", kpi_core.di_staff, "di_staff"),
        ("office", kpi_core.di_office, "di_office"),
        ("loyalty", kpi_core.eli, "eli"),
    ):
        if kind not in kinds:
            continue
        of_kind = [r for r in records if r["kind"] == kind]
        if not of_kind:
            continue
        c = kpi_core.count_polls(
            of_kind, fm_periods=periods if kind == "staff" else (), invalid=invalid, key=lambda r: r["id"]
        )
        out["polls"]["by_kind"][kind] = c.as_dict()
        figs[name] = fn(c, k)
    n = len(valid)
    contact = [r for r in valid if r["kind"] == "staff" and any(a <= r["opened_at"] < b for a, b in counted)]
    figs["exact_conversion"] = kpi_core.exact_conversion(len(contact), tx) if tx is not None else None
    figs["visitor_coverage"] = kpi_core.visitor_coverage(len(contact), vis) if vis is not None else None
    figs["fm_rate"] = kpi_core.fm_rate(len(fms), n) if (n or fms) else None
    out["kpi"] = {name: _fig(figs.get(name)) for name in REPORT_FIGURES}
    out["counts"] = {"transactions": tx, "visitors": vis}
    return out


def report_kpis(truth_doc):
    """{"site": {id: row}, "employee": {id: row}}: what `rating report --by site/employee` must
    show for the truth (valid polls, confirmed FM periods, site-wide counts)."""
    k = truth_doc["scenario"]["method"]["k"]
    polls, fms = truth_doc["polls"], truth_doc["fms"]
    invalid = {"%s/%s/%s" % (p["site"], p["device"], p["open_seq"]) for p in polls if p["invalid"]}
    periods = [
        {"start": f["start"], "end": f["end"], "site": f["site"], "device": f["device"]} for f in fms if f["confirmed"]
    ]
    tx, vis, counted = {}, {}, {}
    for c in truth_doc["counts"]:
        tx[c["site"]] = tx.get(c["site"], 0) + c["transactions"]
        vis[c["site"]] = vis.get(c["site"], 0) + c["visitors"]
        counted.setdefault(c["site"], []).append((c["from"], c["to"]))
    out = {"site": {}, "employee": {}}
    for site in sorted({p["site"] for p in polls} | {f["site"] for f in fms} | set(tx)):
        out["site"][site] = _report_row(
            [p for p in polls if p["site"] == site],
            [f for f in fms if f["site"] == site],
            periods,
            invalid,
            k,
            tx.get(site),
            vis.get(site),
            counted.get(site, ()),
        )
    for emp in sorted({p["employee"] for p in polls} | {f["employee"] for f in fms}):
        out["employee"][emp] = _report_row(
            [p for p in polls if p["employee"] == emp],
            [f for f in fms if f["employee"] == emp],
            periods,
            invalid,
            k,
            kinds=("staff",),
        )
    return out


def _system_row(row):
    return {
        "polls": row["polls"],
        "counts": row["counts"],
        "kpi": {
            name: (
                None
                if row["kpi"].get(name) is None
                else {x: row["kpi"][name][x] for x in ("value", "low", "high", "n")}
            )
            for name in REPORT_FIGURES
        },
    }


def compare_report(truth_figs, report_site, report_employee):
    """Differences between the truth's figures and gateway.report.build_report rows."""
    diffs = []
    for scope, rep in (("site", report_site), ("employee", report_employee)):
        got = {r["key"]: _system_row(r) for r in rep["rows"]}
        want = truth_figs[scope]
        for key in sorted(set(want) | set(got)):
            if key not in got:
                diffs.append(
                    "report by %s: no row for %s (truth has %d polls)"
                    % (scope, key, want[key]["polls"]["valid"] + want[key]["polls"]["invalid"])
                )
            elif key not in want:
                diffs.append("report by %s: row %r the truth does not have" % (scope, key))
            else:
                diffs += compare_kpis(want[key], got[key], "report.%s[%s]" % (scope, key))
    return diffs
