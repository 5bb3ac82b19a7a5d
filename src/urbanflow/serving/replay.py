"""Replay a dataset into a running service as a live feed.

Each step posts the readings of one time step to ``POST /v1/readings``, then asks
``GET /v1/forecasts`` for the forecast of that step, as a dashboard would. The service issues
and stores a forecast for each complete step and scores it when the readings it targeted
arrive (``GET /v1/accuracy``); the replay ends once the service has issued the last step (or
after ``settle`` seconds), so that the scores cover the whole replay.
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
    settle: float = 30.0,
) -> None:
    """Post ``steps`` one by one, ``pace`` steps a second (0: as fast as possible), then wait
    up to ``settle`` seconds for the service to issue the newest step."""
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
    wait_issued(client, settle)


def wait_issued(client: httpx.Client, timeout: float) -> bool:
    """Wait until ``GET /health`` shows a forecast issued at the newest reading's time; False
    after ``timeout`` seconds (the newest step may also lack readings to be complete)."""
    deadline = time.monotonic() + timeout
    while True:
        health = client.get("/health").json()
        if health.get("last_issued_at") == health.get("latest_reading_at"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
