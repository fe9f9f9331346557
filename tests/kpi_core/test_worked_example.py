"""The worked example of docs/kpi.md, number by number (if this fails, fix the page too)."""

import pytest

from kpi_core import (
    PollCounts,
    bottleneck,
    count_polls,
    di_office,
    di_staff,
    eli,
    exact_conversion,
    flags,
    fm_rate,
    visitor_coverage,
)

STAFF = PollCounts(yes=120, no=20, unsure=12, silent=48, fm_no=6, fm_silent=10)
OFFICE = PollCounts(yes=70, no=25, unsure=15, silent=40)
LOYALTY = PollCounts(yes=90, no=15, unsure=25, silent=30)


def test_staff_counts_from_records():
    # 204 polls; 4 invalid (one of each answer); a confirmed period [1000, 2000) holding
    # 6 No and 10 silent; the rejected report is simply not passed.
    recs, i = [], 0

    def add(answer, n, at):
        nonlocal i
        for _ in range(n):
            i += 1
            recs.append({"id": i, "answer": answer, "opened_at": at})

    add("yes", 121, 0)
    add("no", 15, 0)
    add("no", 6, 1500)
    add("unsure", 13, 0)
    add(None, 39, 0)
    add(None, 10, 1999)
    invalid = {1, 122, 143, 156}  # first yes, first no, first unsure, first silent
    assert [recs[j - 1]["answer"] for j in sorted(invalid)] == ["yes", "no", "unsure", None]
    assert len(recs) == 204
    assert count_polls(recs, fm_periods=[(1000, 2000)], invalid=invalid) == STAFF


def test_di_staff():
    f = di_staff(STAFF)
    assert f.n == 184
    assert f.value == pytest.approx(44.4 / 184) and round(f.value, 4) == 0.2413
    assert (round(f.low, 4), round(f.high, 4)) == (0.1852, 0.3080)
    assert str(f) == "24 % (19-31 %, n=184)"
    assert di_office(STAFF).value == pytest.approx(58.4 / 200)
    assert "%.0f" % (di_office(STAFF).value * 100) == "29"


def test_di_office():
    f = di_office(OFFICE)
    assert f.value == pytest.approx(0.38)
    assert (round(f.low, 4), round(f.high, 4)) == (0.3062, 0.4598)
    assert str(f) == "38 % (31-46 %, n=150)"


def test_eli():
    f = eli(LOYALTY)
    assert f.value == pytest.approx(51 / 160)
    m_low, m_high = (f.low + 1) / 2, (f.high + 1) / 2
    assert (round(m_low, 4), round(m_high, 4)) == (0.5830, 0.7283)
    assert str(f) == "+32 % (+17 to +46 %, n=160)"


def test_representativeness_and_flags():
    conv, cov, fmr = exact_conversion(200, 640), visitor_coverage(200, 900), fm_rate(2, 204)
    assert str(conv) == "31 % (28-35 %, n=640)"
    assert round(cov.value * 100) == 22
    assert "%.1f" % (fmr.value * 100) == "1.0" and str(fmr).startswith("1.0 % (")
    fl = flags(
        di_staff=di_staff(STAFF),
        di_office=di_office(OFFICE),
        eli=eli(LOYALTY),
        conversion=conv,
        coverage=cov,
        fm_rate=fmr,
    )
    assert [f.code for f in fl] == ["coverage_low"]


def test_bottleneck():
    s, o = di_staff(STAFF), di_office(OFFICE)
    assert round(o.value / s.value, 2) == 1.57
    assert round(1.5 * s.value * 100, 1) == 36.2
    assert bottleneck(s, o, ref_staff=0.15, ref_office=0.20).verdict == "office organisation"
