"""The T-GCN layout (Zhao et al., IEEE T-ITS 2019; e.g. Los-loop, SZ-taxi).

```
speed.csv       header: sensor ids; then one row per time step, no timestamps
adjacency.csv   no header: N × N weights, row = source sensor, in the speed columns' order
```
The rows carry no time, so the caller gives the ``start`` of the first row and the grid's
``frequency``. An optional locations CSV (``index,sensor_id,latitude,longitude``) adds
coordinates, matched by sensor id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.data.readers.common import (
    grid_from_start,
    is_number,
    normalise_id,
    one_channel_dataset,
    parse_numbers,
    read_csv,
    require_file,
    sensor_coordinates,
)
from urbanflow.data.timegrid import parse_frequency
from urbanflow.errors import DataError
from urbanflow.graph.builders import weighted_graph
from urbanflow.graph.graph import SensorGraph

# Los-loop (lehaifeng/T-GCN): 2012-03-01 00:00 to 2012-03-07 23:55, Los Angeles local time.
LOS_LOOP_START = "2012-03-01 00:00"
LOS_LOOP_TIMEZONE = "America/Los_Angeles"


def read_tgcn_csv(
    speed_csv: Path | str,
    adjacency_csv: Path | str,
    *,
    start: str,
    frequency: str = "5min",
    timezone: str = "UTC",
    locations_csv: Path | str | None = None,
    name: str = "tgcn",
    quantity: str = "speed",
    unit: str = "mph",
) -> CityDataset:
    """Read a T-GCN speed/adjacency CSV pair into a one-channel ``CityDataset``.

    ``readings``: ``[t n 1]``, empty cells NaN. Timestamps start at ``start`` (naive = local
    time in ``timezone``) and step by ``frequency`` in absolute time. Without
    ``locations_csv`` the coordinates are NaN. The graph holds every non-zero weight of the
    adjacency matrix (its diagonal gives self loops).

    Parameters
    ----------
    speed_csv
        Readings: a header of sensor ids, one row per step.
    adjacency_csv
        The ``[n n]`` weight matrix, no header.
    start
        Time of the first row; naive text is local time in ``timezone``.
    frequency
        The step; default ``5min``.
    timezone
        IANA time-zone name (``America/Los_Angeles``); default ``UTC``.
    locations_csv
        Sensor coordinates; default none (NaN).
    name
        The dataset's name; default ``tgcn``.
    quantity
        What the readings measure; default ``speed``.
    unit
        Their unit; default ``mph``.
    """
    speed_csv = require_file(speed_csv, "T-GCN speed CSV")
    adjacency_csv = require_file(adjacency_csv, "T-GCN adjacency CSV")
    sensor_ids, values = read_speed_table(speed_csv)
    graph = read_adjacency_matrix(adjacency_csv, len(sensor_ids))
    timestamps = grid_from_start(start, values.shape[0], frequency, timezone)
    sensors = Sensors(sensor_ids, *sensor_coordinates(locations_csv, sensor_ids))
    source = f"{speed_csv.name} (T-GCN layout)"
    about = DatasetMetadata(name, quantity, unit, timezone=timezone, source=source)
    step = parse_frequency(frequency)
    return one_channel_dataset(values, timestamps, sensors, graph, step=step, about=about)


def read_speed_table(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Sensor ids from the header and the ``[t n]`` float32 readings below it.

    Parameters
    ----------
    path
        The speed CSV.
    """
    header = read_csv(path, "T-GCN CSV", header=None, nrows=1, dtype=str)
    sensor_ids = tuple(normalise_id(cell) for cell in header.iloc[0].fillna(""))
    if "" in sensor_ids:
        raise DataError(
            f"{path}: header has an empty sensor id (column {sensor_ids.index('') + 1}); "
            "name every column with its sensor id"
        )
    looks_like_readings = [i for i in sensor_ids if "." in i and is_number(i)]
    if looks_like_readings:
        raise DataError(
            f"{path}: the first row holds numbers such as {looks_like_readings[0]}, not sensor "
            "ids; add a header row naming each column's sensor id"
        )
    frame = read_csv(path, "T-GCN CSV", header=None, skiprows=1)
    if frame.empty:
        raise DataError(f"{path}: no readings below the header; add one row per time step")
    if frame.shape[1] != len(sensor_ids):
        raise DataError(
            f"{path}: {frame.shape[1]} values per row but {len(sensor_ids)} sensor ids in the "
            "header; give every row one value per sensor"
        )
    values = _numeric(frame, path, first_line=2, labels=sensor_ids)
    return sensor_ids, values.astype(np.float32)


def read_adjacency_matrix(path: Path, num_sensors: int) -> SensorGraph:
    """The graph of a headerless ``[n n]`` weight matrix, row = source sensor.

    Parameters
    ----------
    path
        The adjacency CSV.
    num_sensors
        ``n``, the speed CSV's sensor columns.
    """
    frame = read_csv(path, "T-GCN CSV", header=None)
    if frame.shape != (num_sensors, num_sensors):
        raise DataError(
            f"{path}: adjacency is {frame.shape[0]}×{frame.shape[1]} but the speed CSV has "
            f"{num_sensors} sensor columns; use the {num_sensors}×{num_sensors} matrix "
            "released with these readings (no header)"
        )
    labels = tuple(str(j + 1) for j in range(num_sensors))
    matrix = _numeric(frame, path, first_line=1, labels=labels)
    bad = np.argwhere(~np.isfinite(matrix) | (matrix < 0))
    if bad.size:
        row, col = bad[0]
        raise DataError(
            f"{path}: weight at line {row + 1}, column {col + 1} is empty, negative or "
            "infinite; give a weight ≥ 0 in every cell (0 = no edge)"
        )
    sources, targets = np.nonzero(matrix)
    return weighted_graph(num_sensors, sources, targets, matrix[sources, targets])


def _numeric(
    frame: pd.DataFrame, path: Path, first_line: int, labels: tuple[str, ...]
) -> np.ndarray:
    """``[r k]`` float64 of a table; an empty cell is NaN, other text a ``DataError``."""

    def parse(j: int) -> np.ndarray:
        cells = frame.iloc[:, j]

        def refuse(row: int, problem: str) -> DataError:
            place = f"{path}: line {first_line + row}, column {labels[j]}"
            if problem == "not a number":
                return DataError(
                    f"{place} holds {cells.iloc[row]!r}, not a number; write plain numbers "
                    "(an empty cell for a missing value)"
                )
            return DataError(f"{place} is infinite; write a finite number or leave the cell empty")

        return parse_numbers(cells, refuse)

    return np.stack([parse(j) for j in range(frame.shape[1])], axis=1)
