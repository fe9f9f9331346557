"""derive.count_selected / selected_page (the console's drill-down): on SQLite and PostgreSQL,
the polls a selection counts are those the report counts for the figure (invalid polls left
out; DI-staff also leaves out the staff No/silent polls under confirmed force majeure), and
the pages cover them once each."""

import datetime as _dt

import pytest
from dashboard_support import build

from gateway import derive, report, review

pytestmark = pytest.mark.e2e

START, END = _dt.datetime(2025, 3, 3), _dt.datetime(2025, 3, 31)


def _selection(db, history, **extra):
    tz = history.tz("msk")
    lo = int(START.replace(tzinfo=tz).timestamp() * 1000)
    hi = int(END.replace(tzinfo=tz).timestamp() * 1000)
    fms = derive.office_reports(db, "msk")
    verdicts = review.latest_for(db, [(review.FM, f["site"], f["device"], f["seq"]) for f in fms])
    sel = {
        "site": "msk",
        "from_ms": lo,
        "to_ms": hi,
        "invalid": review.invalid_poll_ids_of(db, ["msk"], lo),
        "fm_periods": review.confirmed_periods(fms, verdicts),
    }
    sel.update(extra)
    return sel


def test_a_selection_counts_what_the_report_counts(any_db):
    from gateway import site

    build(any_db)
    history = site.load(any_db)
    rep = report.build_report_by_polls(any_db, site="msk", start=START, end=END, lang="en")
    row = rep["rows"][0]
    assert derive.count_selected(any_db, _selection(any_db, history)) == row["polls"]["valid"]
    assert derive.count_selected(any_db, _selection(any_db, history, what="invalid")) == row["polls"]["invalid"] == 1
    staff = _selection(any_db, history, kind="staff", exclude_fm=True)
    assert derive.count_selected(any_db, staff) == row["kpi"]["di_staff"]["n"]
    fm = derive.count_selected(any_db, dict(staff, what="fm"))
    assert fm == row["polls"]["by_kind"]["staff"]["fm_no"] + row["polls"]["by_kind"]["staff"]["fm_silent"] == 2
    office = _selection(any_db, history, kind="office")
    assert derive.count_selected(any_db, office) == row["kpi"]["di_office"]["n"]
    nobody = _selection(any_db, history, employee="")
    assert derive.count_selected(any_db, nobody) == derive.count_selected(any_db, dict(office))  # the exit panel


def test_pages_cover_the_selection_once_in_time_order(any_db):
    from gateway import site

    build(any_db)
    sel = _selection(any_db, site.load(any_db), what="all")
    total = derive.count_selected(any_db, sel)
    seen = []
    for offset in range(0, total + 7, 7):
        seen += derive.selected_page(any_db, sel, 7, offset)
    assert len(seen) == total == len({(p["device"], p["open_seq"]) for p in seen})
    assert [p["opened_ms"] for p in seen] == sorted(p["opened_ms"] for p in seen)
