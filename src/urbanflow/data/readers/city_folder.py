"""The city folder: the layout users write by hand for their own sensor network.

```
my-city/
  readings.csv | readings.parquet   long: timestamp,sensor_id,value  or wide: timestamp,<id>,...
  sensors.csv                      sensor_id,latitude,longitude[,name][,capacity]
  edges.csv          (optional)    source,target and distance_m or weight
  dataset.toml       (optional)    name, quantity, unit, frequency, timezone, kind, country, ...
```
See ``docs/data-format.md`` for the rules; every problem raises a one-line ``DataError``
naming the file, the problem, the first offending row or ids, and the fix.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from urbanflow.data.calendar import check_holiday_region
from urbanflow.data.dataset import FLOW_KINDS, CityDataset, DatasetMetadata, Sensors
from urbanflow.data.readers.common import first_listed, parse_numbers, read_csv
from urbanflow.data.timegrid import (
    Grid,
    ParsedTimes,
    check_timezone,
    fit_grid,
    frequency_alias,
    parse_frequency,
    parse_timestamps,
)
from urbanflow.errors import DataError
from urbanflow.graph.builders import (
    DEFAULT_KERNEL_THRESHOLD,
    DEFAULT_NEIGHBOURS,
    gaussian_kernel_graph,
    knn_graph,
    weighted_graph,
)
from urbanflow.graph.graph import SensorGraph

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOML_KEYS = {
    "name": str,
    "quantity": str,
    "unit": str,
    "frequency": str,
    "timezone": str,
    "null_value": (int, float),
    "source": str,
    "licence": str,
    "neighbours": int,
    "kernel_sigma_m": (int, float),
    "kernel_threshold": (int, float),
    "kind": str,
    "country": str,
    "subdivision": str,
}
MIN_GRID_FILL = 0.5


GRAPH_KEYS = ("neighbours", "kernel_sigma_m", "kernel_threshold")


@dataclass(frozen=True)
class FolderSettings:
    """The optional ``dataset.toml``: what the readings are, and how to build the graph.

    Parameters
    ----------
    metadata
        What the readings are (name, quantity, unit, frequency, timezone, null value).
    neighbours
        k of the kNN graph built from coordinates when there is no ``edges.csv``.
    kernel_sigma_m
        σ in metres of the distance kernel; None (the default): the distances' standard
        deviation.
    kernel_threshold
        Kernel weights below this are dropped.
    """

    metadata: DatasetMetadata
    neighbours: int = DEFAULT_NEIGHBOURS
    kernel_sigma_m: float | None = None
    kernel_threshold: float = DEFAULT_KERNEL_THRESHOLD


def read_city_folder(folder: Path | str) -> CityDataset:
    """Read and validate a city folder into a :class:`CityDataset`.

    Parameters
    ----------
    folder
        The city folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; give the path of a city folder")
    settings = read_settings(folder)
    sensors = read_sensors(folder / "sensors.csv")
    readings_path = _readings_path(folder)
    try:
        readings, grid, step_name = _read_wide_parquet(readings_path, sensors, settings)
    except _GeneralPath:  # long, CSV, or a case whose error the general path phrases
        readings, grid, step_name = _read_readings(readings_path, sensors, settings)
    timestamps = grid.index(settings.metadata.timezone)
    metadata = replace(
        settings.metadata, frequency=step_name, channels=(settings.metadata.quantity,)
    )
    graph = read_graph(folder, sensors, settings)
    return CityDataset(readings, timestamps, sensors, graph, metadata)


def _read_readings(
    path: Path, sensors: Sensors, settings: FolderSettings
) -> tuple[np.ndarray, Grid, str]:
    """``[t n 1]`` readings, their grid and its step name, from any layout (a long frame)."""
    frame = _read_table(path)
    long = _long_readings(frame, path)
    long = _drop_null_values(long, settings.metadata.null_value)
    _check_known_sensors(long["sensor_id"], sensors, path)
    occurrence = long.groupby(["sensor_id", "timestamp"], sort=False).cumcount().to_numpy()
    parsed, grid, step_name = _place_in_time(long, occurrence, settings, path)
    readings = _fill_grid(
        long, parsed.utc_ns, grid.positions(parsed.utc_ns), sensors, grid.length, path
    )
    return readings, grid, step_name


def _place_in_time(
    long: pd.DataFrame, occurrence: np.ndarray, settings: FolderSettings, path: Path
) -> tuple[ParsedTimes, Grid, str]:
    """The rows' times and the regular grid that holds them; the first bad row an error.

    ``long`` has ``timestamp`` text and ``__line__``; ``occurrence`` as in
    :func:`parse_timestamps`.
    """
    try:
        parsed = parse_timestamps(long["timestamp"], occurrence, settings.metadata.timezone)
    except DataError as error:
        raise DataError(f"{path.name}: {error}") from None
    if parsed.invalid.any():
        row = int(np.argmax(parsed.invalid))
        text = long["timestamp"].iloc[row]
        line = _line(long, row)
        if parsed.problem == "nonexistent":
            raise DataError(
                f"{path.name}: timestamp {text!r} ({line}) does not exist in "
                f"{settings.metadata.timezone} (clocks skip it); remove the row or write "
                "UTC offsets"
            )
        raise DataError(
            f"{path.name}: timestamp {text!r} ({line}) cannot be parsed; "
            "write ISO 8601 such as '2024-03-01 08:05' or '2024-03-01T08:05:00+01:00'"
        )
    step = parse_frequency(settings.metadata.frequency) if settings.metadata.frequency else None
    try:
        grid, first_off = fit_grid(parsed.utc_ns, step)
    except DataError as error:
        raise DataError(f"{path.name}: {error}") from None
    step_name = frequency_alias(pd.Timedelta(grid.step, unit="ns"))
    if first_off is not None:
        how = "given in dataset.toml" if step else "inferred from the data"
        raise DataError(
            f"{path.name}: timestamp {long['timestamp'].iloc[first_off]!r} "
            f"({_line(long, first_off)}) is off the regular {step_name} grid {how}; "
            "fix that row or set `frequency` in dataset.toml"
        )
    distinct = np.unique(parsed.utc_ns).size
    if distinct < MIN_GRID_FILL * grid.length:
        raise DataError(
            f"{path.name}: only {distinct} of {grid.length} time steps of the "
            f"{step_name} grid have readings (under half); check `frequency` or the export"
        )
    return parsed, grid, step_name


class _GeneralPath(Exception):
    """The wide-Parquet path declines: read through the long frame instead."""


WIDE_BATCH_CELLS = 1 << 22
"""Cells of value columns the wide-Parquet path converts at a time (≈ 32 MiB as float64)."""


def _read_wide_parquet(
    path: Path, sensors: Sensors, settings: FolderSettings
) -> tuple[np.ndarray, Grid, str]:
    """Wide Parquet straight onto the grid: one timestamp column, values column by column.

    The same dataset and the same errors as :func:`_read_readings` without its long frame
    (every cell a row): the timestamp column is parsed alone (one row per time) and the
    value columns are read a batch at a time into the ``[t n 1]`` float32 array. Raises
    :class:`_GeneralPath` for long files, CSV, value columns that are not plain numbers,
    and infinite values (the general path then reads the file or phrases the error).
    """
    columns = _wide_parquet_columns(path)
    if columns is None:
        raise _GeneralPath
    parquet = pq.ParquetFile(path)
    times = parquet.read(columns=["timestamp"], use_pandas_metadata=False).to_pandas()
    times = times["timestamp"]
    frame = pd.DataFrame(
        {"timestamp": times.astype(str).mask(times.isna()), "__line__": np.arange(len(times)) + 1}
    )
    del times
    _check_timestamps_given(frame, path)
    index = sensors.index_of()
    unknown = [c for c in columns if c not in index]
    # errors wait until every value column is checked: the long frame's order reports a bad
    # value first, then unknown sensors, then times, then duplicates
    pending: DataError | None = None
    if unknown:
        pending = _unknown_sensors_error(unknown, path)
    else:
        occurrence = frame.groupby("timestamp", sort=False).cumcount().to_numpy()
        try:
            parsed, grid, step_name = _place_in_time(frame, occurrence, settings, path)
        except DataError as error:
            pending = error
        else:
            positions = grid.positions(parsed.utc_ns)
            pending = _wide_duplicate_error(frame, parsed.utc_ns, positions, columns, index, path)
    readings = None
    if pending is None:
        readings = np.full((grid.length, len(sensors), 1), np.nan, dtype=np.float32)
    null_value = settings.metadata.null_value
    batch = max(1, WIDE_BATCH_CELLS // max(1, len(frame)))
    for first in range(0, len(columns), batch):
        names = columns[first : first + batch]
        values = parquet.read(columns=names, use_pandas_metadata=False).to_pandas()
        for name in names:
            if not pd.api.types.is_numeric_dtype(values[name]):
                raise _GeneralPath
            column = values[name].to_numpy(np.float64)
            if np.isinf(column).any():
                raise _GeneralPath  # the general path names the first such cell
            if readings is None:
                continue
            readings[positions, index[name], 0] = column
            if null_value is not None:
                readings[positions[column == null_value], index[name], 0] = np.nan
        del values
    if pending is not None:
        raise pending
    return readings, grid, step_name


def _wide_parquet_columns(path: Path) -> list[str] | None:
    """The value columns of a wide Parquet file the fast path can read, else None."""
    if path.suffix != ".parquet":
        return None
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        rows = parquet.metadata.num_rows
    except Exception:  # pyarrow raises several types; the general path phrases them
        return None
    names = list(schema.names)
    stored_index = (schema.pandas_metadata or {}).get("index_columns", [])
    if (
        rows == 0
        or "timestamp" not in names
        or {"sensor_id", "value", "__line__"} & set(names)
        or len(set(names)) != len(names)
        or any(isinstance(column, str) for column in stored_index)
    ):
        return None
    columns = [name for name in names if name != "timestamp"]
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if not columns or not all(any(f(schema.field(c).type) for f in numeric) for c in columns):
        return None
    return columns


def _wide_duplicate_error(
    frame: pd.DataFrame,
    utc_ns: np.ndarray,
    positions: np.ndarray,
    columns: list[str],
    index: dict[str, int],
    path: Path,
) -> DataError | None:
    """:func:`_fill_grid`'s error for a time written twice in wide rows, else None."""
    order = np.argsort(positions, kind="stable")
    repeated = np.flatnonzero(positions[order][1:] == positions[order][:-1])
    if not repeated.size:
        return None
    row = int(order[repeated[0] + 1])
    sensor = min(columns, key=index.__getitem__)  # the first cell in sensors.csv order
    return _duplicate_error(sensor, frame["timestamp"].iloc[row], utc_ns[row], frame, row, path)


def read_settings(folder: Path) -> FolderSettings:
    """The folder's ``dataset.toml``, checked key by key; defaults when there is none.

    Parameters
    ----------
    folder
        The city folder.
    """
    path = folder / "dataset.toml"
    if not path.exists():
        return FolderSettings(DatasetMetadata(name=folder.name))
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path.name}: not valid TOML ({error}); fix the file") from None
    unknown = sorted(set(values) - set(TOML_KEYS))
    if unknown:
        raise DataError(
            f"{path.name}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(TOML_KEYS)}"
        )
    for key, value in values.items():
        expected = TOML_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise DataError(f"{path.name}: `{key}` has the wrong type ({value!r}); fix its value")
    values.setdefault("name", folder.name)
    try:
        if "frequency" in values:
            parse_frequency(values["frequency"])
        if "timezone" in values:
            check_timezone(values["timezone"])
        if values.get("kind", "") not in ("", *FLOW_KINDS):
            raise DataError(
                f"`kind` {values['kind']!r} is unknown; choose one of {', '.join(FLOW_KINDS)}"
            )
        if values.get("country"):
            check_holiday_region(values["country"], values.get("subdivision", ""))
        elif values.get("subdivision"):
            raise DataError("`subdivision` needs `country`; set both or neither")
    except DataError as error:
        raise DataError(f"{path.name}: {error}") from None
    graph = {key: values.pop(key) for key in GRAPH_KEYS if key in values}
    return FolderSettings(DatasetMetadata(**values), **graph)


def read_sensors(path: Path) -> Sensors:
    """The sensors of ``sensors.csv``: unique ids, coordinates in range, optional names.

    Parameters
    ----------
    path
        The folder's ``sensors.csv``.
    """
    if not path.exists():
        raise DataError(
            f"{path.parent.name}/{path.name} is missing; write sensor_id,latitude,longitude "
            "for every sensor"
        )
    frame = _read_table(path)
    _require_columns(frame, path, ("sensor_id", "latitude", "longitude"))
    ids = frame["sensor_id"].astype(str).str.strip()
    duplicated = ids.duplicated()
    if duplicated.any():
        row = int(np.argmax(duplicated.to_numpy()))
        raise DataError(
            f"{path.name}: sensor id {ids.iloc[row]!r} appears twice ({_line(frame, row)}); "
            "give each sensor one row"
        )
    coordinates = {}
    for column, limit in (("latitude", 90), ("longitude", 180)):
        values = _numeric(frame[column], path, column, frame)
        bad = np.isnan(values) | (np.abs(values) > limit)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{path.name}: {column} {frame[column].iloc[row]!r} of sensor {ids.iloc[row]!r} "
                f"({_line(frame, row)}) is missing or outside -{limit}..{limit}; fix the value"
            )
        coordinates[column] = values
    names = tuple(frame["name"].fillna("").astype(str)) if "name" in frame else None
    capacity = None
    if "capacity" in frame:
        capacity = _numeric(frame["capacity"], path, "capacity", frame)
        bad = capacity <= 0
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{path.name}: capacity {frame['capacity'].iloc[row]!r} of sensor "
                f"{ids.iloc[row]!r} ({_line(frame, row)}) is not positive; give a number > 0 "
                "or leave the cell empty"
            )
    return Sensors(tuple(ids), coordinates["latitude"], coordinates["longitude"], names, capacity)


def read_graph(folder: Path, sensors: Sensors, settings: FolderSettings) -> SensorGraph:
    """From ``edges.csv`` (distances → Gaussian kernel, or weights), else kNN on coordinates.

    Parameters
    ----------
    folder
        The city folder.
    sensors
        Its sensors.
    settings
        Its ``dataset.toml`` settings (kNN and kernel options).
    """
    path = folder / "edges.csv"
    if not path.exists():
        return knn_graph(sensors.latitude, sensors.longitude, k=settings.neighbours)
    frame = _read_table(path)
    _require_columns(frame, path, ("source", "target"))
    index = sensors.index_of()
    ids = {column: frame[column].astype(str).str.strip() for column in ("source", "target")}
    unknown = sorted((set(ids["source"]) | set(ids["target"])) - set(index))
    if unknown:
        raise DataError(
            f"{path.name}: edges name {len(unknown)} sensor(s) missing from sensors.csv: "
            f"{first_listed(unknown)}; add them to sensors.csv or remove those edges"
        )
    ends = {column: ids[column].map(index).to_numpy(np.int64) for column in ids}
    if "distance_m" in frame:
        distances = _non_negative(frame["distance_m"], path, "distance_m", frame)
        return gaussian_kernel_graph(
            len(sensors),
            ends["source"],
            ends["target"],
            distances,
            sigma=settings.kernel_sigma_m,
            threshold=settings.kernel_threshold,
        )
    if "weight" in frame:
        weights = _non_negative(frame["weight"], path, "weight", frame)
        return weighted_graph(len(sensors), ends["source"], ends["target"], weights)
    raise DataError(f"{path.name}: needs a `distance_m` or a `weight` column; add one")


def _readings_path(folder: Path) -> Path:
    for name in ("readings.parquet", "readings.csv"):
        if (folder / name).exists():
            return folder / name
    raise DataError(
        f"{folder.name}: no readings.csv or readings.parquet; add the readings "
        "(timestamp,sensor_id,value or timestamp,<sensor ids>...)"
    )


def _read_table(path: Path) -> pd.DataFrame:
    """Every column as text (NaN for empty and null cells), with its file line numbers."""
    with path.open("rb") as file:
        head = file.read(8192)
    if path.suffix == ".parquet":
        if not head.startswith(b"PAR1"):
            raise DataError(f"{path.name}: not a Parquet file; write Parquet or use .csv")
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types on corrupt files
            raise DataError(
                f"{path.name}: cannot read Parquet ({error}); rewrite the file"
            ) from None
        frame.columns = [str(c) for c in frame.columns]
        for column in ("timestamp", "sensor_id"):
            if column in frame:  # text like a CSV cell; value columns stay numeric
                frame[column] = frame[column].astype(str).mask(frame[column].isna())
        frame["__line__"] = np.arange(len(frame)) + 1
        return _non_empty(frame, path)
    if b"\x00" in head:
        raise DataError(f"{path.name}: not CSV text (binary content); export it as CSV")
    frame = read_csv(path, label=path.name, dtype=str, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["__line__"] = np.arange(len(frame)) + 2
    return _non_empty(frame, path)


def _non_empty(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if frame.empty:
        raise DataError(f"{path.name}: empty (a header but no data rows); add readings")
    return frame


def _long_readings(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``timestamp, sensor_id, value, __line__`` rows, whether the file is long or wide."""
    if "timestamp" not in frame:
        raise DataError(
            f"{path.name}: no `timestamp` column; the header must start with timestamp "
            "(long: timestamp,sensor_id,value; wide: timestamp,<sensor ids>...)"
        )
    if {"sensor_id", "value"} <= set(frame.columns):
        long = frame[["timestamp", "sensor_id", "value", "__line__"]].copy()
        long["sensor_id"] = long["sensor_id"].astype(str).str.strip()
    else:
        sensor_columns = [c for c in frame.columns if c not in ("timestamp", "__line__")]
        if not sensor_columns:
            raise DataError(f"{path.name}: no sensor columns; add value columns named by sensor id")
        long = frame.melt(
            id_vars=["timestamp", "__line__"],
            value_vars=sensor_columns,
            var_name="sensor_id",
            value_name="value",
        )
    _check_timestamps_given(long, path)
    long["value"] = _numeric(long["value"], path, "value", long)
    return long.reset_index(drop=True)


def _check_timestamps_given(long: pd.DataFrame, path: Path) -> None:
    missing_time = long["timestamp"].isna().to_numpy()
    if missing_time.any():
        row = int(np.argmax(missing_time))
        raise DataError(
            f"{path.name}: empty timestamp ({_line(long, row)}); fill it or drop the row"
        )


def _drop_null_values(long: pd.DataFrame, null_value: float | None) -> pd.DataFrame:
    if null_value is not None:
        long.loc[long["value"] == null_value, "value"] = np.nan
    return long


def _check_known_sensors(sensor_ids: pd.Series, sensors: Sensors, path: Path) -> None:
    unknown = set(sensor_ids.unique()) - set(sensors.ids)
    if unknown:
        raise _unknown_sensors_error(unknown, path)


def _unknown_sensors_error(unknown: Iterable[str], path: Path) -> DataError:
    unknown = sorted(unknown)
    return DataError(
        f"{path.name}: readings for {len(unknown)} sensor(s) missing from sensors.csv: "
        f"{first_listed(unknown)}; add them to sensors.csv or remove their readings"
    )


def _fill_grid(
    long: pd.DataFrame,
    utc_ns: np.ndarray,
    positions: np.ndarray,
    sensors: Sensors,
    length: int,
    path: Path,
) -> np.ndarray:
    """``[t n 1]`` readings; a duplicate (sensor, time) is an error."""
    columns = long["sensor_id"].map(sensors.index_of()).to_numpy(np.int64)
    cell = positions * len(sensors) + columns
    order = np.argsort(cell, kind="stable")
    repeated = np.flatnonzero(cell[order][1:] == cell[order][:-1])
    if repeated.size:
        row = int(order[repeated[0] + 1])
        sensor, text = long["sensor_id"].iloc[row], long["timestamp"].iloc[row]
        raise _duplicate_error(sensor, text, utc_ns[row], long, row, path)
    readings = np.full((length, len(sensors), 1), np.nan, dtype=np.float32)
    readings[positions, columns, 0] = long["value"].to_numpy(np.float32)
    return readings


def _duplicate_error(
    sensor: str, text: str, utc_ns: int, long: pd.DataFrame, row: int, path: Path
) -> DataError:
    stamp = pd.Timestamp(utc_ns, tz="UTC")
    return DataError(
        f"{path.name}: sensor {sensor!r} has two readings at "
        f"{text!r} ({stamp:%Y-%m-%d %H:%M} UTC, {_line(long, row)}); "
        "keep one row per sensor and timestamp"
    )


def _numeric(column: pd.Series, path: Path, name: str, frame: pd.DataFrame) -> np.ndarray:
    def refuse(row: int, problem: str) -> DataError:
        fix = ", or leave the cell empty for a missing reading" if name == "value" else ""
        return DataError(
            f"{path.name}: {name} {column.iloc[row]!r} ({_line(frame, row)}) is {problem}; "
            f"write a number{fix}"
        )

    return parse_numbers(column, refuse)


def _non_negative(column: pd.Series, path: Path, name: str, frame: pd.DataFrame) -> np.ndarray:
    values = _numeric(column, path, name, frame)
    bad = np.isnan(values) | (values < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{path.name}: {name} {column.iloc[row]!r} ({_line(frame, row)}) is missing or "
            "negative; give every edge a number ≥ 0"
        )
    return values


def _require_columns(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path.name}: missing column(s) {', '.join(missing)}; the header must have "
            f"{','.join(columns)}"
        )


def _line(frame: pd.DataFrame, row: int) -> str:
    return f"line {int(frame['__line__'].iloc[row])}"
