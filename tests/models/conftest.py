"""Dataset builders shared by the model tests: small synthetic cities built in memory."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from urbanflow import CityDataset, DatasetMetadata, SensorGraph, Sensors

DatasetBuilder = Callable[..., CityDataset]


def ring_graph(num_sensors: int) -> SensorGraph:
    """Each sensor linked both ways to its two neighbours on a ring."""
    matrix = np.zeros((num_sensors, num_sensors), dtype=np.float32)
    index = np.arange(num_sensors)
    matrix[index, (index + 1) % num_sensors] = 1.0
    matrix[(index + 1) % num_sensors, index] = 1.0
    return SensorGraph.from_dense(matrix)


def build_dataset(
    values: np.ndarray,
    *,
    start: str = "2024-01-01",  # a Monday
    frequency: str = "1h",
    timezone: str = "UTC",
    graph: SensorGraph | None = None,
) -> CityDataset:
    """A dataset from ``values: [t n]`` (one channel) on a regular grid from ``start``."""
    values = np.asarray(values, dtype=np.float32)
    steps, num_sensors = values.shape
    return CityDataset(
        readings=values[..., None],
        timestamps=pd.date_range(start, periods=steps, freq=frequency, tz=timezone),
        sensors=Sensors(
            ids=tuple(f"s{i}" for i in range(num_sensors)),
            latitude=np.zeros(num_sensors),
            longitude=np.zeros(num_sensors),
        ),
        graph=ring_graph(num_sensors) if graph is None else graph,
        metadata=DatasetMetadata(name="synthetic", frequency=frequency, timezone=timezone),
    )


def daily_sinusoids(days: int = 21, num_sensors: int = 8, noise: float = 0.3) -> np.ndarray:
    """``[t n]`` hourly readings: a daily sinusoid per sensor (own level, amplitude, phase)."""
    rng = np.random.default_rng(0)
    hours = np.arange(days * 24)[:, None]
    sensors = np.arange(num_sensors)
    level = 50.0 + 2.0 * sensors
    amplitude = 8.0 + sensors
    phase = 2 * np.pi * sensors / num_sensors
    signal = level + amplitude * np.sin(2 * np.pi * hours / 24 + phase)
    return signal + noise * rng.standard_normal(signal.shape)


@pytest.fixture
def make_dataset() -> DatasetBuilder:
    return build_dataset


@pytest.fixture
def city() -> CityDataset:
    """Three weeks of hourly daily sinusoids with small noise, 8 sensors on a ring."""
    return build_dataset(daily_sinusoids())


@pytest.fixture
def city_with_holes(city: CityDataset) -> CityDataset:
    """``city`` with 15 % of the readings missing, a sensor silent for two days and one never
    reporting at all."""
    rng = np.random.default_rng(1)
    values = city.readings[..., 0].copy()
    values[rng.random(values.shape) < 0.15] = np.nan
    values[100:148, 2] = np.nan
    values[:, 5] = np.nan
    return build_dataset(values)
