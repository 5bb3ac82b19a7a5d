"""The LargeST layout (Liu et al., NeurIPS 2023 Datasets and Benchmarks; liuxu77/LargeST).

```
ca_his_raw_YYYY.h5   one file per year (2017 to 2021): a pandas DataFrame (DataFrame.to_hdf,
                     fixed format), index = naive timestamps every 5 minutes, one column per
                     sensor id, traffic flow in vehicles per 5 minutes, NaN = missing
ca_meta.csv          one row per sensor: ID,Lat,Lng,District,County,Fwy,Lanes,Type,Direction,ID2
ca_rn_adj.npy        [n n] dense road-network adjacency, rows and columns in ca_meta.csv order
```

The sub-datasets GLA (districts 7, 8, 12), GBA (district 4) and SD (district 11) are subsets
of these files; this module reads the full California (CA) set.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import tables

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.data.readers.common import first_listed, normalise_id, one_channel_dataset
from urbanflow.data.readers.metr_hdf5 import (
    _numeric_values,
    _refuse_pickled_nodes,
    _sensor_ids,
    _timestamps,
)
from urbanflow.data.timegrid import check_timezone
from urbanflow.errors import DataError
from urbanflow.graph.builders import weighted_graph
from urbanflow.graph.graph import SensorGraph

LARGEST_TIMEZONE = "America/Los_Angeles"
LARGEST_LICENCE = "CC BY-NC 4.0 (LargeST, Liu et al. 2023)"
READINGS_NAME = re.compile(r"^ca_his_raw_(\d{4})\.h5$")
META_NAME = "ca_meta.csv"
ADJACENCY_NAME = "ca_rn_adj.npy"
META_COLUMNS = ("ID", "Lat", "Lng")
# Rows read at once: about this many bytes of float64 cells per chunk.
CHUNK_BYTES = 64 * 2**20
_DOWNLOAD_HINT = "download it from https://www.kaggle.com/datasets/liuxu77/largest"


def largest_years(folder: Path | str) -> dict[int, Path]:
    """The yearly readings files ``ca_his_raw_YYYY.h5`` of a folder, by year (ascending).

    Parameters
    ----------
    folder
        The LargeST folder.
    """
    found = {}
    for path in Path(folder).glob("ca_his_raw_*.h5"):
        match = READINGS_NAME.match(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def read_largest(
    folder: Path | str,
    *,
    year: int | None = None,
    chunk_rows: int | None = None,
    name: str = "largest-ca",
    timezone: str = LARGEST_TIMEZONE,
    null_value: float | None = None,
) -> CityDataset:
    """Read one year of the LargeST CA set into a one-channel ``CityDataset`` of flow.

    ``readings``: ``[t n 1]`` float32 in the HDF5 file's column order, filled chunk by chunk
    (``chunk_rows`` rows at a time) into one preallocated array, so memory holds the result
    and one chunk, never the whole file twice. Cells are vehicles per 5 minutes; NaN
    is missing (and cells equal to ``null_value``, if given). Kind: count.

    Time: the naive labels are read as local time in ``timezone``: the first label is
    localised there and the grid goes on in steps of absolute time (the file's labels carry
    no daylight-saving shifts, as in :func:`~urbanflow.data.readers.metr_hdf5.read_traffic_hdf5`).

    Sensors: coordinates from ``ca_meta.csv`` (``Lat``, ``Lng``), matched by ``ID`` to the
    HDF5 columns. Graph: the nonzero entries of ``ca_rn_adj.npy`` (memory-mapped, read in
    row blocks) as edge weights, row = source, reordered to the readings' columns;
    self-loops on the diagonal are kept.

    Parameters
    ----------
    folder
        The folder holding ``ca_his_raw_YYYY.h5``, ``ca_meta.csv`` and ``ca_rn_adj.npy``.
    year
        Which ``ca_his_raw_YYYY.h5`` to read; default None: the latest year present.
    chunk_rows
        Rows (time steps) read at once; default None: about 64 MB of cells.
    name
        The dataset's name; default ``largest-ca``.
    timezone
        IANA time-zone name of the labels; default ``America/Los_Angeles``.
    null_value
        Cell value meaning missing besides NaN; default None (0 is a real count).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: LargeST folder not found; check the path")
    check_timezone(timezone)
    if chunk_rows is not None and chunk_rows < 1:
        raise DataError(f"chunk_rows is {chunk_rows}; give a positive number of rows")
    h5_path, year = _readings_file(folder, year)
    meta_path = _companion(folder / META_NAME, "LargeST sensor metadata")
    adjacency_path = _companion(folder / ADJACENCY_NAME, "LargeST adjacency matrix")
    meta_ids, latitude, longitude = read_largest_meta(meta_path)
    adjacency = _open_adjacency(adjacency_path)
    if adjacency.shape[0] != len(meta_ids):
        raise DataError(
            f"{adjacency_path}: {adjacency.shape[0]} sensors but {META_NAME} lists "
            f"{len(meta_ids)}; use the two files of the same LargeST release"
        )
    values, index, sensor_ids = read_hdf_chunks(h5_path, chunk_rows, null_value)
    positions = _meta_positions(sensor_ids, meta_ids, h5_path)
    timestamps, step = _timestamps(index, h5_path, timezone)
    graph = adjacency_graph(adjacency, positions, adjacency_path)
    sensors = Sensors(sensor_ids, latitude[positions], longitude[positions])
    about = DatasetMetadata(
        name,
        "flow",
        "vehicles/5min",
        timezone=timezone,
        null_value=null_value,
        source=f"{h5_path.name} (LargeST layout, CA {year})",
        licence=LARGEST_LICENCE,
        kind="count",
    )
    return one_channel_dataset(values[:, :, 0], timestamps, sensors, graph, step=step, about=about)


def read_hdf_chunks(
    path: Path, chunk_rows: int | None = None, null_value: float | None = None
) -> tuple[np.ndarray, pd.Index, tuple[str, ...]]:
    """``[t n 1]`` float32 readings, the ``[t]`` index and the ``n`` sensor ids of a pandas
    HDF5 frame, read ``chunk_rows`` rows at a time (fixed or table format).

    Parameters
    ----------
    path
        The ``.h5`` file (one pandas key, or several with one named ``t``).
    chunk_rows
        Rows read at once; default None: about :data:`CHUNK_BYTES` of float64 cells.
    null_value
        Cell value turned into NaN; default None.
    """
    try:
        with pd.HDFStore(path, mode="r") as store:
            key = _frame_key(store, path)
            _refuse_pickled_nodes(store.get_node(key), path)
            num_rows = _row_count(store.get_storer(key), path)
            head = store.select(key, start=0, stop=0)
            if not isinstance(head, pd.DataFrame) or head.shape[1] == 0 or num_rows == 0:
                raise DataError(
                    f"{path}: key {key} holds no readings (a {type(head).__name__} of "
                    f"{num_rows} rows); store a DataFrame with one column per sensor"
                )
            sensor_ids = _sensor_ids(head.columns, path)
            rows = chunk_rows or max(1, CHUNK_BYTES // (8 * len(sensor_ids)))
            values = np.empty((num_rows, len(sensor_ids), 1), dtype=np.float32)
            indexes = []
            for start in range(0, num_rows, rows):
                chunk = store.select(key, start=start, stop=min(start + rows, num_rows))
                cells = _numeric_values(chunk, path)
                if null_value is not None:
                    cells[cells == null_value] = np.nan
                values[start : start + len(chunk), :, 0] = cells
                indexes.append(chunk.index)
    except (OSError, tables.HDF5ExtError, ValueError, TypeError, KeyError) as error:
        raise DataError(
            f"{path}: not a readable HDF5 file ({str(error).splitlines()[0]}); "
            "give the ca_his_raw_YYYY.h5 file of the LargeST release"
        ) from None
    index = indexes[0].append(indexes[1:]) if len(indexes) > 1 else indexes[0]
    if len(index) != num_rows:
        raise DataError(f"{path}: read {len(index)} rows of {num_rows}; the file is damaged")
    return values, index, sensor_ids


def read_largest_meta(path: Path | str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The ``m`` sensor ids of ``ca_meta.csv`` in row order, with their latitudes and longitudes.

    Parameters
    ----------
    path
        The meta CSV (header ``ID,Lat,Lng,...``).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"ID": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(
            f"{path}: not a readable CSV ({str(error).splitlines()[0]}); "
            f"give the {META_NAME} of the LargeST release"
        ) from None
    missing = [column for column in META_COLUMNS if column not in frame.columns]
    if missing or frame.empty:
        lacks = f"lacks column {', '.join(missing)}" if missing else "has no rows"
        raise DataError(
            f"{path}: {lacks}; expected a header with {','.join(META_COLUMNS)} "
            f"and one row per sensor, as in {META_NAME}"
        )
    ids = tuple(normalise_id(i) for i in frame["ID"])
    seen: set[str] = set()
    repeated = [i for i in ids if i in seen or seen.add(i)]
    if repeated:
        raise DataError(f"{path}: IDs listed twice: {first_listed(repeated)}; keep one row each")
    coordinates = []
    for column in ("Lat", "Lng"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(numbers.isna() & frame[column].notna())
        if bad.size:
            raise DataError(
                f"{path}: line {bad[0] + 2}: {column} {frame[column].iloc[bad[0]]!r} is not a "
                "number; write degrees as decimals"
            )
        coordinates.append(numbers.to_numpy(dtype=np.float64))
    return ids, coordinates[0], coordinates[1]


def adjacency_graph(matrix: np.ndarray, positions: np.ndarray, path: Path) -> SensorGraph:
    """The nonzero entries of an ``[m m]`` adjacency as weighted edges over ``n`` sensors.

    Reads the matrix in row blocks (it may be memory-mapped). Sensor ``k`` of the graph is
    row ``positions[k]`` of the matrix; rows not in ``positions`` are left out.

    Parameters
    ----------
    matrix
        ``[m m]`` weights, row = source.
    positions
        ``[n]`` matrix row of each sensor, distinct.
    path
        The adjacency file, for messages.
    """
    size = matrix.shape[0]
    sensor_of = np.full(size, -1, dtype=np.int64)
    sensor_of[positions] = np.arange(len(positions))
    rows = max(1, CHUNK_BYTES // (8 * max(size, 1)))
    sources, targets, weights = [], [], []
    for start in range(0, size, rows):
        block = np.asarray(matrix[start : start + rows], dtype=np.float64)
        row, column = np.nonzero(block)
        source, target = sensor_of[row + start], sensor_of[column]
        kept = (source >= 0) & (target >= 0)
        sources.append(source[kept])
        targets.append(target[kept])
        weights.append(block[row[kept], column[kept]])
    try:
        return weighted_graph(
            len(positions),
            np.concatenate(sources),
            np.concatenate(targets),
            np.concatenate(weights),
        )
    except DataError as error:
        raise DataError(f"{path}: {error}") from None


def _readings_file(folder: Path, year: int | None) -> tuple[Path, int]:
    years = largest_years(folder)
    if not years:
        raise DataError(
            f"{folder}: no ca_his_raw_YYYY.h5 readings file; {_DOWNLOAD_HINT} "
            "(see docs/datasets.md, LargeST)"
        )
    if year is None:
        year = max(years)
    if year not in years:
        raise DataError(
            f"{folder}: no ca_his_raw_{year}.h5; years present: {', '.join(str(y) for y in years)}"
        )
    return years[year], year


def _companion(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found; {_DOWNLOAD_HINT} and put it beside the .h5")
    return path


def _open_adjacency(path: Path) -> np.ndarray:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(
            f"{path}: not a readable .npy array ({str(error).splitlines()[0]}); "
            f"give the {ADJACENCY_NAME} of the LargeST release"
        ) from None
    if not isinstance(matrix, np.ndarray) or matrix.dtype.kind not in "biuf":
        raise DataError(f"{path}: not a numeric array; give the {ADJACENCY_NAME} of LargeST")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise DataError(f"{path}: shape {matrix.shape}; expected a square [n n] adjacency")
    return matrix


def _frame_key(store: pd.HDFStore, path: Path) -> str:
    keys = store.keys()
    if "/t" in keys:
        return "/t"
    if len(keys) != 1:
        found = f"{len(keys)} pandas keys ({first_listed(keys)})" if keys else "no pandas key"
        raise DataError(
            f"{path}: holds {found}; expected the key t (or exactly one DataFrame) "
            "written with DataFrame.to_hdf"
        )
    return keys[0]


def _row_count(storer: object, path: Path) -> int:
    if getattr(storer, "is_table", False):
        return int(storer.nrows)  # type: ignore[attr-defined]
    shape = getattr(storer, "shape", None)
    if not shape or len(shape) != 2:
        raise DataError(
            f"{path}: the stored object is not a DataFrame; store the readings as a "
            "DataFrame with one column per sensor"
        )
    return int(shape[0])


def _meta_positions(
    sensor_ids: tuple[str, ...], meta_ids: tuple[str, ...], path: Path
) -> np.ndarray:
    """``[n]`` row of ``ca_meta.csv`` of each readings column; counts and ids must agree."""
    if len(sensor_ids) != len(meta_ids):
        raise DataError(
            f"{path}: {len(sensor_ids)} sensor columns but {META_NAME} lists {len(meta_ids)} "
            "sensors; use the files of the same LargeST release"
        )
    row_of = {sensor: row for row, sensor in enumerate(meta_ids)}
    unknown = [i for i in sensor_ids if i not in row_of]
    if unknown:
        raise DataError(
            f"{path}: {len(unknown)} sensor columns are not in {META_NAME}: "
            f"{first_listed(unknown)}; use the files of the same LargeST release"
        )
    return np.array([row_of[i] for i in sensor_ids], dtype=np.int64)
