"""The report's pure compute step (gateway.report_core) against the simulator's ground truth.

A random World (simulator.world, seeded by hypothesis) is counted twice: by the truth
(simulator.check.report_kpis: what a person watching the video counts, figure by figure) and by
report_core.compute fed with the rows the gateway would have loaded for that world. Every figure
(value, interval, n) of the report by office and by employee must agree. The tallies a row is
computed from add up (the seam a rollup-based report will use)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import report_core, site
from simulator import check, pure, scenario, sitefile, truth

NOW = 1767225600000  # 2026-01-01: after every simulated day


def world_doc(seed, sites, days, k, fm_week, fm_confirm, invalid, split):
    data = {
        "scenario": {"name": "prop", "days": days},
        "method": {"k": k},
        "people": {
            "fm_per_panel_week": fm_week,
            "fm_confirm": fm_confirm,
            "invalid_share": invalid,
            "children_per_site_day": 1,
        },
        "defaults": {"shift": "split" if split else "day", "visitors_per_day": 40},
        "chain": {"sites": sites, "panels": [1, 3]},
    }
    w = pure.model_world(scenario.from_dict(data, seed=seed))
    return w, truth.build(w)


def history_of(world):
    """The settings history the gateway would hold after `rating site apply` of the world's file."""
    rows = site.plan([], site.parse(sitefile.site_toml(world)), NOW)
    return site.History([(kind, key, frm, 1, explicit, data) for kind, key, frm, explicit, data in rows])


def inputs_of(world, doc):
    """The rows gateway.report.load_inputs reads for this world once the expert's verdicts are in."""
    polls = [
        {
            "site": p["site"],
            "device": p["device"],
            "open_seq": p["open_seq"],
            "opened_ms": p["opened_at"],
            "answer": p["answer"],
            "kind": p["kind"],
            "question": p["kind"],  # the simulator's site file names each question by its kind
            "employee": p["employee"],
            "time_source": "device",
        }
        for p in doc["polls"]
    ]
    fms = [
        {
            "site": f["site"],
            "device": f["device"],
            "seq": f["seq"],
            "pressed_ms": f["start"],
            "start_ms": f["start"],
            "end_ms": f["end"],
            "employee": f["employee"],
        }
        for f in doc["fms"]
    ]
    counts = [
        {
            "site": c["site"],
            "device": "",
            "from_ms": c["from"],
            "to_ms": c["to"],
            "transactions": c["transactions"],
            "visitors": c["visitors"],
        }
        for c in doc["counts"]
    ]
    return report_core.Inputs(
        history=history_of(world),
        polls=polls,
        fms=fms,
        counts=counts,
        invalid=frozenset(report_core.poll_id(p) for p, t in zip(polls, doc["polls"], strict=True) if t["invalid"]),
        fm_periods=[
            {"start": f["start"], "end": f["end"], "site": f["site"], "device": f["device"]}
            for f in doc["fms"]
            if f["confirmed"]
        ],
        fm_status={
            (f["site"], f["device"], f["seq"]): "confirmed" if f["confirmed"] else "rejected" for f in doc["fms"]
        },
    )


WORLDS = dict(
    seed=st.integers(0, 10**6),
    sites=st.integers(1, 3),
    days=st.integers(1, 2),
    k=st.sampled_from([0.0, 0.5, 0.8, 1.0]),
    fm_week=st.sampled_from([0.0, 3.0, 10.0]),
    fm_confirm=st.floats(0, 1),
    invalid=st.sampled_from([0.0, 0.05, 0.3]),
    split=st.booleans(),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**WORLDS)
def test_the_report_counts_a_random_world_as_the_truth_does(seed, sites, days, k, fm_week, fm_confirm, invalid, split):
    world, doc = world_doc(seed, sites, days, k, fm_week, fm_confirm, invalid, split)
    inputs = inputs_of(world, doc)
    by_site = report_core.compute(inputs, report_core.Options(by="site", k=k, now_ms=NOW, lang="en"))
    by_emp = report_core.compute(inputs, report_core.Options(by="employee", k=k, now_ms=NOW, lang="en"))
    assert check.compare_report(check.report_kpis(doc), by_site, by_emp) == []
    assert by_site["total"]["polls"]["valid"] + by_site["total"]["polls"]["invalid"] == len(doc["polls"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), cut=st.floats(0, 1))
def test_tallies_of_disjoint_polls_add_up_to_the_tally_of_all(seed, cut):
    """A rollup keeps sums per panel, employee, question and hour: the row built from the sum
    of the parts' tallies is the row built from all the polls."""
    world, doc = world_doc(seed, 2, 1, 0.8, 6.0, 0.5, 0.05, True)
    inputs = inputs_of(world, doc)
    polls = [dict(p, contact=report_core.is_contact(inputs.history, p)) for p in inputs.polls]
    fms = list(inputs.fms)
    i, j = int(cut * len(polls)), int(cut * len(fms))
    counted = report_core.Counted.of(inputs.counts)
    tx, vis = counted.transactions or 0, counted.visitors or 0

    def part(transactions, visitors):
        return report_core.Counted(transactions, visitors, counted.tx, counted.vis)

    whole = report_core.tally_polls(polls, fms, inputs, counted)
    parts = report_core.tally_polls(polls[:i], fms[:j], inputs, part(tx // 2, vis // 3)) + report_core.tally_polls(
        polls[i:], fms[j:], inputs, part(tx - tx // 2, vis - vis // 3)
    )
    assert parts == whole
    head = {"key": "*", "label": "*", "period": "all", "period_start_ms": None, "period_end_ms": None}
    opts = report_core.Options(now_ms=NOW)
    assert report_core.row_dict(head, parts, opts, counted=counted) == report_core.row_dict(
        head, whole, opts, counted=counted
    )
    assert whole.scope.conversion_polls <= whole.contact <= whole.scope.polls
