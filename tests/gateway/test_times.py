"""gateway.times: one way to read, parse and show a time, in the office's timezone with the zone
shown; one hours/days vocabulary for the site file and the simulator's scenarios."""

import datetime as dt

import pytest

from gateway import times
from simulator import scenario

MSK = times.zone("Europe/Moscow")
YEKT = times.zone("Asia/Yekaterinburg")
T = 1736143200000  # 2025-01-06T06:00:00Z = 09:00 in Moscow


def test_a_time_is_shown_in_the_offices_zone_with_the_zone_named():
    assert times.format_time(T, MSK) == "2025-01-06 09:00:00 MSK"
    assert times.format_time(T, times.UTC) == "2025-01-06 06:00:00 UTC"
    # the tz database has no letters for Yekaterinburg ("+05"): say the offset
    assert times.format_time(T, YEKT) == "2025-01-06 11:00:00 UTC+05"
    assert times.format_time(None, MSK) == "-"
    assert times.format_span(T, T + 15 * 60000, MSK) == "2025-01-06 09:00:00-09:15:00 MSK"


def test_a_time_typed_without_an_offset_is_read_in_the_offices_zone():
    assert times.parse_instant("2025-01-06T09:00:00", MSK) == T
    assert times.parse_instant("2025-01-06T06:00:00Z") == T
    assert times.parse_instant(T) == T
    with pytest.raises(ValueError, match="no UTC offset"):
        times.parse_instant("2025-01-06T09:00:00")
    assert times.parse_bound("2025-01-06", MSK) == T - 9 * 3600000
    assert times.parse_bound("2025-01-06", MSK, end=True) == T + 15 * 3600000
    assert times.parse_bound("2025-01-06T09:00", MSK) == T
    assert times.parse_bound(str(T), MSK) == T
    local = times.parse_bound("2025-01-06", MSK, local=True)
    assert local == dt.datetime(2025, 1, 6) and times.at(local, MSK) == T - 9 * 3600000
    with pytest.raises(ValueError):
        times.parse_bound("2025-13-06", MSK)


def test_since_is_an_age_or_a_time_in_the_offices_zone():
    assert times.parse_since("2h", T, MSK) == T - 7200000
    assert times.parse_since("1.5h", T, MSK) == T - 5400000
    assert times.parse_since("2025-01-06T09:00", T, MSK) == T
    with pytest.raises(ValueError):
        times.parse_since("yesterday", T, MSK)


def test_hours_and_days_have_one_rule_for_site_files_and_scenarios():
    assert times.parse_hours("09:00-14:00") == (540, 840)
    assert times.parse_hours("22:00-06:00") == (1320, 360)  # crosses midnight
    assert times.parse_hours("18:00-23:59") == (1080, 1440)
    assert times.parse_hours(" 09:00 - 24:00 ") == (540, 1440)
    for bad in ("9-14", "09:00", "09:60-10:00", "25:00-26:00", "10:00-10:00", "09:00-14:00-15:00", 9):
        with pytest.raises(ValueError):
            times.parse_hours(bad)
    assert times.in_hours(1400, (1320, 360)) and times.in_hours(100, (1320, 360))
    assert not times.in_hours(700, (1320, 360))
    assert times.parse_days("mon-fri") == (0, 1, 2, 3, 4)
    assert times.parse_days(["sat", "mon"]) == (0, 5)
    assert times.parse_days(["mon-wed", "sun"]) == (0, 1, 2, 6)
    assert times.parse_days("fri-mon") == (0, 4, 5, 6)
    for bad in ("monday", [], ["mon", 1], "mon-xyz"):
        with pytest.raises(ValueError):
            times.parse_days(bad)
    # the scenario reads hours and days with the same parser ("18:00-23:59" used to be refused there)
    assert scenario.parse_hours("18:00-23:59", "x") == (1080, 1440)
    assert scenario.parse_days(["mon-fri"], "x") == {0, 1, 2, 3, 4}
    with pytest.raises(scenario.ScenarioError, match="before closing"):
        scenario.parse_hours("22:00-06:00", "site[0].hours")
