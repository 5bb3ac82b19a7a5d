"""Steps per day and calendar slots: one rounding (up) for every grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from urbanflow import CityDataset, DatasetMetadata, SensorGraph, Sensors
from urbanflow.data.calendar import calendar_slots
from urbanflow.data.timegrid import steps_per_day


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
