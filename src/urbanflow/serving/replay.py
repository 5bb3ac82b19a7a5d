"""Replay a dataset into a running service as a live feed.

Each step posts the readings of one time step to ``POST /v1/readings``, then asks
``GET /v1/forecasts`` for the forecast issued at that step, as a dashboard would. The service
scores each forecast when the readings it targeted arrive (``GET /v1/accuracy``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np

from urbanflow.data.dataset import CityDataset


def step_rows(dataset: CityDataset, step: int) -> list[dict[str, object]]:
    """The readings of one time step as ``POST /v1/readings`` rows (null: no reading)."""
    stamp = dataset.timestamps[step].isoformat()
    values = dataset.readings[step, :, 0]
    return [
        {
            "sensor_id": sensor_id,
            "timestamp": stamp,
            "value": None if np.isnan(value) else float(value),
        }
        for sensor_id, value in zip(dataset.sensors.ids, values, strict=True)
    ]


@dataclass(frozen=True)
class ReplayStep:
    index: int
    timestamp: str
    forecast_status: int


def replay(
    client: httpx.Client,
    dataset: CityDataset,
    steps: range,
    pace: float,
    on_step: Callable[[ReplayStep], None] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Post ``steps`` one by one, ``pace`` steps a second (0: as fast as possible)."""
    interval = 1.0 / pace if pace > 0 else 0.0
    next_due = time.monotonic()
    for index in steps:
        rows = step_rows(dataset, index)
        answer = client.post("/v1/readings", json=rows, headers=headers)
        answer.raise_for_status()
        forecast = client.get("/v1/forecasts")
        if on_step is not None:
            on_step(ReplayStep(index, str(rows[0]["timestamp"]), forecast.status_code))
        next_due += interval
        time.sleep(max(0.0, next_due - time.monotonic()))
