"""Replay a dataset into a running service as a live feed, and score its live forecasts.

Each step posts the readings of one time step to ``POST /v1/readings``, then asks
``GET /v1/forecasts`` for the forecast issued at that step. When the readings of a later step
arrive, the forecasts that targeted it are scored: the live accuracy a control room sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class LiveAccuracy:
    """Running MAE per horizon step of live forecasts and of last-value forecasts issued at the
    same times, scored on the same readings as they arrive."""

    horizon: int
    pending: dict[str, dict[str, dict[int, tuple[float, float]]]] = field(default_factory=dict)
    errors: np.ndarray = field(init=False)
    last_value_errors: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.errors = np.zeros(self.horizon)
        self.last_value_errors = np.zeros(self.horizon)
        self.counts = np.zeros(self.horizon, dtype=np.int64)

    def remember(self, forecast: dict[str, object], latest: list[dict[str, object]]) -> None:
        """Keep a ``GET /v1/forecasts`` answer, and the last values ``latest`` (the readings at
        its issue time), until their target times arrive. Sensors without a reading at the
        issue time are not scored: both forecasts are judged on the same readings."""
        last = {row["sensor_id"]: row["value"] for row in latest if row["value"] is not None}
        for point in forecast["data"]:
            if point["sensor_id"] not in last:
                continue
            by_time = self.pending.setdefault(point["target_time"], {})
            by_sensor = by_time.setdefault(point["sensor_id"], {})
            by_sensor[point["horizon_steps"]] = (point["value"], last[point["sensor_id"]])

    def observe(self, rows: list[dict[str, object]]) -> None:
        """Score the forecasts that targeted these readings' time."""
        for row in rows:
            targets = self.pending.get(str(row["timestamp"]), {}).get(str(row["sensor_id"]), {})
            if row["value"] is None:
                continue
            actual = float(row["value"])
            for step, (value, last_value) in targets.items():
                self.errors[step - 1] += abs(value - actual)
                self.last_value_errors[step - 1] += abs(last_value - actual)
                self.counts[step - 1] += 1
        for row in rows[:1]:
            self.pending.pop(str(row["timestamp"]), None)

    def forget_scores(self) -> None:
        """Zero the scores but keep pending forecasts (e.g. after posting history)."""
        self.errors[:] = 0.0
        self.last_value_errors[:] = 0.0
        self.counts[:] = 0

    def mae(self, step: int) -> float:
        """The model's MAE at ``step`` (1-based) so far; NaN before any was scored."""
        count = self.counts[step - 1]
        return float(self.errors[step - 1] / count) if count else float("nan")

    def last_value_mae(self, step: int) -> float:
        """MAE of repeating the issue time's reading, on the same readings as :meth:`mae`."""
        count = self.counts[step - 1]
        return float(self.last_value_errors[step - 1] / count) if count else float("nan")


@dataclass(frozen=True)
class ReplayStep:
    index: int
    timestamp: str
    stored: int
    forecast_status: int


def replay(
    client: httpx.Client,
    dataset: CityDataset,
    steps: range,
    pace: float,
    accuracy: LiveAccuracy,
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
        accuracy.observe(rows)
        forecast = client.get("/v1/forecasts")
        if forecast.status_code == 200:
            accuracy.remember(forecast.json(), rows)
        if on_step is not None:
            on_step(
                ReplayStep(
                    index, str(rows[0]["timestamp"]), answer.json()["new"], forecast.status_code
                )
            )
        next_due += interval
        time.sleep(max(0.0, next_due - time.monotonic()))
