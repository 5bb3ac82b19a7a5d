"""The NPZ layout of PEMS03/04/07/08 (ASTGCN and STSGCN releases).

```
PEMS04.npz   key "data": [t n 3] (flow, occupancy, speed) or [t n 1] (flow; PEMS03, PEMS07)
PEMS04.csv   from,to,cost (or from,to,distance): sensor indices 0..n-1, distance in metres
PEMS03.txt   (PEMS03 only) one sensor id per line; its distance rows name these ids
```
The files carry no time: the caller gives ``start`` (see :data:`PEMS_START`) and the grid's
``frequency``. No coordinates are published, so they are NaN.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.data.readers.common import (
    connectivity_graph,
    grid_from_start,
    normalise_id,
    require_file,
)
from urbanflow.data.timegrid import frequency_alias, parse_frequency
from urbanflow.errors import DataError
from urbanflow.graph.graph import SensorGraph

# First day of each release (Caltrans PeMS, California: pass PEMS_TIMEZONE to read them as
# local time; the files hold no time, so the default UTC keeps the dates as UTC labels).
PEMS_TIMEZONE = "America/Los_Angeles"
PEMS_START = {
    "pems03": "2018-09-01",
    "pems04": "2018-01-01",
    "pems07": "2017-05-01",
    "pems08": "2016-07-01",
}
CHANNELS = {3: ("flow", "occupancy", "speed"), 1: ("flow",)}


def read_pems_npz(
    npz_path: Path | str,
    *,
    distances_csv: Path | str | None = None,
    start: str,
    frequency: str = "5min",
    timezone: str = "UTC",
    name: str = "pems04",
    id_filename: Path | str | None = None,
) -> CityDataset:
    """Read a PEMS0X ``.npz`` (and its distances CSV) into a ``CityDataset``.

    ``readings``: ``[t n c]`` with ``c`` = 3 (flow, occupancy, speed) or 1 (flow); flow in
    vehicles per 5 minutes is channel 0. No value is declared missing. Sensors are the
    indices ``0..n-1``, or the ids of ``id_filename`` (one per line, in the ``n`` order).
    Timestamps start at ``start`` (naive = local in ``timezone``; ``PEMS_START`` has the
    release dates) and step by ``frequency`` in absolute time. The graph links the detector
    pairs that ``distances_csv`` lists, both ways, with weight 1: the release lists only
    adjacent detectors, so a distance kernel with σ from those few distances would drop most
    of them (no edges without the file); a row naming a sensor outside the readings is a
    ``DataError``.

    Parameters
    ----------
    npz_path
        The ``.npz`` readings file.
    distances_csv
        The release's ``from,to,cost`` CSV; default none (no edges).
    start
        First timestamp; naive text is local time in ``timezone``.
    frequency
        The step; default ``5min``.
    timezone
        IANA time-zone name (``America/Los_Angeles``); default ``UTC``.
    name
        The dataset's name; default ``pems04``.
    id_filename
        Sensor ids, one per line; default none (``0..n-1``).
    """
    npz_path = require_file(npz_path, "PEMS .npz file")
    data = read_npz_data(npz_path)
    num_steps, num_sensors, num_channels = data.shape
    if id_filename is None:
        sensor_ids = tuple(str(i) for i in range(num_sensors))
    else:
        sensor_ids = read_id_list(require_file(id_filename, "sensor id list"), num_sensors)
    if distances_csv is None:
        graph = SensorGraph.empty(num_sensors)
    else:
        graph = connectivity_graph(distances_csv, sensor_ids)
    nowhere = np.full(num_sensors, np.nan)
    return CityDataset(
        readings=data,
        timestamps=grid_from_start(start, num_steps, frequency, timezone),
        sensors=Sensors(sensor_ids, nowhere, nowhere),
        graph=graph,
        metadata=DatasetMetadata(
            name=name,
            quantity="flow",
            unit="vehicles/5min",
            frequency=frequency_alias(parse_frequency(frequency)),
            timezone=timezone,
            source=f"{npz_path.name} (ASTGCN/STSGCN PEMS layout)",
            channels=CHANNELS[num_channels],
        ),
    )


def read_npz_data(path: Path) -> np.ndarray:
    """The ``[t n c]`` float32 array under key ``data`` (``c`` = 1 or 3), pickles refused.

    Parameters
    ----------
    path
        The ``.npz`` file.
    """
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path}: a single .npy array, not an .npz archive; "
                "save it with np.savez(path, data=readings)"
            )
        with archive:
            if "data" not in archive.files:
                raise DataError(
                    f"{path}: no 'data' array (keys: {', '.join(archive.files) or 'none'}); "
                    "save the readings with np.savez(path, data=readings)"
                )
            data = archive["data"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(
            f"{path}: not a readable .npz archive of numbers ({error}); "
            "save the readings with np.savez(path, data=readings)"
        ) from None
    if data.dtype.kind not in "biuf":
        raise DataError(
            f"{path}: 'data' holds {data.dtype} values, not numbers; save numeric readings"
        )
    if data.ndim != 3 or data.shape[2] not in CHANNELS or 0 in data.shape:
        raise DataError(
            f"{path}: 'data' has shape {data.shape}; expected [time, sensors, 3] "
            "(flow, occupancy, speed) or [time, sensors, 1] (flow)"
        )
    values = data.astype(np.float32)
    if np.isinf(values).any():
        step, sensor, channel = np.argwhere(np.isinf(values))[0]
        raise DataError(
            f"{path}: 'data' is infinite at step {step}, sensor {sensor}, channel {channel}; "
            "store finite numbers (NaN for missing)"
        )
    return values


def read_id_list(path: Path, num_sensors: int) -> tuple[str, ...]:
    """Sensor ids, one per line (blank lines skipped); there must be ``num_sensors``.

    Parameters
    ----------
    path
        The id list.
    num_sensors
        ``n``, the ids expected.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; write one sensor id per line") from None
    ids = tuple(normalise_id(line) for line in lines if line.strip())
    if len(ids) != num_sensors:
        raise DataError(
            f"{path}: {len(ids)} sensor ids but the readings have {num_sensors} sensors; "
            "give one id per sensor, in the readings' order"
        )
    return ids
