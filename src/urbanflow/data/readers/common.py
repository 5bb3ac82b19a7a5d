"""What the readers share: file checks, CSV loading with one-line errors, id lists in
messages, a time grid from a start, sensor locations and road-distance tables."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.data.timegrid import frequency_alias, parse_frequency, parse_local_time
from urbanflow.errors import DataError
from urbanflow.graph.builders import gaussian_kernel_graph, weighted_graph
from urbanflow.graph.graph import SensorGraph

MAX_LISTED = 5
_INTEGRAL_FLOAT = re.compile(r"^([+-]?\d+)\.0*$")


def require_file(path: Path | str, what: str) -> Path:
    """``path`` as a ``Path`` if it is an existing file, else a ``DataError``.

    Parameters
    ----------
    path
        The file.
    what
        What it is, for the message (``HDF5 readings file``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found; check the path")
    return path


def first_listed(items: Sequence[object], limit: int = MAX_LISTED) -> str:
    """Up to ``limit`` items for a message, with a count of the rest.

    Parameters
    ----------
    items
        The items (ids, keys).
    limit
        Most items shown; default 5.
    """
    shown = ", ".join(str(item) for item in items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def normalise_id(text: object) -> str:
    """A sensor id as text: whitespace stripped, ``"400001.0"`` written ``"400001"``.

    Parameters
    ----------
    text
        An id cell (text or number).
    """
    cleaned = str(text).strip()
    match = _INTEGRAL_FLOAT.match(cleaned)
    return match.group(1) if match else cleaned


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a float.

    Parameters
    ----------
    text
        A cell's text.
    """
    try:
        float(text)
    except ValueError:
        return False
    return True


def grid_from_start(start: str, num_steps: int, frequency: str, timezone: str) -> pd.DatetimeIndex:
    """``[t]`` timestamps ``start, start + step, …`` in absolute time, shown in ``timezone``.

    A naive ``start`` is local time in ``timezone``; one with an offset is used as given.

    Parameters
    ----------
    start
        First timestamp; naive text is local time in ``timezone``.
    num_steps
        ``t``, the number of timestamps.
    frequency
        The step: pandas alias (``5min``) or ISO 8601 (``PT5M``).
    timezone
        IANA zone the timestamps are shown in.
    """
    step = parse_frequency(frequency)
    first = parse_local_time(start, timezone, "start")
    return pd.date_range(first, periods=num_steps, freq=step).as_unit("ns")


def one_channel_dataset(
    values: np.ndarray,
    timestamps: pd.DatetimeIndex,
    sensors: Sensors,
    graph: SensorGraph,
    *,
    step: pd.Timedelta,
    about: DatasetMetadata,
) -> CityDataset:
    """A ``CityDataset`` of one quantity: ``[t n]`` readings, one channel named after it.

    Parameters
    ----------
    values
        ``[t n]`` readings (cast to float32), NaN where missing.
    timestamps
        ``[t]`` time-zone-aware grid.
    sensors
        The ``n`` sensors.
    graph
        Their graph.
    step
        The grid's step; it sets ``metadata.frequency``.
    about
        The rest of the metadata; ``channels`` becomes ``(quantity,)``.
    """
    metadata = replace(about, frequency=frequency_alias(step), channels=(about.quantity,))
    readings = np.asarray(values, dtype=np.float32)[:, :, np.newaxis]
    return CityDataset(readings, timestamps, sensors, graph, metadata)


def sensor_coordinates(
    locations_csv: Path | str | None, sensor_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``[n]`` latitudes and longitudes from a locations CSV (see :func:`read_locations`),
    NaN when there is none.

    Parameters
    ----------
    locations_csv
        The locations CSV, or None.
    sensor_ids
        The ``n`` sensor ids, in the readings' order.
    """
    if locations_csv is None:
        nowhere = np.full(len(sensor_ids), np.nan)
        return nowhere, nowhere
    return read_locations(locations_csv, sensor_ids)


def read_locations(path: Path | str, sensor_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``[n]`` latitudes and longitudes of ``sensor_ids`` from a locations CSV.

    Accepted layouts: a header naming ``sensor_id,latitude,longitude`` (other columns such
    as ``index`` ignored; METR-LA), or no header with ``sensor_id,latitude,longitude``
    (PEMS-BAY) or ``index,sensor_id,latitude,longitude``. Rows of other sensors are ignored.

    Parameters
    ----------
    path
        The locations CSV.
    sensor_ids
        The ``n`` sensor ids wanted, in the readings' order.
    """
    path = require_file(path, "locations CSV")
    frame = _read_text_table(path, "locations CSV")
    first = [cell.strip().lower() for cell in frame.iloc[0]]
    if "sensor_id" in first:
        columns = {name: i for i, name in enumerate(first)}
        missing = [c for c in ("latitude", "longitude") if c not in columns]
        if missing:
            raise DataError(
                f"{path}: header {','.join(first)} lacks {', '.join(missing)}; "
                "name the columns sensor_id,latitude,longitude"
            )
        rows = frame.iloc[1:]
        ids = rows.iloc[:, columns["sensor_id"]]
        lat, lon = rows.iloc[:, columns["latitude"]], rows.iloc[:, columns["longitude"]]
    elif not is_number(first[-1]):
        raise DataError(
            f"{path}: header {','.join(first)} is not understood; "
            "name the columns sensor_id,latitude,longitude or leave the header out"
        )
    elif frame.shape[1] in (3, 4):
        rows = frame
        ids, lat, lon = (frame.iloc[:, j] for j in range(frame.shape[1] - 3, frame.shape[1]))
    else:
        raise DataError(
            f"{path}: {frame.shape[1]} columns and no header; expected "
            "sensor_id,latitude,longitude (optionally after an index column or a header)"
        )
    table = pd.DataFrame(
        {
            "latitude": _numeric_column(lat, path, "latitude", first_line=len(frame) - len(rows)),
            "longitude": _numeric_column(lon, path, "longitude", first_line=len(frame) - len(rows)),
        },
        index=[normalise_id(i) for i in ids],
    )
    duplicated = table.index[table.index.duplicated()].unique().tolist()
    if duplicated:
        raise DataError(
            f"{path}: sensor ids listed twice: {first_listed(duplicated)}; give each sensor one row"
        )
    absent = [i for i in sensor_ids if i not in table.index]
    if absent:
        raise DataError(
            f"{path}: no location for {len(absent)} sensors of the readings: "
            f"{first_listed(absent)}; add a row sensor_id,latitude,longitude for each"
        )
    located = table.loc[list(sensor_ids)]
    return located["latitude"].to_numpy(), located["longitude"].to_numpy()


def read_distances(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road distances ``from,to,distance`` in metres: ``[e]`` from ids, to ids, distances.

    The header is optional; with one, the third column may be named ``distance`` or
    ``cost``. Ids are returned as text (see :func:`normalise_id`).

    Parameters
    ----------
    path
        The distances CSV.
    """
    path = require_file(path, "distances CSV")
    frame = _read_text_table(path, "distances CSV")
    if frame.shape[1] != 3:
        raise DataError(
            f"{path}: {frame.shape[1]} columns; expected three, from,to,distance (metres)"
        )
    first = [cell.strip().lower() for cell in frame.iloc[0]]
    has_header = not is_number(first[2])
    if has_header and (first[:2] != ["from", "to"] or first[2] not in ("distance", "cost")):
        raise DataError(
            f"{path}: header {','.join(first)} is not understood; "
            "write from,to,distance (or from,to,cost) or no header"
        )
    rows = frame.iloc[1:] if has_header else frame
    distances = _numeric_column(rows.iloc[:, 2], path, "distance", first_line=int(has_header))
    if np.isnan(distances).any() or (distances < 0).any():
        line = int(np.flatnonzero(np.isnan(distances) | (distances < 0))[0]) + 1 + has_header
        raise DataError(
            f"{path}: line {line} has an empty or negative distance; "
            "give every row a distance ≥ 0 in metres"
        )
    sources = np.array([normalise_id(i) for i in rows.iloc[:, 0]], dtype=object)
    targets = np.array([normalise_id(i) for i in rows.iloc[:, 1]], dtype=object)
    return sources, targets, distances


def distance_graph(
    path: Path | str, sensor_ids: Sequence[str], *, drop_unknown: bool = False
) -> SensorGraph:
    """Thresholded Gaussian kernel graph over ``sensor_ids`` from a distances CSV.

    Rows naming a sensor outside ``sensor_ids`` raise a ``DataError``, or are skipped when
    ``drop_unknown`` (as DCRNN does for METR-LA's distance table, which covers more
    detectors than the readings); σ is then the spread of the rows kept.

    Parameters
    ----------
    path
        The distances CSV (metres).
    sensor_ids
        The ``n`` sensor ids, in the readings' order.
    drop_unknown
        Skip rows naming other sensors instead of refusing them; default False.
    """
    src, dst, distances = _distance_rows(path, sensor_ids, drop_unknown)
    try:
        return gaussian_kernel_graph(len(sensor_ids), src, dst, distances)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None


def connectivity_graph(path: Path | str, sensor_ids: Sequence[str]) -> SensorGraph:
    """Weight-1 edges, both ways, between the sensor pairs a distances CSV lists.

    Parameters
    ----------
    path
        The distances CSV.
    sensor_ids
        The ``n`` sensor ids, in the readings' order.
    """
    src, dst, _ = _distance_rows(path, sensor_ids, drop_unknown=False)
    ones = np.ones(2 * src.size)
    return weighted_graph(len(sensor_ids), np.r_[src, dst], np.r_[dst, src], ones)


def _distance_rows(
    path: Path | str, sensor_ids: Sequence[str], drop_unknown: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensor indices and distances of the CSV rows that link two of ``sensor_ids``."""
    sources, targets, distances = read_distances(path)
    ids = pd.Index(list(sensor_ids))
    src, dst = ids.get_indexer(sources), ids.get_indexer(targets)
    known = (src >= 0) & (dst >= 0)
    if not known.all() and not drop_unknown:
        unknown = pd.unique(np.concatenate([sources[src < 0], targets[dst < 0]])).tolist()
        raise DataError(
            f"{path}: rows name {len(unknown)} sensors that are not in the readings: "
            f"{first_listed(unknown)}; use the distance file of this data set (and its id list)"
        )
    if not known.any():
        raise DataError(
            f"{path}: no row links two sensors of the readings; "
            "use the distance file of this data set"
        )
    return src[known], dst[known], distances[known]


def read_csv(
    path: Path, what: str = "", *, label: str | None = None, **options: object
) -> pd.DataFrame:
    """``pd.read_csv`` whose failures are one-line ``DataError``s naming the file (and for a
    broken row, the line pandas stopped at).

    Parameters
    ----------
    path
        The CSV file.
    what
        What the file is, for messages (``"T-GCN CSV"``); empty: the name alone says it.
    label
        How messages name the file; default ``path`` as given.
    **options
        Passed on to ``pd.read_csv``.
    """
    subject = f"{path if label is None else label}:" + (f" {what} is" if what else "")
    try:
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{subject} empty; write a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        detail = str(error).strip().splitlines()[-1]
        raise DataError(
            f"{subject} not valid CSV ({detail}); save it as comma-separated UTF-8 "
            "text with the same number of fields on every row"
        ) from None


def _read_text_table(path: Path, what: str) -> pd.DataFrame:
    """Every cell as text, no header assumed; empty files refused."""
    frame = read_csv(path, what, header=None, dtype=str, skip_blank_lines=True)
    if frame.empty:
        raise DataError(f"{path}: {what} is empty; write one row per entry")
    return frame.fillna("")


def parse_numbers(cells: pd.Series, refuse: Callable[[int, str], DataError]) -> np.ndarray:
    """``[r]`` float64 of table cells: numbers (or number text) as they are, empty cells NaN.

    The one way the readers turn cells into numbers. The first cell that is text but not a
    number, or is infinite, raises ``refuse(row, problem)``: ``row`` its position in
    ``cells``, ``problem`` ``"not a number"`` or ``"not a finite number"``; the reader
    phrases the message (file, line, column).

    Parameters
    ----------
    cells
        ``[r]`` one column: text (missing or blank = empty) or an already numeric dtype.
    refuse
        Builds the ``DataError`` for a bad cell from its row and the problem.
    """
    if pd.api.types.is_numeric_dtype(cells):
        values = cells.to_numpy(np.float64)
        written = ~np.isnan(values)
    else:
        text = cells.where(cells.notna(), "").astype(str).str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        written = (text != "").to_numpy()
    bad = np.flatnonzero(written & ~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise refuse(row, "not a finite number" if np.isinf(values[row]) else "not a number")
    return values


def _numeric_column(column: pd.Series, path: Path, name: str, first_line: int) -> np.ndarray:
    """``[r]`` float64 from text cells; empty cells NaN, other text a ``DataError``."""

    def refuse(row: int, problem: str) -> DataError:
        return DataError(
            f"{path}: line {first_line + row + 1} has {name} {column.iloc[row].strip()!r}, "
            f"{problem}; write a plain decimal number"
        )

    return parse_numbers(column, refuse)
