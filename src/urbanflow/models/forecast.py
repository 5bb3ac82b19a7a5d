"""Forecasts as a long table: ``sensor_id, issued_at, target_time, horizon_steps, value``.

A forecast issued "as of T" uses the input window that ends with the reading at T
(inclusive); step h targets ``T + h × frequency``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from urbanflow.data.dataset import CityDataset
from urbanflow.data.timegrid import parse_local_time
from urbanflow.data.windows import batches
from urbanflow.errors import ConfigError, DataError
from urbanflow.models.base import Forecaster
from urbanflow.models.conformal import (
    Calibration,
    OnlineConformal,
    interval_columns,
    replay_batch,
)


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


def predict_samples(model: Forecaster, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
    """``[s h n]`` forecasts of the samples at ``times``, predicted in batches of 256.

    Parameters
    ----------
    model
        A fitted forecaster.
    dataset
        The data it forecasts.
    times
        ``[s]`` sample times: inputs end at ``t - 1``.
    """
    times = np.asarray(times, dtype=np.int64)
    parts = [model.predict(dataset, batch) for batch in batches(times, 256)]
    if not parts:
        return np.zeros((0, model.horizon, dataset.num_sensors), dtype=np.float32)
    return np.concatenate(parts)


def replayed_intervals(
    model: Forecaster,
    dataset: CityDataset,
    samples: np.ndarray,
    levels: Sequence[float],
    calibration: Calibration | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``([s h n], [s K h n], [s K h n])`` forecasts and interval bounds of ``samples``, by
    replaying the online conformal update from the calibration cutoff in time order.

    Parameters
    ----------
    model
        A fitted forecaster.
    dataset
        The data to forecast from; it must contain the calibration's cutoff time.
    samples
        ``[s]`` sample times, none before the cutoff.
    levels
        Interval levels in percent.
    calibration
        The model's conformal calibration (a bundle's ``calibration_``).
    """
    if calibration is None:
        raise ConfigError(
            "this model has no conformal calibration (an older bundle, or a validation part "
            "too short to calibrate); retrain it, with a longer validation part if needed, to "
            "get intervals"
        )
    calibration = calibration.rebased(dataset.timestamps)
    samples = np.asarray(samples, dtype=np.int64)
    if samples.min() < calibration.cutoff:
        first = dataset.timestamps[calibration.cutoff - 1]
        raise DataError(
            f"intervals start at issue time {first}: earlier issue times lie inside the "
            "validation part that calibrated them; ask for that time or later"
        )
    times = calibration.replay_times(model.input_len, int(samples.max()))
    kept = np.unique(samples)
    state = OnlineConformal(calibration, levels)
    readings = dataset.readings[..., 0]
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    size = replay_batch_size(model.horizon, dataset.num_sensors, len(levels))
    for batch in batches(times, size):  # the replay's memory is one batch's, not the span's
        forecasts = model.predict(dataset, batch)
        lower, upper = replay_batch(state, forecasts, batch, readings)
        rows = np.isin(batch, kept)
        if rows.any():
            parts.append((forecasts[rows], lower[rows], upper[rows]))
    forecasts, lower, upper = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    rows = np.searchsorted(kept, samples)
    return forecasts[rows], lower[rows], upper[rows]


REPLAY_BATCH_ELEMENTS = 2**24
"""Most numbers (forecasts and both bounds of every level) one batch of a replay holds."""


def replay_batch_size(horizon: int, num_sensors: int, num_levels: int) -> int:
    """Samples per batch of an interval replay: at most 256, and few enough that a batch's
    forecasts and bounds hold at most :data:`REPLAY_BATCH_ELEMENTS` numbers.

    Parameters
    ----------
    horizon
        ``H``, steps per forecast.
    num_sensors
        ``n``, sensors per forecast.
    num_levels
        ``K``, interval levels (each has a lower and an upper bound).
    """
    per_sample = horizon * num_sensors * (1 + 2 * num_levels)
    return max(1, min(256, REPLAY_BATCH_ELEMENTS // max(per_sample, 1)))


def forecast_table(
    model: Forecaster,
    dataset: CityDataset,
    issue_indices: np.ndarray,
    levels: Sequence[float] = (),
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """Long table of the model's forecasts issued at each of ``issue_indices``, with
    ``lower_L``, ``upper_L`` columns for each interval level ``L``.

    Parameters
    ----------
    model
        A fitted forecaster.
    dataset
        The data to forecast from, with the model's sensors.
    issue_indices
        ``[k]`` int step indices of the issue times ``T`` (from ``issue_indices``); the inputs end
        with the reading at ``T`` and step ``h`` targets ``T + h × frequency``.
    levels
        Interval levels in percent (default: none).
    calibration
        The model's conformal calibration; needed when ``levels`` are given.
    """
    issues = np.asarray(issue_indices, dtype=np.int64)
    samples = issues + 1  # sample time = issue index + 1
    if levels:
        values, lower, upper = replayed_intervals(model, dataset, samples, levels, calibration)
    else:
        values = predict_samples(model, dataset, samples)
    b, h, n = values.shape
    issued = dataset.timestamps[issues].repeat(h * n)  # keeps the time zone
    steps = np.tile(np.repeat(np.arange(1, h + 1), n), b)
    columns: dict[str, object] = {
        "sensor_id": np.tile(np.asarray(dataset.sensors.ids, dtype=object), b * h),
        "issued_at": issued,
        "target_time": issued + pd.to_timedelta(steps * dataset.step.value, unit="ns"),
        "horizon_steps": steps,
        "value": values.reshape(-1),
    }
    names = interval_columns(levels)
    for k in range(len(levels)):
        columns[names[2 * k]] = lower[:, k].reshape(-1)
        columns[names[2 * k + 1]] = upper[:, k].reshape(-1)
    return pd.DataFrame(columns)


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
