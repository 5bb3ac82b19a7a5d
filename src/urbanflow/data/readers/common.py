"""What the readers share: file checks, CSV loading with one-line errors, id lists in
messages, a time grid from a start, sensor locations and road-distance tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from urbanflow.data.timegrid import parse_frequency, parse_local_time
from urbanflow.errors import DataError
from urbanflow.graph.builders import gaussian_kernel_graph, weighted_graph
from urbanflow.graph.graph import SensorGraph

MAX_LISTED = 5
_INTEGRAL_FLOAT = re.compile(r"^([+-]?\d+)\.0*$")


def require_file(path: Path | str, what: str) -> Path:
    """``path`` as a ``Path`` if it is an existing file, else a ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found; check the path")
    return path


def some(items: Sequence[object], limit: int = MAX_LISTED) -> str:
    """Up to ``limit`` items for a message, with a count of the rest."""
    shown = ", ".join(str(item) for item in items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def normalise_id(text: object) -> str:
    """A sensor id as text: whitespace stripped, ``"400001.0"`` written ``"400001"``."""
    cleaned = str(text).strip()
    match = _INTEGRAL_FLOAT.match(cleaned)
    return match.group(1) if match else cleaned


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def grid_from_start(start: str, num_steps: int, frequency: str, timezone: str) -> pd.DatetimeIndex:
    """``[t]`` timestamps ``start, start + step, …`` in absolute time, shown in ``timezone``.

    A naive ``start`` is local time in ``timezone``; one with an offset is used as given.
    """
    step = parse_frequency(frequency)
    first = parse_local_time(start, timezone, "start")
    return pd.date_range(first, periods=num_steps, freq=step).as_unit("ns")


def read_locations(path: Path | str, sensor_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``[n]`` latitudes and longitudes of ``sensor_ids`` from a locations CSV.

    Accepted layouts: a header naming ``sensor_id,latitude,longitude`` (other columns such
    as ``index`` ignored; METR-LA), or no header with ``sensor_id,latitude,longitude``
    (PEMS-BAY) or ``index,sensor_id,latitude,longitude``. Rows of other sensors are ignored.
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
            f"{path}: sensor ids listed twice: {some(duplicated)}; give each sensor one row"
        )
    absent = [i for i in sensor_ids if i not in table.index]
    if absent:
        raise DataError(
            f"{path}: no location for {len(absent)} sensors of the readings: {some(absent)}; "
            "add a row sensor_id,latitude,longitude for each"
        )
    located = table.loc[list(sensor_ids)]
    return located["latitude"].to_numpy(), located["longitude"].to_numpy()


def read_distances(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road distances ``from,to,distance`` in metres: ``[e]`` from ids, to ids, distances.

    The header is optional; with one, the third column may be named ``distance`` or
    ``cost``. Ids are returned as text (see :func:`normalise_id`).
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
    """
    src, dst, distances = _distance_rows(path, sensor_ids, drop_unknown)
    try:
        return gaussian_kernel_graph(len(sensor_ids), src, dst, distances)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None


def connectivity_graph(path: Path | str, sensor_ids: Sequence[str]) -> SensorGraph:
    """Weight-1 edges, both ways, between the sensor pairs a distances CSV lists."""
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
            f"{some(unknown)}; use the distance file of this data set (and its id list)"
        )
    if not known.any():
        raise DataError(
            f"{path}: no row links two sensors of the readings; "
            "use the distance file of this data set"
        )
    return src[known], dst[known], distances[known]


def read_csv(path: Path, what: str, **options: object) -> pd.DataFrame:
    """``pd.read_csv`` whose failures are one-line ``DataError``s naming ``path``."""
    try:
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: {what} is empty; write a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        detail = str(error).strip().splitlines()[-1]
        raise DataError(
            f"{path}: {what} is not valid CSV ({detail}); save it as comma-separated UTF-8 "
            "text with the same number of fields on every row"
        ) from None


def _read_text_table(path: Path, what: str) -> pd.DataFrame:
    """Every cell as text, no header assumed; empty files refused."""
    frame = read_csv(path, what, header=None, dtype=str, skip_blank_lines=True)
    if frame.empty:
        raise DataError(f"{path}: {what} is empty; write one row per entry")
    return frame.fillna("")


def _numeric_column(column: pd.Series, path: Path, name: str, first_line: int) -> np.ndarray:
    """``[r]`` float64 from text cells; empty cells NaN, other text a ``DataError``."""
    text = column.astype(str).str.strip()
    values = pd.to_numeric(text.replace("", np.nan), errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(np.isnan(values) & (text != "").to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: line {first_line + i + 1} has {name} {text.iloc[i]!r}, not a number; "
            "write a plain decimal number"
        )
    return values
