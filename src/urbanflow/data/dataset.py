"""CityDataset: the one validated value every layer works with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd

from urbanflow.data.timegrid import steps_per_day
from urbanflow.errors import DataError
from urbanflow.graph.graph import SensorGraph

FLOW_KINDS = ("level", "count", "occupancy")
"""What readings are: ``level`` (speed, any real value), ``count`` (non-negative integers per
step: riders, trips), ``occupancy`` (non-negative integers in a unit of limited ``capacity``:
beds, berths, spaces)."""
INF_CHECK_CELLS = 1 << 24
"""Cells checked for infinity at a time (a 16 MiB bool array, not one the readings' size)."""


def infer_kind(values: np.ndarray) -> str:
    """``count`` when every present value is a non-negative integer, else ``level``.

    Parameters
    ----------
    values
        Readings of any shape, NaN where missing.
    """
    present = values[np.isfinite(values)]
    if present.size and (present >= 0).all() and (present == np.round(present)).all():
        return "count"
    return "level"


@dataclass(frozen=True)
class Sensors:
    """Sensor identities and positions, in the order of the readings' ``n`` axis.

    Coordinates are degrees (WGS 84); NaN where a format gives none (PEMS0X files).

    Parameters
    ----------
    ids
        ``[n]`` sensor ids (kept as text), unique.
    latitude
        ``[n]`` degrees north, -90..90; NaN where unknown.
    longitude
        ``[n]`` degrees east, -180..180; NaN where unknown.
    names
        ``[n]`` display names, or None (the default).
    capacity
        ``[n]`` capacity of each unit (beds, berths, spaces), NaN where not given, or None
        (the default) when no sensor has one.
    """

    ids: tuple[str, ...]
    latitude: np.ndarray
    longitude: np.ndarray
    names: tuple[str, ...] | None = None
    capacity: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids = tuple(str(i) for i in self.ids)
        object.__setattr__(self, "ids", ids)
        lat = np.asarray(self.latitude, dtype=np.float64)
        lon = np.asarray(self.longitude, dtype=np.float64)
        object.__setattr__(self, "latitude", lat)
        object.__setattr__(self, "longitude", lon)
        if lat.shape != (len(ids),) or lon.shape != (len(ids),):
            raise DataError(
                f"sensors: {len(ids)} ids but {lat.size} latitudes and {lon.size} longitudes"
            )
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            duplicate = next(i for i in ids if i in seen or seen.add(i))
            raise DataError(f"sensors: id {duplicate!r} appears twice; give each sensor one row")
        bad_lat = np.flatnonzero(np.abs(lat) > 90)
        if bad_lat.size:
            i = bad_lat[0]
            raise DataError(
                f"sensors: latitude {lat[i]} of sensor {ids[i]!r} is outside -90..90; "
                "check the column order (latitude, longitude) and the value"
            )
        bad_lon = np.flatnonzero(np.abs(lon) > 180)
        if bad_lon.size:
            i = bad_lon[0]
            raise DataError(
                f"sensors: longitude {lon[i]} of sensor {ids[i]!r} is outside -180..180; "
                "check the column order (latitude, longitude) and the value"
            )
        if self.names is not None:
            names = tuple("" if n is None else str(n) for n in self.names)
            if len(names) != len(ids):
                raise DataError(f"sensors: {len(ids)} ids but {len(names)} names")
            object.__setattr__(self, "names", names)
        if self.capacity is not None:
            capacity = np.asarray(self.capacity, dtype=np.float64)
            if capacity.shape != (len(ids),):
                raise DataError(f"sensors: {len(ids)} ids but {capacity.size} capacities")
            bad = np.flatnonzero(capacity <= 0)
            if bad.size:
                i = bad[0]
                raise DataError(
                    f"sensors: capacity {capacity[i]} of sensor {ids[i]!r} is not positive; "
                    "give a number > 0 or leave the cell empty"
                )
            object.__setattr__(self, "capacity", capacity)

    @property
    def has_coordinates(self) -> bool:
        return bool(np.isfinite(self.latitude).all() and np.isfinite(self.longitude).all())

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self) -> dict[str, int]:
        return {sensor_id: i for i, sensor_id in enumerate(self.ids)}


@dataclass(frozen=True)
class DatasetMetadata:
    """What the readings measure and where they come from.

    Parameters
    ----------
    name
        The dataset's name.
    quantity
        What channel 0 measures (``speed``, ``flow``); default ``value``.
    unit
        Its unit (``mph``); default empty.
    frequency
        The grid's step as a pandas alias (``5min``); empty: taken from the timestamps.
    timezone
        IANA name of the local time zone; default ``UTC``.
    null_value
        The value the source used for a missing reading (turned into NaN), or None (the
        default).
    source
        Where the readings come from; default empty.
    licence
        Terms of use of the data; default empty.
    channels
        Name of each channel ``c``; default ``('value',)``.
    kind
        ``level``, ``count`` or ``occupancy`` (:data:`FLOW_KINDS`) as declared; empty (the
        default): inferred from the readings (:attr:`CityDataset.kind`).
    country
        ISO 3166 code whose public holidays are a calendar feature (``holidays`` package);
        empty (the default): no holidays.
    subdivision
        State or province code within ``country`` (``CA``, ``BY``); empty: national holidays.
    """

    name: str
    quantity: str = "value"
    unit: str = ""
    frequency: str = ""
    timezone: str = "UTC"
    null_value: float | None = None
    source: str = ""
    licence: str = ""
    channels: tuple[str, ...] = ("value",)
    kind: str = ""
    country: str = ""
    subdivision: str = ""

    def __post_init__(self) -> None:
        if self.kind and self.kind not in FLOW_KINDS:
            raise DataError(f"kind {self.kind!r} is unknown; choose one of {', '.join(FLOW_KINDS)}")
        if self.subdivision and not self.country:
            raise DataError("a holiday `subdivision` needs its `country`; set both")


@dataclass(frozen=True)
class CityDataset:
    """Readings of a sensor network on a regular time grid.

    ``readings``: ``[t n c]`` float32, NaN where a reading is missing (a reader turns the
    declared null value into NaN). Channel 0 is the quantity forecast.
    ``timestamps``: ``[t]`` timezone-aware, strictly increasing, one ``frequency`` apart.

    Parameters
    ----------
    readings
        ``[t n c]`` float32, NaN where missing; channel 0 is forecast.
    timestamps
        ``[t]`` time-zone-aware, one step apart.
    sensors
        The ``n`` sensors, in the order of the readings' ``n`` axis.
    graph
        Graph over the ``n`` sensors.
    metadata
        What the readings measure and where they come from.
    """

    readings: np.ndarray
    timestamps: pd.DatetimeIndex
    sensors: Sensors
    graph: SensorGraph
    metadata: DatasetMetadata

    def __post_init__(self) -> None:
        readings = np.asarray(self.readings, dtype=np.float32)
        object.__setattr__(self, "readings", readings)
        if readings.ndim != 3:
            raise DataError(f"readings must be [t n c]; got {readings.ndim} dimensions")
        steps, num_sensors, channels = readings.shape
        if steps == 0 or num_sensors == 0 or channels == 0:
            raise DataError(f"readings are empty: shape {readings.shape}")
        if _any_infinite(readings):
            raise DataError("readings contain infinite values; use an empty cell for missing")
        if len(self.timestamps) != steps:
            raise DataError(f"{steps} time steps of readings but {len(self.timestamps)} timestamps")
        object.__setattr__(self, "timestamps", pd.DatetimeIndex(self.timestamps).as_unit("ns"))
        if self.timestamps.tz is None:
            raise DataError("timestamps must be timezone-aware; set `timezone` in dataset.toml")
        if steps > 1:
            step = self.step
            if step <= pd.Timedelta(0) or not (np.diff(self.timestamps.asi8) == step.value).all():
                raise DataError(
                    "timestamps are not one regular increasing grid; "
                    "readers put readings on the grid before building a dataset"
                )
        if len(self.sensors) != num_sensors:
            raise DataError(f"{num_sensors} sensors in readings but {len(self.sensors)} in sensors")
        if self.graph.num_sensors != num_sensors:
            raise DataError(
                f"graph has {self.graph.num_sensors} sensors but readings have {num_sensors}"
            )
        if len(self.metadata.channels) != channels:
            raise DataError(
                f"metadata names {len(self.metadata.channels)} channels "
                f"but readings have {channels}"
            )

    @property
    def num_steps(self) -> int:
        return int(self.readings.shape[0])

    @property
    def num_sensors(self) -> int:
        return int(self.readings.shape[1])

    @property
    def step(self) -> pd.Timedelta:
        """The grid's frequency as a duration (from the metadata, else the first gap)."""
        if self.metadata.frequency:
            return pd.Timedelta(pd.tseries.frequencies.to_offset(self.metadata.frequency))
        return pd.Timedelta(self.timestamps[1] - self.timestamps[0])

    @property
    def steps_per_day(self) -> int:
        """Grid steps in one day, rounded up (see :func:`timegrid.steps_per_day`)."""
        return steps_per_day(self.step)

    @cached_property
    def kind(self) -> str:
        """``level``, ``count`` or ``occupancy``: as declared, else inferred from channel 0."""
        return self.metadata.kind or infer_kind(self.readings[..., 0])

    @property
    def kind_source(self) -> str:
        """``declared`` (dataset.toml) or ``inferred`` (from the readings)."""
        return "declared" if self.metadata.kind else "inferred"

    @property
    def non_negative(self) -> bool:
        """Whether readings can never be negative (counts and occupancies)."""
        return self.kind in ("count", "occupancy")

    def missing_fraction(self) -> float:
        """Share of missing target readings (channel 0)."""
        return float(np.isnan(self.readings[..., 0]).mean())

    def slice_steps(self, start: int, stop: int) -> CityDataset:
        """The readings of steps ``[start, stop)``, same sensors, graph and metadata.

        Parameters
        ----------
        start
            First step kept (index into ``t``).
        stop
            Step after the last one kept.
        """
        if not 0 <= start < stop <= self.num_steps:
            raise DataError(f"step range [{start}, {stop}) is outside 0..{self.num_steps}")
        return replace(
            self,
            readings=self.readings[start:stop],
            timestamps=self.timestamps[start:stop],
            # a part keeps the whole series' kind: a slice's own inference could differ
            metadata=replace(self.metadata, kind=self.kind),
        )

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of readings, timestamps and sensor ids: identifies the training data."""
        digest = hashlib.sha256()
        digest.update(memoryview(np.ascontiguousarray(self.readings)).cast("B"))  # no copy
        digest.update(self.timestamps.asi8.tobytes())
        digest.update("\n".join(self.sensors.ids).encode())
        return digest.hexdigest()


def _any_infinite(readings: np.ndarray) -> bool:
    """Whether ``[t ...]`` readings hold ±inf, checked a block of time steps at a time."""
    per_step = max(1, readings[0].size) if len(readings) else 1
    block = max(1, INF_CHECK_CELLS // per_step)
    return any(np.isinf(readings[i : i + block]).any() for i in range(0, len(readings), block))
