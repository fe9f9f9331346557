"""A plain-text KPI report from polls + force-majeure periods + counts (pure, kpi_core only).

Used by `rating demo` and `rating sim run` to print what the run produced: one table per
employee (DI-staff, conversion) and one per office (DI-office, ELI, coverage, FM rate), each
figure with its 95 % interval and n, the flags, and the bottleneck diagnosis per office.
"""

from typing import Any

import kpi_core

REF_STAFF = 0.10  # reference DIs for the bottleneck diagnosis (a site file may set its own)
REF_OFFICE = 0.12


def figures(polls, fms, counts, k, names=None, tx_by_employee=None):
    """-> {"employee": {id: {...}}, "site": {id: {...}}} with kpi_core Figures and flags.

    polls: dicts with site, device, employee, kind, answer, opened_at, id, invalid.
    fms: dicts with site, device, employee, start, end, confirmed."""
    confirmed = [f for f in fms if f.get("confirmed")]
    invalid = [p["id"] for p in polls if p.get("invalid")]
    key = lambda r: r["id"]  # noqa: E731
    out = {"employee": {}, "site": {}}
    tx, vis = {}, {}
    for c in counts:
        tx[c["site"]] = tx.get(c["site"], 0) + c["transactions"]
        vis[c["site"]] = vis.get(c["site"], 0) + c["visitors"]
    for emp in sorted({p["employee"] for p in polls if p["kind"] == "staff"}):
        mine = [p for p in polls if p["employee"] == emp]
        staff = [p for p in mine if p["kind"] == "staff"]
        c = kpi_core.count_polls(staff, confirmed, invalid, key=key)
        di = kpi_core.di_staff(c, k)
        conv = kpi_core.exact_conversion(len(mine), (tx_by_employee or {}).get(emp)) if tx_by_employee else None
        fmr = kpi_core.fm_rate(sum(1 for f in fms if f["employee"] == emp), len(mine))
        out["employee"][emp] = {
            "name": (names or {}).get(emp, emp),
            "site": staff[0]["site"],
            "counts": c,
            "di_staff": di,
            "conversion": conv,
            "fm_rate": fmr,
            "flags": kpi_core.flags(di_staff=di, conversion=conv, fm_rate=fmr),
        }
    for site in sorted({p["site"] for p in polls} | set(tx)):
        mine = [p for p in polls if p["site"] == site]
        row: dict[str, Any] = {"polls": len(mine)}
        for kind, fn, name in (
            ("staff", kpi_core.di_staff, "di_staff"),
            ("office", kpi_core.di_office, "di_office"),
            ("loyalty", kpi_core.eli, "eli"),
        ):
            these = [p for p in mine if p["kind"] == kind]
            row[name] = fn(kpi_core.count_polls(these, confirmed, invalid, key=key), k) if these else None
        row["conversion"] = kpi_core.exact_conversion(len(mine), tx.get(site))
        row["coverage"] = kpi_core.visitor_coverage(len(mine), vis.get(site))
        row["fm_rate"] = kpi_core.fm_rate(sum(1 for f in fms if f["site"] == site), len(mine))
        row["flags"] = kpi_core.flags(
            di_staff=row["di_staff"],
            di_office=row["di_office"],
            eli=row["eli"],
            conversion=row["conversion"],
            coverage=row["coverage"],
            fm_rate=row["fm_rate"],
        )
        row["bottleneck"] = (
            kpi_core.bottleneck(row["di_staff"], row["di_office"], REF_STAFF, REF_OFFICE)
            if row["di_staff"] is not None and row["di_office"] is not None
            else None
        )
        out["site"][site] = row
    return out


def _f(fig):
    if fig is None:
        return "-"
    return fig.format() if hasattr(fig, "format") else str(fig)


def render(figs):
    lines = ["Per employee (staff question)", ""]
    hdr = "%-22s %-16s %-28s %-26s %s" % ("employee", "site", "DI-staff (ИНК@Персонал)", "exact conversion", "FM rate")
    lines += [hdr, "-" * len(hdr)]
    for r in figs["employee"].values():
        lines.append(
            "%-22s %-16s %-28s %-26s %s"
            % (r["name"][:22], r["site"][:16], _f(r["di_staff"]), _f(r["conversion"]), _f(r["fm_rate"]))
        )
    lines += ["", "Per office", ""]
    hdr = "%-16s %-24s %-24s %-24s %-22s %s" % (
        "site",
        "DI-staff",
        "DI-office (ИНК@Офис)",
        "ELI (ИЭЛ)",
        "visitor coverage",
        "FM rate",
    )
    lines += [hdr, "-" * len(hdr)]
    for site, r in figs["site"].items():
        lines.append(
            "%-16s %-24s %-24s %-24s %-22s %s"
            % (site[:16], _f(r["di_staff"]), _f(r["di_office"]), _f(r["eli"]), _f(r["coverage"]), _f(r["fm_rate"]))
        )
    lines += ["", "Flags and bottleneck diagnosis", ""]
    for r in figs["employee"].values():
        for fl in r["flags"]:
            lines.append("  %s: %s" % (r["name"], fl.message_en))
    for site, r in figs["site"].items():
        for fl in r["flags"]:
            lines.append("  %s: %s" % (site, fl.message_en))
        if r["bottleneck"] is not None:
            lines.append("  %s: bottleneck: %s. %s" % (site, r["bottleneck"].verdict, r["bottleneck"].reason_en))
    return "\n".join(lines)
