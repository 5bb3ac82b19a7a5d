"""Datasets by name or path: the embedded sets, downloaded standard sets, files on disk.

Names: ``los-loop`` and ``synthetic-demand`` (city folders shipped inside the package,
each described by its own ``dataset.toml``: :func:`describe_embedded`) and the downloadable
standard sets (``metr-la``, ``pems-bay``, ``pems04``, ``pems08``;
``urbanflow datasets download NAME``).
Paths: a city folder, a METR-LA/PEMS-BAY ``.h5`` file (graph files beside it), a PEMS0X
``.npz`` file (distances CSV beside it), a T-GCN folder (``*_speed.csv`` + ``*_adj.csv``), or
a LargeST folder (``ca_his_raw_YYYY.h5`` + ``ca_meta.csv`` + ``ca_rn_adj.npy``; the latest
year, or the year of a ``ca_his_raw_YYYY.h5`` path).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pandas as pd

from urbanflow.data.dataset import CityDataset, DatasetMetadata
from urbanflow.data.download import CATALOGUE, dataset_folder, is_downloaded
from urbanflow.data.readers.city_folder import read_city_folder, read_settings
from urbanflow.data.readers.largest import READINGS_NAME, largest_years, read_largest
from urbanflow.data.readers.metr_hdf5 import read_traffic_hdf5
from urbanflow.data.readers.pems_npz import PEMS_START, read_pems_npz
from urbanflow.data.readers.tgcn_csv import LOS_LOOP_START, LOS_LOOP_TIMEZONE, read_tgcn_csv
from urbanflow.errors import DataError, UnknownNameError

EMBEDDED = ("los-loop", "synthetic-demand")
# T-GCN releases: name prefix -> (start of the first row, frequency, time zone)
TGCN_RELEASES = {
    "los": (LOS_LOOP_START, "5min", LOS_LOOP_TIMEZONE),
    "sz": ("2015-01-01 00:00", "15min", "Asia/Shanghai"),
}


def embedded_folder(name: str) -> Path:
    """The city folder of an embedded dataset, inside the installed package.

    Parameters
    ----------
    name
        An embedded dataset's name (:data:`EMBEDDED`). The folder of ``synthetic-demand``
        also holds ``od.parquet``, its origin-destination table.
    """
    return Path(str(resources.files("urbanflow") / "datasets" / name))


def is_synthetic(metadata: DatasetMetadata) -> bool:
    """Whether a dataset's source says it is synthetic (generated, not measured).

    Parameters
    ----------
    metadata
        The dataset's metadata; its ``source`` mentions "synthetic" for generated data.
    """
    return "synthetic" in metadata.source.lower()


def describe(
    metadata: DatasetMetadata, kind: str, sensors: int, first: pd.Timestamp, last: pd.Timestamp
) -> str:
    """One line about a dataset: synthetic or not, quantity, unit, kind, sensors, step, span.

    Parameters
    ----------
    metadata
        The dataset's metadata (its ``dataset.toml``).
    kind
        ``level``, ``count`` or ``occupancy``.
    sensors
        Number of sensors (zones, wards).
    first, last
        The first and last timestamps; shown as local dates.
    """
    first, last = (_local(t, metadata.timezone) for t in (first, last))
    days = (last.date() - first.date()).days + 1
    quantity = f"{metadata.quantity} ({metadata.unit})" if metadata.unit else metadata.quantity
    synthetic = "synthetic " if is_synthetic(metadata) else ""
    return (
        f"{synthetic}{quantity}, {kind}, {sensors} sensors, every {metadata.frequency}, "
        f"{first:%Y-%m-%d} to {last:%Y-%m-%d} ({days} days)"
    )


def describe_embedded(name: str) -> str:
    """:func:`describe` of an embedded dataset from its own files, without reading every value.

    Reads ``dataset.toml``, the rows of ``sensors.csv`` and the timestamp column of the
    readings; the kind is the one ``dataset.toml`` declares.

    Parameters
    ----------
    name
        An embedded dataset's name (:data:`EMBEDDED`).
    """
    folder = embedded_folder(name)
    metadata = read_settings(folder).metadata
    sensors = len(pd.read_csv(folder / "sensors.csv", usecols=["sensor_id"]))
    times = pd.read_parquet(folder / "readings.parquet", columns=["timestamp"])["timestamp"]
    first, last = (pd.Timestamp(t) for t in (times.min(), times.max()))
    return describe(metadata, metadata.kind or "inferred", sensors, first, last)


def _local(time: pd.Timestamp, timezone: str) -> pd.Timestamp:
    """An aware time in ``timezone``; a naive one is local time already."""
    return time if time.tzinfo is None else time.tz_convert(timezone)


def dataset_names() -> list[str]:
    """Every dataset name: embedded first, then downloadable."""
    return [*EMBEDDED, *CATALOGUE]


def load_dataset(name_or_path: str | Path) -> CityDataset:
    """A dataset by built-in name, or read from a path in any supported layout.

    Parameters
    ----------
    name_or_path
        A name of :func:`dataset_names`, or the path of a city folder, ``.h5`` or
        ``.npz`` file, or T-GCN folder.
    """
    text = str(name_or_path)
    if text in EMBEDDED:
        return read_city_folder(embedded_folder(text))
    if text in CATALOGUE:
        return _load_downloaded(text)
    path = Path(text).expanduser()
    if path.exists():
        return _load_path(path)
    raise UnknownNameError(
        f"no dataset named or at {text!r}; names: {', '.join(dataset_names())}, "
        "or give the path of a city folder or data file"
    )


def _load_downloaded(name: str) -> CityDataset:
    if not is_downloaded(name):
        raise DataError(
            f"{name} is not downloaded yet; run `urbanflow datasets download {name}` "
            f"(files go to {dataset_folder(name)})"
        )
    return DOWNLOADED_READERS[name](dataset_folder(name))


def _dcrnn_reader(name: str, suffix: str) -> Callable[[Path], CityDataset]:
    """METR-LA (``suffix`` "") and PEMS-BAY ("_bay") as the DCRNN release names their files."""

    def read(folder: Path) -> CityDataset:
        return read_traffic_hdf5(
            folder / f"{name}.h5",
            adjacency_pkl=folder / f"adj_mx{suffix}.pkl",
            locations_csv=folder / f"graph_sensor_locations{suffix}.csv",
            name=name,
        )

    return read


def _pems_reader(name: str) -> Callable[[Path], CityDataset]:
    stem = name.upper()

    def read(folder: Path) -> CityDataset:
        return read_pems_npz(
            folder / f"{stem}.npz",
            distances_csv=folder / f"{stem}.csv",
            start=PEMS_START[name],
            name=name,
        )

    return read


DOWNLOADED_READERS: dict[str, Callable[[Path], CityDataset]] = {
    "metr-la": _dcrnn_reader("metr-la", ""),
    "pems-bay": _dcrnn_reader("pems-bay", "_bay"),
    "pems04": _pems_reader("pems04"),
    "pems08": _pems_reader("pems08"),
}


def _load_path(path: Path) -> CityDataset:
    if path.is_dir():
        if any((path / f).exists() for f in ("sensors.csv", "readings.csv", "readings.parquet")):
            return read_city_folder(path)
        speeds = sorted(path.glob("*_speed.csv"))
        if speeds:
            return _load_tgcn(speeds[0])
        if largest_years(path):
            return read_largest(path)
        data_files = sorted(path.glob("*.h5")) + sorted(path.glob("*.npz"))
        if len(data_files) == 1:
            return _load_path(data_files[0])
    elif READINGS_NAME.match(path.name):
        return read_largest(path.parent, year=int(READINGS_NAME.match(path.name).group(1)))
    elif path.suffix == ".h5":
        return _load_hdf5(path)
    elif path.suffix == ".npz":
        return _load_npz(path)
    raise DataError(
        f"{path}: not a layout urbanflow reads; give a city folder (readings.csv or "
        "readings.parquet beside sensors.csv, see docs/data-format.md), an .h5 or .npz file, "
        "a T-GCN folder (NAME_speed.csv and NAME_adj.csv) or a LargeST folder"
    )


def _load_hdf5(path: Path) -> CityDataset:
    """METR-LA / PEMS-BAY layout; the graph from a DCRNN pickle beside it, else distances."""
    folder = path.parent
    pickles = sorted(folder.glob("adj_mx*.pkl"))
    locations = sorted(folder.glob("graph_sensor_locations*.csv"))
    distances = sorted(folder.glob("distances*.csv"))
    return read_traffic_hdf5(
        path,
        adjacency_pkl=pickles[0] if pickles else None,
        distances_csv=distances[0] if distances and not pickles else None,
        locations_csv=locations[0] if locations else None,
        name=path.stem.lower(),
    )


def _load_npz(path: Path) -> CityDataset:
    name = path.stem.lower()
    if name not in PEMS_START:
        raise DataError(
            f"{path.name}: the start time of an NPZ series is not in the file; name it "
            f"{'/'.join(s.upper() + '.npz' for s in PEMS_START)} or call read_pems_npz(start=...)"
        )
    distances = path.with_suffix(".csv")
    return read_pems_npz(
        path,
        distances_csv=distances if distances.exists() else None,
        start=PEMS_START[name],
        name=name,
    )


def _load_tgcn(speed_csv: Path) -> CityDataset:
    prefix = speed_csv.name.removesuffix("_speed.csv")
    if prefix not in TGCN_RELEASES:
        raise DataError(
            f"{speed_csv.name}: a T-GCN speed file has no timestamps and {prefix!r} is not a "
            f"known release ({', '.join(TGCN_RELEASES)}); convert it to a city folder"
        )
    start, frequency, timezone = TGCN_RELEASES[prefix]
    return read_tgcn_csv(
        speed_csv,
        speed_csv.with_name(f"{prefix}_adj.csv"),
        start=start,
        frequency=frequency,
        timezone=timezone,
        name=f"{prefix}-tgcn",
    )
