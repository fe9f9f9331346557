"""A streamed report (gateway/report_stream.py: rows made as the SQL sums arrive, ordered by the
report's key) writes the same bytes as the report built whole, on SQLite and PostgreSQL, also
where the databases' own text order is not Python's: office ids whose "office/panel" keys sort
otherwise than (office, panel) ("a-c/x" before "a/x"), and ids a locale collation orders
otherwise than code points (PostgreSQL's en_US puts "ab" before "a-c", code points "a-c" first). The random histories are in
tests/gateway/test_report_rollup.py (same_streamed)."""

import io
import json

import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, store_events

from gateway import derive, report, report_export, report_stream

DAY = 24 * 60 * MIN
PANELS = [("a", "desk-1"), ("a-c", "desk-1"), ("ab", "desk-1"), ("a", "desk-2"), ("a-c", "exit")]


def chain_text():
    text = SITE_TOML.split("[[panels]]", 1)[0]
    for site_id in ("a", "a-c", "ab"):
        text += '\n[[sites]]\nid = "%s"\nname = "Office %s"\ntimezone = "Europe/Moscow"\n' % (site_id, site_id)
    for i, (site_id, device) in enumerate(PANELS):
        question = "office" if device == "exit" else "staff"
        text += '\n[[panels]]\nsite = "%s"\ndevice = "%s"\nquestion = "%s"\n' % (site_id, device, question)
        if question == "staff":
            who = ("ivanova", "petrov")[i % 2]
            text += '\n[[roster]]\npanel = "%s/%s"\nemployee = "%s"\nfrom = 2025-01-01T00:00:00Z\n' % (
                site_id,
                device,
                who,
            )
    return text


@pytest.fixture
def chain_db(any_db):
    apply_site(any_db, chain_text(), T0 - DAY)
    for i, (site_id, device) in enumerate(PANELS):
        p = Panel(site_id, device, booted_at=T0 - 2 * DAY)
        for n in range(12):
            p.poll(T0 + (n * 17 + i) * 60 * MIN, ("yes", "no", None, "unsure")[(n + i) % 4])
        store_events(any_db, p.events)
    derive.update(any_db, PANELS, T0 + 12 * DAY)
    return any_db


@pytest.mark.parametrize("sort", [None, "di_staff", "eli"])  # ranked: the sums read period by period
@pytest.mark.parametrize("by", ["site", "device", "employee"])
def test_a_streamed_report_writes_the_whole_reports_bytes_in_code_point_order(chain_db, by, sort):
    for period in ("day", "week", "all"):
        kw = dict(by=by, period=period, now_ms=T0 + 12 * DAY, sort=sort)
        whole = report.build_report(chain_db, **kw)
        keys = [r["key"] for r in whole["rows"]]
        assert len(set(keys)) > 1
        for write, render in (
            (report_export.write_table, report_export.render_table),
            (report_export.write_csv, report_export.render_csv),
            (report_export.write_json, lambda r: json.dumps(r, ensure_ascii=False, indent=2) + "\n"),
        ):
            out = io.StringIO()
            streamed = report.build_report(chain_db, stream=True, **kw)
            assert streamed["rows"].gi_code.co_filename == report_stream.__file__  # made as the sums arrive
            write(streamed, out)
            text = out.getvalue()
            assert (text.rstrip() + "\n" if write is report_export.write_table else text) == render(whole), (by, period)


def test_a_streamed_report_cut_short_leaves_the_connection_out_of_its_read_only_transaction(chain_db):
    streamed = report.build_report(chain_db, by="device", period="day", now_ms=T0 + 12 * DAY, stream=True)
    rows = streamed["rows"]
    assert next(rows)["key"] == "a-c/desk-1"  # "a-c/..." sorts before "a/..." in code points
    rows.close()  # the writer failed after the first row
    with chain_db.transaction():  # a write right after: no read-only transaction left open
        chain_db.execute("DELETE FROM poll_rollup WHERE site = ?", ("a",))
    rest = report.build_report(chain_db, by="device", period="all", now_ms=T0 + 12 * DAY, stream=True)
    assert [r["key"] for r in rest["rows"]] == ["a-c/desk-1", "a-c/exit", "ab/desk-1"]
