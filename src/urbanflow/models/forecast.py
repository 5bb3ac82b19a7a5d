"""Forecasts as a long table: ``sensor_id, issued_at, target_time, horizon_steps, value``.

A forecast issued "as of T" uses the input window that ends with the reading at T
(inclusive); step h targets ``T + h × frequency``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanflow.data.dataset import CityDataset
from urbanflow.data.timegrid import parse_local_time
from urbanflow.data.windows import batches
from urbanflow.errors import DataError
from urbanflow.models.base import Forecaster

FORECAST_COLUMNS = ("sensor_id", "issued_at", "target_time", "horizon_steps", "value")


def issue_index(dataset: CityDataset, when: str | pd.Timestamp, input_len: int) -> int:
    """Index of the reading at ``when`` (an issue time); naive text is the dataset's zone."""
    stamp = parse_local_time(when, dataset.timestamps.tz, "issue time")
    position = dataset.timestamps.get_indexer([stamp])[0]
    if position < 0:
        raise DataError(
            f"issue time {stamp} is not a time step of {dataset.metadata.name} "
            f"({dataset.timestamps[0]} to {dataset.timestamps[-1]}, "
            f"every {dataset.metadata.frequency})"
        )
    if position < input_len - 1:
        first = dataset.timestamps[input_len - 1]
        raise DataError(
            f"issue time {stamp} leaves fewer than {input_len} readings before it; "
            f"use {first} or later"
        )
    return int(position)


def forecast_table(
    model: Forecaster, dataset: CityDataset, issue_indices: np.ndarray
) -> pd.DataFrame:
    """Long table of the model's forecasts issued at each of ``issue_indices`` (batched)."""
    frames = []
    step = dataset.step
    for batch in batches(np.asarray(issue_indices, dtype=np.int64), 256):
        values = model.predict(dataset, batch + 1)  # [b h n]; sample time = issue index + 1
        b, h, n = values.shape
        issued = dataset.timestamps[batch].repeat(h * n)  # keeps the time zone
        steps = np.tile(np.repeat(np.arange(1, h + 1), n), b)
        frames.append(
            pd.DataFrame(
                {
                    "sensor_id": np.tile(np.asarray(dataset.sensors.ids, dtype=object), b * h),
                    "issued_at": issued,
                    "target_time": issued + pd.to_timedelta(steps * step.value, unit="ns"),
                    "horizon_steps": steps,
                    "value": values.reshape(-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def write_forecast(table: pd.DataFrame, path: Path) -> Path:
    """CSV or Parquet by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        raise DataError(f"{path.name}: write forecasts to a .csv or .parquet file")
    return path
