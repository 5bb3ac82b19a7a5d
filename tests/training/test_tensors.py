"""Training tensors gather the same windows as ``data.windows`` and share its day length."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from urbanflow import CityDataset, DatasetMetadata, SensorGraph, Sensors
from urbanflow.data.catalog import load_dataset
from urbanflow.data.windows import input_windows, target_windows
from urbanflow.models.registry import make_model
from urbanflow.training.tensors import Scaler, SeriesTensors


def seven_minute_city(steps: int = 2 * 206) -> CityDataset:
    rng = np.random.default_rng(0)
    readings = rng.normal(50, 5, (steps, 3, 1)).astype(np.float32)
    readings[rng.random(readings.shape) < 0.1] = np.nan
    return CityDataset(
        readings=readings,
        timestamps=pd.date_range("2024-01-01", periods=steps, freq="7min", tz="UTC"),
        sensors=Sensors(("a", "b", "c"), np.zeros(3), np.zeros(3)),
        graph=SensorGraph.empty(3),
        metadata=DatasetMetadata(name="seven", frequency="7min"),
    )


def test_tensor_windows_are_the_numpy_windows() -> None:
    city = seven_minute_city()
    series = SeriesTensors.build(city, Scaler(0.0, 1.0), 4, torch.device("cpu"))
    times = np.array([6, 100, 300])
    x, tod, _ = series.inputs(torch.as_tensor(times), 6)
    y, present = series.targets(torch.as_tensor(times), 4)
    inputs = input_windows(city.readings[..., 0], times, 6)
    targets = target_windows(city.readings, times, 4)
    np.testing.assert_array_equal(x[..., 0].numpy(), np.nan_to_num(inputs))
    np.testing.assert_array_equal(present.numpy(), ~np.isnan(targets))
    np.testing.assert_array_equal(y.numpy(), np.nan_to_num(targets))
    np.testing.assert_array_equal(tod[0].numpy(), np.arange(6))  # slots of steps 0..5
    assert int(series.tod.max()) == 205


def test_a_network_on_a_seven_minute_grid_has_206_day_slots() -> None:
    model = make_model("stid", input_len=6, horizon=2, max_epochs=1, batch_size=64)
    model.fit(seven_minute_city())
    assert model.spec_.steps_per_day == 206


def test_input_series_holds_only_the_input_windows_of_the_full_series() -> None:
    city = seven_minute_city()
    city = replace(city, metadata=replace(city.metadata, country="US"))  # 2024-01-01 a holiday
    scaler = Scaler(48.0, 4.0)
    full = SeriesTensors.build(city, scaler, 4, torch.device("cpu"))
    times = np.array([300, 6, 7, 8, 7, city.num_steps, 150])  # unsorted, repeated, the last
    series, rows = SeriesTensors.for_inputs(city, times, 6, scaler, 4, torch.device("cpu"))
    assert series.readings.shape[0] == 6 * 4 + 2  # three lone windows; 6, 7, 8 share 8 steps
    for got, expected in zip(
        series.inputs(torch.as_tensor(rows), 6),
        full.inputs(torch.as_tensor(times), 6),
        strict=True,
    ):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert int(full.dow[:206].max()) == 6  # the holiday reads as a Sunday in both
    assert series.tod.shape[0] == series.readings.shape[0] + 4  # the calendar runs H past


def test_the_readings_are_held_once_shared_with_the_dataset():
    city = load_dataset("los-loop")
    series = SeriesTensors.build(city, Scaler.fit(city.readings[..., 0]), 12, torch.device("cpu"))
    assert np.shares_memory(series.readings.numpy(), city.readings)


def test_input_series_of_consecutive_samples_shares_the_readings() -> None:
    city = seven_minute_city()
    times = np.arange(50, 80)
    series, rows = SeriesTensors.for_inputs(
        city, times, 6, Scaler(48.0, 4.0), 4, torch.device("cpu")
    )
    assert np.shares_memory(series.readings.numpy(), city.readings)  # no copy of the run
    np.testing.assert_array_equal(rows, times - 44)  # row 0 is step 44
