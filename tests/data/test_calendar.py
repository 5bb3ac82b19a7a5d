"""Steps per day and calendar slots: one rounding (up) for every grid; holidays, the weekday
rule and day types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from urbanflow import CityDataset, DatasetMetadata, SensorGraph, Sensors
from urbanflow.data.calendar import (
    calendar_slots,
    check_holiday_region,
    day_types,
    holiday_flags,
    weekdays_usable,
)
from urbanflow.data.timegrid import steps_per_day
from urbanflow.errors import DataError


def seven_minute_city(days: int = 2) -> CityDataset:
    """Two sensors read every 7 minutes (205 steps end at 23:55, so a day has 206 slots)."""
    steps = days * 24 * 60 // 7
    return CityDataset(
        readings=np.arange(steps * 2, dtype=np.float32).reshape(steps, 2, 1),
        timestamps=pd.date_range("2024-01-01", periods=steps, freq="7min", tz="UTC"),
        sensors=Sensors(("a", "b"), np.zeros(2), np.zeros(2)),
        graph=SensorGraph.empty(2),
        metadata=DatasetMetadata(name="seven", frequency="7min"),
    )


@pytest.mark.parametrize(
    ("step", "expected"),
    [("5min", 288), ("7min", 206), ("1h", 24), ("25min", 58), ("1D", 1), ("2D", 1)],
)
def test_steps_per_day_rounds_up(step: str, expected: int) -> None:
    assert steps_per_day(pd.Timedelta(step)) == expected


def test_a_seven_minute_grid_has_206_steps_per_day_everywhere() -> None:
    city = seven_minute_city()
    assert city.steps_per_day == steps_per_day(city.step) == 206
    _, slot = calendar_slots(city.timestamps, city.step)
    assert slot.max() == 205  # the step starting 23:55 has a slot of its own
    assert city.timestamps[205].strftime("%H:%M") == "23:55" and slot[205] == 205


# --- holidays, the weekday rule and day types ---------------------------------------------


def test_holiday_flags_on_known_dates() -> None:
    stamps = pd.DatetimeIndex(["2024-07-04 12:00", "2024-07-05 12:00", "2024-01-06 10:00"])
    stamps = stamps.tz_localize("UTC")
    np.testing.assert_array_equal(holiday_flags(stamps, "US"), [True, False, False])
    # Epiphany is a holiday in Bavaria, not in Berlin nor nationally
    np.testing.assert_array_equal(holiday_flags(stamps, "DE", "BY"), [False, False, True])
    np.testing.assert_array_equal(holiday_flags(stamps, "DE", "BE"), [False, False, False])
    np.testing.assert_array_equal(holiday_flags(stamps, "DE"), [False, False, False])
    assert not holiday_flags(stamps, "").any()


def test_holiday_flags_read_the_local_date() -> None:
    # 2024-07-05 02:00 UTC is still 4 July in Los Angeles
    stamps = pd.DatetimeIndex(["2024-07-05 02:00"], tz="UTC").tz_convert("America/Los_Angeles")
    assert holiday_flags(stamps, "US").tolist() == [True]


def test_check_holiday_region_names_what_is_wrong() -> None:
    check_holiday_region("US")
    check_holiday_region("DE", "BY")
    with pytest.raises(DataError, match=r"^country 'XX' has no holiday calendar"):
        check_holiday_region("XX")
    with pytest.raises(DataError, match=r"^subdivision 'ZZ' of DE: .*give a valid code"):
        check_holiday_region("DE", "ZZ")


@pytest.mark.parametrize(("days", "usable"), [(14, True), (21, True), (13, False), (7, False)])
def test_weekdays_usable_when_every_weekday_is_seen_twice(days: int, usable: bool) -> None:
    stamps = pd.date_range("2024-01-01", periods=days * 24, freq="1h", tz="UTC")
    assert weekdays_usable(stamps) is usable


def test_day_types_count_a_holiday_as_a_sunday() -> None:
    # Wednesday 3 July, Thursday 4 July (Independence Day), Friday 5 July 2024
    stamps = pd.date_range("2024-07-03 12:00", periods=3, freq="1D", tz="America/New_York")
    np.testing.assert_array_equal(day_types(stamps, True), [2, 3, 4])
    np.testing.assert_array_equal(day_types(stamps, True, "US"), [2, 6, 4])
    without = day_types(stamps, False, "US")
    np.testing.assert_array_equal(without, [0, 0, 0])
    assert without.dtype == np.int64
