"""The DCRNN HDF5 layout of METR-LA and PEMS-BAY (Li et al., ICLR 2018; liyaguang/DCRNN).

```
metr-la.h5 | pems-bay.h5   a pandas DataFrame (DataFrame.to_hdf, one key): columns = sensor
                           ids, index = naive timestamps every 5 minutes, 0 = missing
adj_mx.pkl    (optional)   pickle of [sensor_ids, sensor_id_to_index, adj_mx [n n]]
distances.csv (optional)   from,to,distance in metres (header optional)
locations.csv (optional)   index,sensor_id,latitude,longitude with header (METR-LA) or
                           sensor_id,latitude,longitude without (PEMS-BAY)
```
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tables

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.data.readers.common import (
    distance_graph,
    first_listed,
    normalise_id,
    one_channel_dataset,
    require_file,
    sensor_coordinates,
)
from urbanflow.data.timegrid import check_timezone
from urbanflow.errors import DataError
from urbanflow.graph.builders import knn_graph, weighted_graph
from urbanflow.graph.graph import SensorGraph

DEFAULT_STEP = pd.Timedelta(minutes=5)

# The only globals a DCRNN adj_mx.pkl needs: NumPy's array reconstruction.
_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


def read_traffic_hdf5(
    h5_path: Path | str,
    *,
    adjacency_pkl: Path | str | None = None,
    distances_csv: Path | str | None = None,
    locations_csv: Path | str | None = None,
    name: str = "metr-la",
    timezone: str = "UTC",
    null_value: float | None = 0.0,
    quantity: str = "speed",
    unit: str = "mph",
) -> CityDataset:
    """Read ``metr-la.h5`` / ``pems-bay.h5`` into a one-channel ``CityDataset``.

    ``readings``: ``[t n 1]`` in the file's column order; cells equal to ``null_value``
    (0 in the released files) become NaN, and ``metadata.null_value`` records it.

    Time: the released files carry no daylight-saving shifts (every day has 288 naive
    5-minute labels), so the labels are kept on their regular grid. By default they are
    read as UTC labels: the wall-clock values are unchanged. With another ``timezone``, the
    first label is local time there and the grid goes on in steps of absolute time (after
    a daylight-saving change the labels then differ from local clock time by one hour).

    Graph, from the first of: ``adjacency_pkl`` (the DCRNN ``adj_mx.pkl``, reordered to the
    readings' columns by sensor id); ``distances_csv`` (thresholded Gaussian kernel of the
    road distances; rows naming detectors outside the readings are skipped, as DCRNN does);
    the kNN graph of ``locations_csv``; else no edges. Give at most one of the first two.

    Safety: a pickle can run code when loaded. ``adjacency_pkl`` is read only for this one
    documented format, with an unpickler that refuses everything but NumPy arrays. Give only
    a file from the DCRNN release or one you made yourself.

    Parameters
    ----------
    h5_path
        The ``.h5`` readings file.
    adjacency_pkl
        DCRNN ``adj_mx.pkl``; default none.
    distances_csv
        Road distances ``from,to,distance``; default none.
    locations_csv
        Sensor coordinates; default none (NaN).
    name
        The dataset's name; default ``metr-la``.
    timezone
        IANA time-zone name (``America/Los_Angeles``); default ``UTC``.
    null_value
        Cell value meaning missing; default 0; None: none.
    quantity
        What the readings measure; default ``speed``.
    unit
        Their unit; default ``mph``.
    """
    h5_path = require_file(h5_path, "HDF5 readings file")
    if adjacency_pkl is not None and distances_csv is not None:
        raise DataError(
            f"{h5_path}: both an adjacency pickle and a distances CSV were given; "
            "pass only one of adjacency_pkl and distances_csv"
        )
    check_timezone(timezone)
    frame = read_hdf_frame(h5_path)
    sensor_ids = _sensor_ids(frame.columns, h5_path)
    values = _numeric_values(frame, h5_path)
    if null_value is not None:
        values[values == null_value] = np.nan
    timestamps, step = _timestamps(frame.index, h5_path, timezone)
    latitude, longitude = sensor_coordinates(locations_csv, sensor_ids)
    if adjacency_pkl is not None:
        graph = read_dcrnn_adjacency(adjacency_pkl, sensor_ids)
    elif distances_csv is not None:
        graph = distance_graph(distances_csv, sensor_ids, drop_unknown=True)
    elif locations_csv is not None:
        graph = knn_graph(latitude, longitude)
    else:
        graph = SensorGraph.empty(len(sensor_ids))
    sensors = Sensors(sensor_ids, latitude, longitude)
    source = f"{h5_path.name} (DCRNN HDF5 layout)"
    about = DatasetMetadata(
        name, quantity, unit, timezone=timezone, null_value=null_value, source=source
    )
    return one_channel_dataset(values, timestamps, sensors, graph, step=step, about=about)


def read_hdf_frame(path: Path) -> pd.DataFrame:
    """The DataFrame stored under the file's single key, refusing pickled Python objects.

    Parameters
    ----------
    path
        The ``.h5`` file.
    """
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            if len(keys) != 1:
                found = (
                    f"{len(keys)} pandas keys ({first_listed(keys)})" if keys else "no pandas key"
                )
                raise DataError(
                    f"{path}: holds {found}; expected exactly one DataFrame written with "
                    "DataFrame.to_hdf"
                )
            _refuse_pickled_nodes(store.get_node(keys[0]), path)
        frame = pd.read_hdf(path, key=keys[0])
    except (OSError, tables.HDF5ExtError, ValueError, TypeError) as error:
        raise DataError(
            f"{path}: not a readable HDF5 file ({str(error).splitlines()[0]}); "
            "give the .h5 file written with DataFrame.to_hdf"
        ) from None
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{path}: holds a {type(frame).__name__}, not a DataFrame; store the readings "
            "as a DataFrame with one column per sensor"
        )
    if frame.empty:
        raise DataError(f"{path}: the DataFrame has no rows or no columns; store readings")
    return frame


def read_dcrnn_adjacency(path: Path | str, sensor_ids: Sequence[str]) -> SensorGraph:
    """The DCRNN ``adj_mx.pkl`` graph, reordered to ``sensor_ids`` (row = source sensor).

    The pickle holds ``[sensor_ids, sensor_id_to_index, adj_mx]`` with ``adj_mx: [m m]``;
    detectors of the pickle absent from ``sensor_ids`` are left out.

    Parameters
    ----------
    path
        The ``adj_mx.pkl`` file.
    sensor_ids
        The ``n`` sensor ids of the readings, in order.
    """
    path = require_file(path, "adjacency pickle")
    content = _load_adjacency_pickle(path)
    if not (isinstance(content, (list, tuple)) and len(content) == 3):
        raise DataError(
            f"{path}: expected the DCRNN list [sensor_ids, sensor_id_to_index, adj_mx]; "
            "give the adj_mx.pkl of the DCRNN release"
        )
    _, id_to_index, matrix = content
    if not isinstance(id_to_index, dict) or not isinstance(matrix, np.ndarray):
        raise DataError(
            f"{path}: expected a dict sensor_id_to_index and an array adj_mx; "
            "give the adj_mx.pkl of the DCRNN release"
        )
    size = matrix.shape[0] if matrix.ndim == 2 else -1
    if matrix.ndim != 2 or matrix.shape[1] != size:
        raise DataError(f"{path}: adj_mx has shape {matrix.shape}; expected a square matrix")
    index = {normalise_id(key): value for key, value in id_to_index.items()}
    absent = [i for i in sensor_ids if i not in index]
    if absent:
        raise DataError(
            f"{path}: {len(absent)} sensors of the readings are not in the pickle: "
            f"{first_listed(absent)}; use the adj_mx.pkl of this data set"
        )
    positions = np.array([index[i] for i in sensor_ids], dtype=object)
    if not all(isinstance(p, (int, np.integer)) and 0 <= p < size for p in positions):
        raise DataError(
            f"{path}: sensor_id_to_index points outside the {size}×{size} adj_mx; "
            "give the adj_mx.pkl of the DCRNN release"
        )
    positions = positions.astype(np.int64)
    reordered = np.asarray(matrix[np.ix_(positions, positions)], dtype=np.float64)
    sources, targets = np.nonzero(reordered)
    try:
        return weighted_graph(len(sensor_ids), sources, targets, reordered[sources, targets])
    except DataError as error:
        raise DataError(f"{path}: {error}") from None


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, strings, numbers and NumPy arrays; refuses any other global."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def _load_adjacency_pickle(path: Path) -> object:
    try:
        with path.open("rb") as file:
            # latin1: the DCRNN pickle was written by Python 2 (NumPy bytes inside).
            return _ArrayOnlyUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DataError(
            f"{path}: not a DCRNN adjacency pickle ({error}); "
            "give the adj_mx.pkl of the DCRNN release"
        ) from None


def _refuse_pickled_nodes(node: tables.Node, path: Path) -> None:
    """PyTables keeps object columns as pickles: refuse them before pandas would load them."""
    leaves = [node] if isinstance(node, tables.Leaf) else node._f_walknodes("Leaf")
    for leaf in leaves:
        if isinstance(getattr(leaf, "atom", None), tables.ObjectAtom):
            raise DataError(
                f"{path}: node {leaf._v_pathname} stores Python objects (non-numeric cells, "
                "kept as a pickle); store the readings as numbers, NaN or 0 for missing"
            )


def _sensor_ids(columns: pd.Index, path: Path) -> tuple[str, ...]:
    ids = tuple(normalise_id(column) for column in columns)
    seen: set[str] = set()
    repeated = [i for i in ids if i in seen or seen.add(i)]
    if repeated:
        raise DataError(
            f"{path}: sensor columns appear twice: {first_listed(repeated)}; "
            "keep one column per sensor"
        )
    return ids


def _numeric_values(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """``[t n]`` float64 copy of the frame; a non-numeric column is a ``DataError``."""
    for position, column in enumerate(frame.columns):
        if not pd.api.types.is_numeric_dtype(frame.iloc[:, position]):
            raise DataError(
                f"{path}: column {column} holds non-numeric cells "
                f"({frame.iloc[:, position].dtype}); store numbers, NaN or 0 for missing"
            )
    values = frame.to_numpy(dtype=np.float64, copy=True)
    if np.isinf(values).any():
        row, col = np.argwhere(np.isinf(values))[0]
        raise DataError(
            f"{path}: sensor {frame.columns[col]} at {frame.index[row]} is infinite; "
            "store a finite number, NaN or 0 for missing"
        )
    return values


def _timestamps(
    index: pd.Index, path: Path, timezone: str
) -> tuple[pd.DatetimeIndex, pd.Timedelta]:
    """``[t]`` aware timestamps on the index's regular grid, and the grid step."""
    if not isinstance(index, pd.DatetimeIndex) or index.hasnans:
        raise DataError(
            f"{path}: the DataFrame index is not timestamps ({index.dtype}); "
            "index the readings by their time (a DatetimeIndex)"
        )
    index = index.as_unit("ns")
    if index.tz is not None:
        index = index.tz_convert(timezone)
    gaps = np.diff(index.asi8)
    step = pd.Timedelta(int(gaps[0]), unit="ns") if gaps.size else DEFAULT_STEP
    off = np.flatnonzero(gaps != step.value)
    if step <= pd.Timedelta(0) or off.size:
        row = int(off[0]) + 1 if off.size else 1
        raise DataError(
            f"{path}: the index is not one regular increasing grid (row {row}: "
            f"{index[row - 1]} then {index[row]}); resample the readings to a regular grid"
        )
    if index.tz is not None:
        return index, step
    try:
        first = index[0].tz_localize(timezone, ambiguous="raise", nonexistent="raise")
    except ValueError:
        raise DataError(
            f"{path}: the first label {index[0]} does not exist or is ambiguous in {timezone}; "
            "read the labels as UTC (timezone='UTC')"
        ) from None
    return pd.date_range(first, periods=len(index), freq=step).as_unit("ns"), step
