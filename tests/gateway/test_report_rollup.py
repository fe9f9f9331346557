"""The report from the rollups equals the report computed poll by poll, exactly, for any history
of events, verdicts, site-file changes and counts (gateway/rollup.py, gateway/report_sums.py;
the poll-by-poll report.build_report_by_polls is the reference)."""

import datetime as dt
import io
import json

import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, store_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import derive, report, report_export, review, rollup, store

HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = T0 + 12 * DAY
PANELS = [("msk", "desk-1"), ("msk", "exit"), ("msk", "door"), ("aaa", "desk-9")]

TWO_OFFICES = SITE_TOML.replace(
    "[[questions]]", '[[sites]]\nid = "aaa"\nname = "LA"\ntimezone = "America/Los_Angeles"\n\n[[questions]]', 1
) + ('\n[[panels]]\nsite = "aaa"\ndevice = "desk-9"\nquestion = "staff"\n')


def site_text(variant):
    """A site-file change: who is on desk-1's roster from when, whether the exit panel counts
    toward conversion, which question the door panel asks, who works at aaa/desk-9."""
    who, from_day, exit_contact, door_office, la_roster = variant
    text = TWO_OFFICES
    if exit_contact:
        text = text.replace(
            'device = "exit"\nquestion = "office"\n', 'device = "exit"\nquestion = "office"\nconversion = true\n'
        )
    if door_office:
        text = text.replace('device = "door"\nquestion = "loyalty"\n', 'device = "door"\nquestion = "office"\n')
    since = dt.datetime.fromtimestamp((T0 + from_day * DAY) / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text += '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "%s"\nfrom = %s\n' % (who, since)
    if la_roster:
        text += '\n[[roster]]\npanel = "aaa/desk-9"\nemployee = "petrov"\nfrom = 2025-01-01T00:00:00Z\n'
    return text


VARIANTS = st.tuples(
    st.sampled_from(["ivanova", "petrov"]), st.integers(0, 9), st.booleans(), st.booleans(), st.booleans()
)
ACTIONS = st.lists(
    st.tuples(
        st.integers(0, 11 * 24 * 60),  # minutes after T0 (sorted per panel below)
        st.sampled_from(["yes", "no", "unsure", None, None, "fm"]),
    ),
    max_size=25,
)


def wipe(db):
    derive._HISTORY.clear()  # the settings history is cached per revision, and revisions restart here
    if db.dialect == "sqlite":
        names = [r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        names = [
            r["table_name"]
            for r in db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        ]
    with db.transaction():
        for name in names:
            if "migration" not in name and not name.startswith("sqlite_"):
                db.execute("DELETE FROM %s" % name)


def panel_events(index, actions):
    site_id, device = PANELS[index]
    p = Panel(site_id, device, booted_at=T0 - 2 * DAY)
    for minute, what in sorted(actions, key=lambda a: a[0]):
        at = T0 + minute * MIN
        if what == "fm":
            p.press(at, "seller_long")
        else:
            p.poll(at, what)
    return p.events


def derive_all(db):
    derive.update(db, PANELS, NOW)


def give_verdict(db, data):
    polls, fms = derive.polls_and_reports(db)
    if data.draw(st.booleans(), "poll?") and polls:
        p = data.draw(st.sampled_from(polls), "poll")
        verdict = data.draw(st.sampled_from(["invalid", "valid"]), "poll verdict")
        review.record(db, review.POLL, review.format_id(p["site"], p["device"], p["open_seq"]), verdict, "x", "t", NOW)
    elif fms:
        f = data.draw(st.sampled_from(fms), "report")
        verdict = data.draw(st.sampled_from(["confirm", "reject"]), "fm verdict")
        span = None
        if verdict == "confirm" and data.draw(st.booleans(), "corrected period?"):
            a = data.draw(st.integers(-120, 120), "from") * MIN + f["start_ms"]
            span = (a, a + data.draw(st.integers(1, 600), "length") * MIN)
        review.record(
            db,
            review.FM,
            review.format_id(f["site"], f["device"], f["seq"]),
            verdict,
            "x",
            "t",
            NOW,
            *(span or (None, None)),
        )


def add_counts(db, data):
    site_id = data.draw(st.sampled_from(["msk", "aaa"]), "counts site")
    device = data.draw(st.sampled_from(["", "desk-1", "exit", "desk-9"]), "counts device")
    start = T0 + data.draw(st.integers(-60, 11 * 24 * 60), "counts from") * MIN
    length = data.draw(st.sampled_from([30, 60, 600, 24 * 60, 5 * 24 * 60]), "counts length") * MIN
    tx = data.draw(st.one_of(st.none(), st.integers(0, 30)), "tx")
    vis = (
        data.draw(st.integers(0, 60), "visitors") if tx is None else data.draw(st.one_of(st.none(), st.integers(0, 60)))
    )
    with db.transaction():
        store.insert_counts(db, site_id, device, start, start + length, tx, vis, "test", NOW)


def same_reports(db, **kw):
    by_sums = report.build_report(db, now_ms=NOW, **kw)
    by_polls = report.build_report_by_polls(db, now_ms=NOW, **kw)
    if by_sums != by_polls:
        for part in ("rows", "total", "bottleneck"):
            a, b = by_sums[part], by_polls[part]
            if a != b:
                for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b], strict=False):
                    if x != y:
                        diff = {k: (x.get(k), y.get(k)) for k in set(x) | set(y) if x.get(k) != y.get(k)}
                        raise AssertionError("%s %s: %s (rows %d vs %d)" % (kw, part, diff, len(a), len(b)))
        assert by_sums == by_polls, kw
    same_streamed(db, by_polls, **kw)


def same_streamed(db, by_polls, **kw):
    """The streamed report (rows made as they are written) writes the same text, CSV and JSON."""
    for write, render in (
        (report_export.write_table, report_export.render_table),
        (report_export.write_csv, report_export.render_csv),
        (report_export.write_json, lambda r: json.dumps(r, ensure_ascii=False, indent=2) + "\n"),
    ):
        out = io.StringIO()
        write(report.build_report(db, now_ms=NOW, stream=True, **kw), out)
        text = out.getvalue()
        assert (text.rstrip() + "\n" if write is report_export.write_table else text) == render(by_polls), kw


RANGES = st.one_of(
    st.just((None, None)),
    st.tuples(st.integers(-DAY, 12 * DAY), st.integers(0, 12 * DAY)).map(lambda r: (T0 + r[0], T0 + r[0] + r[1])),
    st.tuples(st.integers(0, 12 * 24), st.integers(1, 12 * 24)).map(
        lambda r: (
            dt.datetime(2025, 1, 6) + dt.timedelta(hours=r[0]),
            dt.datetime(2025, 1, 6) + dt.timedelta(hours=r[0] + r[1]),
        )
    ),
)


# examples per backend: half of the earlier count in `make test`, ten times that in `make soak`
EXAMPLES = {"sqlite": 50, "postgresql": 15}
RUNS = [pytest.param(1, id="short"), pytest.param(10, id="long", marks=pytest.mark.slow)]


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_report_from_rollups_equals_the_report_poll_by_poll(backend, run, request, tmp_path):
    from gateway import schema

    url = "sqlite:///%s" % (tmp_path / "r.db") if backend == "sqlite" else request.getfixturevalue("pg_store_url")
    db = schema.open_database(url)

    @settings(
        max_examples=EXAMPLES[backend] * run,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        first=VARIANTS,
        actions=st.lists(ACTIONS, min_size=4, max_size=4),
        steps=st.lists(st.sampled_from(["events", "verdict", "site", "counts"]), max_size=12),
        data=st.data(),
    )
    def check(first, actions, steps, data):
        wipe(db)
        apply_site(db, site_text(first), T0 - DAY)
        # each panel's events arrive in chunks, in any order of chunks (late, out-of-order seqs)
        chunks = []
        for i, acts in enumerate(actions):
            events = panel_events(i, acts)
            cut = data.draw(st.integers(0, len(events)), "cut %d" % i)
            chunks += [c for c in (events[:cut], events[cut:]) if c]
        chunks = data.draw(st.permutations(chunks), "arrival order")
        applied = 1
        for step in steps:
            if step == "events" and chunks:
                store_events(db, chunks.pop())
            elif step == "verdict":
                give_verdict(db, data)
            elif step == "site":
                applied += 1
                apply_site(db, site_text(data.draw(VARIANTS, "change")), T0 + applied * HOUR)
            elif step == "counts":
                add_counts(db, data)
            if step in ("events", "site"):  # what the derive worker does; verdicts need no derivation
                derive_all(db)
        while chunks:
            store_events(db, chunks.pop())
        derive_all(db)
        for _ in range(data.draw(st.integers(0, 3), "late verdicts")):
            give_verdict(db, data)  # on any day: the rollup follows at once, with no derivation
        for _ in range(data.draw(st.integers(0, 3), "late counts")):
            add_counts(db, data)
        for by in report.BYS:
            for period in report.PERIODS:
                same_reports(db, by=by, period=period)
        for _ in range(3):
            start, end = data.draw(RANGES, "range")
            same_reports(
                db,
                by=data.draw(st.sampled_from(report.BYS), "by"),
                period=data.draw(st.sampled_from(report.PERIODS), "period"),
                start=start,
                end=end,
                site=data.draw(st.sampled_from([None, None, "msk", "aaa"]), "site"),
                employee=data.draw(st.sampled_from([None, None, "ivanova", "petrov"]), "employee"),
                sort=data.draw(st.sampled_from([None, "di_staff", "exact_conversion"]), "sort"),
            )
        # the rollup is derived data: a rebuild recreates the same rows
        before = sorted(tuple(r.values()) for r in db.query("SELECT * FROM poll_rollup"))
        derive.rebuild(db, NOW)
        assert sorted(tuple(r.values()) for r in db.query("SELECT * FROM poll_rollup")) == before
        assert set(rollup.panels(db)) <= set(PANELS)

    try:
        check()
    finally:
        db.close()


def test_a_store_derived_before_the_rollups_asks_for_a_rebuild_and_a_rebuild_makes_them(tmp_path):
    from gw_site_support import sqlite_db

    db = sqlite_db(tmp_path)
    apply_site(db, TWO_OFFICES, T0 - DAY)
    store_events(db, panel_events(0, [(10, "yes"), (20, "no")]))
    derive_all(db)
    with db.transaction():
        rollup.clear(db)  # what migration 015 leaves: polls, no rollup rows
    with pytest.raises(ValueError, match=r"run `rating rebuild` once"):
        report.build_report(db, now_ms=NOW)
    derive.rebuild(db, NOW)
    assert report.build_report(db, now_ms=NOW) == report.build_report_by_polls(db, now_ms=NOW)


@pytest.mark.parametrize("device", ["", "desk-1"])
def test_an_invalid_contact_poll_in_counted_time_counts_toward_no_conversion(tmp_path, device):
    from gw_site_support import sqlite_db

    db = sqlite_db(tmp_path)
    apply_site(db, TWO_OFFICES, T0 - DAY)
    store_events(db, panel_events(0, [(10, "yes"), (20, "no"), (30, "yes"), (24 * 60 + 10, "yes")]))
    derive_all(db)
    with db.transaction():
        store.insert_counts(db, "msk", device, T0, T0 + 2 * DAY, 10, 20, "test", NOW)
    polls, _ = derive.polls_and_reports(db)
    review.record(db, review.POLL, review.format_id("msk", "desk-1", polls[1]["open_seq"]), "invalid", "x", "t", NOW)
    for by in ("site", "device", "employee"):
        for period in ("all", "day"):
            same_reports(db, by=by, period=period)
    total = report.build_report(db, now_ms=NOW)["total"]["polls"]
    assert (total["in_transactions_time"], total["in_visitors_time"], total["invalid"]) == (3, 3, 1)
