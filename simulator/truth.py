"""Ground truth: what a person watching the video would count, and the KPIs that follow (pure).

The truth is built from the people's intentions in the World (who asked whom, what the
customer pressed), not from the window builder, so comparing it with the gateway's polls is a
real check. Presses the system cannot know about (`Press.lost`: a press torn by a power cut,
events a full journal dropped) are taken out by simple, person-level rules:
- a lost opening press removes its poll; the poll's answers become unsolicited presses;
- a lost answer makes the next surviving press of that customer the answer, else silent;
- a lost late/child/extra press is simply not there;
- a lost force-majeure press removes that press from its episode.
KPIs come from kpi_core with the same counting function the gateway uses (count_polls).
"""

from typing import Any

import kpi_core
from kpi_core import count_polls


def effective(world):
    """-> (polls, fms, unsolicited) after removing what the system cannot know.

    polls: list of dicts with answer None for silent; unsolicited: {(site, device): n}."""
    polls = [dict(p, extra_presses=0) for p in world.polls]
    fms = [dict(f, presses=list(f["presses"])) for f in world.fms]
    unsolicited = {}
    by_poll = {}
    for key, presses in world.presses.items():
        unsolicited.setdefault(key, 0)
        for pr in presses:
            if pr.role in ("child", "late", "victim", "held"):  # held: a gaming seller's chord
                if not pr.lost:
                    unsolicited[key] += 1
            elif pr.poll is not None:
                by_poll.setdefault(pr.poll, []).append(pr)
            elif pr.fm is not None:
                f = fms[pr.fm]
                if pr.lost:
                    ev_t = pr.t + world.scenario.firmware["long_ms"]
                    if ev_t in f["presses"]:
                        f["presses"].remove(ev_t)
                else:
                    f.setdefault("seqs", []).append(pr.seq)
    gone = set()
    for idx, presses in by_poll.items():
        p = polls[idx]
        opens = [x for x in presses if x.role in ("open", "dup") and not x.lost]
        answers = [x for x in presses if x.role in ("answer", "extra") and not x.lost]
        if not opens:
            gone.add(idx)
            unsolicited[(p["site"], p["device"])] += len(answers)
            continue
        first_open = min(opens, key=lambda x: x.t)
        p["opened_at"] = first_open.t + first_open.hold
        p["open_seq"] = first_open.seq
        if answers:
            p["answer"] = answers[0].ev
            p["extra_presses"] = len(answers) - 1
        else:
            p["answer"] = None
    polls = [p for i, p in enumerate(polls) if i not in gone]
    for f in fms:
        if f["presses"]:
            f["start"] = f["presses"][0]
            f["end"] = f["presses"][-1] + world.scenario.method["fm_minutes"] * 60000
    fms = [f for f in fms if f["presses"]]
    for f in fms:
        f["seq"] = f.get("seqs", [None])[0]
    return polls, fms, unsolicited


def _fig(f):
    return {"value": f.value, "low": f.low, "high": f.high, "n": f.n, "reason": f.reason}


def kpis(world, polls, fms):
    """Truth KPIs per employee, per site and overall, as plain JSON-able dicts."""
    k = world.scenario.method["k"]
    confirmed = [
        {"start": f["start"], "end": f["end"], "site": f["site"], "device": f["device"]} for f in fms if f["confirmed"]
    ]
    invalid = [p["id"] for p in polls if p["invalid"]]
    tx = {}
    vis = {}
    for c in world.counts:
        tx[c["site"]] = tx.get(c["site"], 0) + c["transactions"]
        vis[c["site"]] = vis.get(c["site"], 0) + c["visitors"]

    def block(sel, fm_reports, transactions=None, visitors=None):
        chosen = [p for p in polls if sel(p)]
        out: dict[str, Any] = {"polls": len(chosen)}
        for kind, fn in (("staff", kpi_core.di_staff), ("office", kpi_core.di_office), ("loyalty", kpi_core.eli)):
            these = [p for p in chosen if p["kind"] == kind]
            if not these:
                continue
            c = count_polls(these, confirmed, invalid, key=lambda r: r["id"])
            out[kind] = {
                "counts": c.as_dict(),
                {"staff": "di_staff", "office": "di_office", "loyalty": "eli"}[kind]: _fig(fn(c, k)),
            }
        valid = len([p for p in chosen if not p["invalid"]])
        out["valid_polls"] = valid
        out["fm_reports"] = fm_reports
        out["fm_rate"] = _fig(kpi_core.fm_rate(fm_reports, len(chosen))) if chosen or fm_reports else None
        if transactions is not None:
            out["transactions"] = transactions
            out["exact_conversion"] = _fig(kpi_core.exact_conversion(len(chosen), transactions))
        if visitors is not None:
            out["visitors"] = visitors
            out["visitor_coverage"] = _fig(kpi_core.visitor_coverage(len(chosen), visitors))
        return out

    employees = sorted({p["employee"] for p in polls} | set(world.transactions_by_employee))
    by_emp = {
        e: block(
            lambda p, e=e: p["employee"] == e,
            sum(1 for f in fms if f["employee"] == e),
            transactions=world.transactions_by_employee.get(e, 0),
        )
        for e in employees
    }
    by_site = {
        s["id"]: block(
            lambda p, s=s: p["site"] == s["id"],
            sum(1 for f in fms if f["site"] == s["id"]),
            transactions=tx.get(s["id"], 0),
            visitors=vis.get(s["id"], 0),
        )
        for s in world.scenario.sites
    }
    overall = block(lambda p: True, len(fms), transactions=sum(tx.values()), visitors=sum(vis.values()))
    return {"k": k, "employee": by_emp, "site": by_site, "all": overall}


def build(world):
    """The truth document (JSON-able): everything that happened and the KPIs that follow."""
    polls, fms, unsolicited = effective(world)
    sc = world.scenario
    lost = [
        dict(pr.as_dict(), site=key[0], device=key[1])
        for key, presses in world.presses.items()
        for pr in presses
        if pr.lost
    ]
    return {
        "scenario": {
            "name": sc.meta["name"],
            "seed": sc.seed,
            "days": sc.days,
            "start_ms": sc.start_ms,
            "end_ms": sc.end_ms,
            "sites": [s["id"] for s in sc.sites],
            "method": sc.method,
        },
        "totals": {
            "presses": sum(len(v) for v in world.presses.values()),
            "polls": len(polls),
            "silent": sum(1 for p in polls if p["answer"] is None),
            "invalid": sum(1 for p in polls if p["invalid"]),
            "fm_reports": len(fms),
            "fm_confirmed": sum(1 for f in fms if f["confirmed"]),
            "unsolicited": sum(unsolicited.values()),
            "lost_presses": len(lost),
            "visitors": sum(c["visitors"] for c in world.counts),
            "transactions": sum(c["transactions"] for c in world.counts),
        },
        "polls": polls,
        "fms": fms,
        "unsolicited": {"%s/%s" % k: v for k, v in sorted(unsolicited.items())},
        "lost": lost,
        "counts": world.counts,
        "roster": world.roster,
        "faults": world.faults,
        "kpi": kpis(world, polls, fms),
    }
