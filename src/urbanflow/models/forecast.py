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
from urbanflow.errors import ConfigError, DataError
from urbanflow.models.base import Forecaster


def issue_index(dataset: CityDataset, when: str | pd.Timestamp, input_len: int) -> int:
    """Index of the reading at ``when`` (an issue time); naive text is the dataset's zone.

    Parameters
    ----------
    dataset
        The data the forecast reads.
    when
        The issue time ``T``: a timestamp, or text (naive text is in the dataset's time zone). It
        must be a step of the grid.
    input_len
        ``L``: ``T`` needs ``L`` readings up to and including it, else a DataError.
    """
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


def issue_indices(
    dataset: CityDataset,
    input_len: int,
    at: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> np.ndarray:
    """``[k]`` issue indices: the one at ``at``, every step from ``start`` to ``end``, or the
    last step when neither is given.

    Parameters
    ----------
    dataset
        The data the forecasts read.
    input_len
        ``L``: an issue time needs ``L`` readings up to and including it.
    at
        One issue time (naive text is the dataset's zone).
    start
        First issue time of a hindcast; goes with ``end``.
    end
        Last issue time of a hindcast, included.
    """
    if (start is None) != (end is None) or (at is not None and start is not None):
        raise ConfigError("give either --at T, or both --start T1 and --end T2")
    if start is not None and end is not None:
        first = issue_index(dataset, start, input_len)
        last = issue_index(dataset, end, input_len)
        if last < first:
            raise ConfigError(f"--end {end} is before --start {start}")
        return np.arange(first, last + 1)
    return np.array([issue_index(dataset, at or dataset.timestamps[-1], input_len)])


def forecast_table(
    model: Forecaster, dataset: CityDataset, issue_indices: np.ndarray
) -> pd.DataFrame:
    """Long table of the model's forecasts issued at each of ``issue_indices`` (batched).

    Parameters
    ----------
    model
        A fitted forecaster.
    dataset
        The data to forecast from, with the model's sensors.
    issue_indices
        ``[k]`` int step indices of the issue times ``T`` (from ``issue_indices``); the inputs end
        with the reading at ``T`` and step ``h`` targets ``T + h × frequency``.
    """
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
    """CSV or Parquet by the file's suffix.

    Parameters
    ----------
    table
        The long table of ``forecast_table``.
    path
        A ``.csv`` or ``.parquet`` file; its folder is created. Another suffix is a DataError.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        raise DataError(f"{path.name}: write forecasts to a .csv or .parquet file")
    return path
