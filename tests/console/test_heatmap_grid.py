"""The hour x weekday grid (console/heatmap.py): local hours of the office, the report's rules
(invalid polls out, No/silent under confirmed force majeure out of DI-staff only), small cells
marked, and the cells adding up to the whole."""

import datetime as _dt
import zoneinfo

import kpi_core
from console import heatmap

MSK = zoneinfo.ZoneInfo("Europe/Moscow")
LA = zoneinfo.ZoneInfo("America/Los_Angeles")


def _ms(y, mo, d, h, mi, tz):
    return int(_dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp() * 1000)


def _poll(seq, at, answer, kind="staff", device="desk-1"):
    return {"site": "s", "device": device, "open_seq": seq, "opened_ms": at, "answer": answer, "kind": kind}


def test_polls_fall_into_the_offices_local_weekday_and_hour():
    monday_9 = _ms(2025, 3, 3, 9, 59, MSK)  # 06:59 UTC
    sunday_23 = _ms(2025, 3, 9, 23, 30, MSK)  # 20:30 UTC, still Sunday in Moscow
    cells = heatmap.grid([_poll(1, monday_9, "no"), _poll(2, sunday_23, None)], MSK, 0.8, 1)
    assert len(cells) == 7 * 24
    assert cells[(0, 9)]["polls"] == 1 and cells[(0, 9)]["di_staff"].value == 1.0
    assert cells[(6, 23)]["polls"] == 1 and cells[(6, 23)]["silent_share"].value == 1.0
    assert cells[(0, 6)]["polls"] == 0 and cells[(0, 6)]["di_staff"] is None


def test_local_hours_follow_daylight_saving_time():
    before = _ms(2025, 3, 7, 9, 0, LA)  # PST, UTC-8
    after = _ms(2025, 3, 10, 9, 0, LA)  # PDT, UTC-7: still 09 h local
    cells = heatmap.grid([_poll(1, before, "yes"), _poll(2, after, "yes")], LA, 0.8, 1)
    assert cells[(4, 9)]["polls"] == 1 and cells[(0, 9)]["polls"] == 1


def test_invalid_polls_and_confirmed_force_majeure_follow_the_reports_rules():
    at = _ms(2025, 3, 3, 10, 0, MSK)
    polls = [
        _poll(1, at, "no"),
        _poll(2, at + 60000, None),  # silent, under the confirmed period
        _poll(3, at + 120000, "no"),  # No, under the confirmed period
        _poll(4, at + 180000, "yes"),
        _poll(5, at + 240000, "no"),  # marked invalid
        _poll(6, at + 300000, "yes", kind="office", device="exit"),
    ]
    fm = [{"start": at + 30000, "end": at + 150000, "site": "s", "device": "desk-1"}]
    cell = heatmap.grid(polls, MSK, 0.8, 3, fm, {"s/desk-1/5"})[(0, 10)]
    assert cell["polls"] == 5 and cell["staff"] == 4
    expected = kpi_core.di_staff(kpi_core.PollCounts(yes=1, no=2, unsure=0, silent=1, fm_no=1, fm_silent=1), 0.8)
    assert cell["di_staff"] == expected and expected.value == 0.5  # (1 No) / (1 No + 1 Yes)
    assert cell["silent_share"].value == 1 / 5 and not cell["small"]


def test_cells_with_fewer_staff_polls_than_the_bound_are_small():
    at = _ms(2025, 3, 4, 12, 0, MSK)
    polls = [_poll(i, at + i * 1000, "yes") for i in range(4)]
    assert heatmap.grid(polls, MSK, 0.8, 5)[(1, 12)]["small"]
    assert not heatmap.grid(polls, MSK, 0.8, 4)[(1, 12)]["small"]
    assert heatmap.grid(polls, MSK, 0.8, 1)[(1, 13)]["small"]  # an empty cell is small too


def test_the_cells_add_up_to_the_whole():
    start = _ms(2025, 3, 3, 0, 0, MSK)
    answers = ["yes", "no", None, "unsure"]
    polls = [_poll(i, start + i * 37 * 60000, answers[i % 4]) for i in range(400)]
    cells = heatmap.grid(polls, MSK, 0.8, 1)
    whole = heatmap.total(polls, 0.8, 1)
    assert sum(c["polls"] for c in cells.values()) == whole["polls"] == 400
    assert sum(c["staff"] for c in cells.values()) == whole["staff"]
    assert whole["di_staff"].value == (100 + 0.8 * 100) / 400
