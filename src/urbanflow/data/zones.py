"""Zones for trip records: H3 cells, square grid cells or the nearest stop.

A zone spec is text (``h3:8``, ``grid:500``, ``stops:stops.csv``); :func:`make_zoning` turns
it into a :class:`Zoning`, which assigns points to zones as ``int64`` codes in NumPy
(``-1``: no zone), describes the zones that received trips (id, centroid, name) and links
them into a zone graph (H3 grid neighbours, or k nearest neighbours for grid cells and
stops) with the distance between centroids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from h3.api import basic_int as h3_int
from scipy.spatial import cKDTree

from urbanflow.data.readers.common import parse_numbers, read_csv
from urbanflow.errors import ConfigError, DataError
from urbanflow.graph.builders import EARTH_RADIUS_M, haversine_m, knn_graph

ZONE_KINDS = ("h3", "grid", "stops")
H3_RESOLUTIONS = range(0, 16)
MIN_CELL_M = 1.0
DEFAULT_MAX_STOP_DISTANCE_M = 500.0
DEFAULT_ZONE_NEIGHBOURS = 8
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180
_ROW_OFFSET, _COL_OFFSET = 1 << 30, 1 << 31  # grid row and column packed in one int64

SPEC_HELP = "write h3:RES (RES 0-15), grid:METRES (e.g. grid:500) or stops:FILE (a CSV)"


@dataclass(frozen=True)
class ZoneSpec:
    """What zones trips are counted in.

    Parameters
    ----------
    kind
        ``h3``, ``grid`` or ``stops``.
    resolution
        H3 resolution 0–15 (``h3`` only).
    cell_m
        Side of a square grid cell in metres (``grid`` only).
    stops
        CSV of ``stop_id,latitude,longitude`` (``stops`` only).
    """

    kind: str
    resolution: int = 0
    cell_m: float = 0.0
    stops: Path | None = None

    def __str__(self) -> str:
        if self.kind == "h3":
            return f"h3:{self.resolution}"
        if self.kind == "grid":
            return f"grid:{self.cell_m:g}"
        return f"stops:{self.stops}"


def parse_zone_spec(text: str) -> ZoneSpec:
    """``h3:RES``, ``grid:METRES`` or ``stops:FILE`` as a :class:`ZoneSpec`, else a
    one-line ``ConfigError``.

    Parameters
    ----------
    text
        The spec as the user wrote it.
    """
    kind, colon, value = str(text).strip().partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if not colon or kind not in ZONE_KINDS or not value:
        raise ConfigError(f"zones {text!r} is not understood; {SPEC_HELP}")
    if kind == "h3":
        if not value.isdigit() or int(value) not in H3_RESOLUTIONS:
            raise ConfigError(
                f"zones {text!r}: H3 resolution must be a whole number from 0 to 15 "
                "(8: cells of about 0.7 km²); e.g. h3:8"
            )
        return ZoneSpec("h3", resolution=int(value))
    if kind == "grid":
        try:
            cell_m = float(value)
        except ValueError:
            cell_m = math.nan
        if not math.isfinite(cell_m) or cell_m < MIN_CELL_M:
            raise ConfigError(
                f"zones {text!r}: the grid cell side must be a number of metres ≥ {MIN_CELL_M:g}; "
                "e.g. grid:500"
            )
        return ZoneSpec("grid", cell_m=cell_m)
    return ZoneSpec("stops", stops=Path(value).expanduser())


@dataclass(frozen=True)
class ZoneTable:
    """The zones that received trips, in sensor order.

    Parameters
    ----------
    codes
        ``[z]`` int64 zone codes (what :meth:`Zoning.assign` returns).
    ids
        ``[z]`` zone ids, the sensor ids of the city folders.
    latitude
        ``[z]`` centroid latitudes, degrees.
    longitude
        ``[z]`` centroid longitudes, degrees.
    names
        ``[z]`` labels for people.
    """

    codes: np.ndarray
    ids: tuple[str, ...]
    latitude: np.ndarray
    longitude: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ZoneEdges:
    """Directed edges of the zone graph, both directions listed.

    Parameters
    ----------
    sources
        ``[e]`` int64 zone indices (rows of the :class:`ZoneTable`).
    targets
        ``[e]`` int64 zone indices.
    distance_m
        ``[e]`` great-circle distance between the two centroids, metres.
    """

    sources: np.ndarray
    targets: np.ndarray
    distance_m: np.ndarray


class Zoning:
    """Assigns points to zones of one spec; subclasses implement each kind.

    Parameters
    ----------
    spec
        The zone spec.
    """

    def __init__(self, spec: ZoneSpec) -> None:
        self.spec = spec

    def assign(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """``[r]`` int64 zone code of each point; ``-1`` for no zone or a NaN coordinate.

        Parameters
        ----------
        latitude
            ``[r]`` degrees, NaN where missing.
        longitude
            ``[r]`` degrees, NaN where missing.
        """
        raise NotImplementedError

    def describe(self, codes: np.ndarray) -> ZoneTable:
        """The zones of ``codes`` (distinct, any order) as a table sorted by code.

        Parameters
        ----------
        codes
            ``[z]`` zone codes that received trips.
        """
        raise NotImplementedError

    def edges(self, table: ZoneTable) -> ZoneEdges:
        """The zone graph between the zones of ``table``.

        Parameters
        ----------
        table
            The zones kept.
        """
        raise NotImplementedError


def make_zoning(
    spec: ZoneSpec,
    *,
    origin: tuple[float, float, float, float] | None = None,
    max_stop_distance_m: float = DEFAULT_MAX_STOP_DISTANCE_M,
    neighbours: int = DEFAULT_ZONE_NEIGHBOURS,
) -> Zoning:
    """The :class:`Zoning` of a spec.

    Parameters
    ----------
    spec
        The zone spec (:func:`parse_zone_spec`).
    origin
        ``(south, west, north, east)`` extent the square grid is laid on: its cells start at
        the south-west corner, on a local equirectangular projection around the centre
        (``grid`` only; required there).
    max_stop_distance_m
        A point farther than this from every stop has no zone (``stops`` only).
    neighbours
        k of the k-nearest-neighbour zone graph (``grid`` and ``stops``).
    """
    if neighbours < 1:
        raise ConfigError(f"neighbours {neighbours} must be at least 1")
    if spec.kind == "h3":
        return H3Zoning(spec)
    if spec.kind == "grid":
        if origin is None:
            raise ConfigError("grid zones need the extent to lay the grid on")
        return GridZoning(spec, origin, neighbours)
    if not max_stop_distance_m > 0:
        raise ConfigError(
            f"max stop distance {max_stop_distance_m!r} must be a positive number of metres"
        )
    return StopZoning(spec, max_stop_distance_m, neighbours)


def _no_zones(latitude: np.ndarray, longitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[r]`` int64 codes all ``-1`` (no zone) and ``[r]`` whether both coordinates are finite."""
    codes = np.full(len(latitude), -1, dtype=np.int64)
    return codes, np.isfinite(latitude) & np.isfinite(longitude)


def _edges_between(table: ZoneTable, src: np.ndarray, dst: np.ndarray) -> ZoneEdges:
    """Edges ``src[e] -> dst[e]`` (rows of ``table``) with their great-circle lengths."""
    lat, lon = table.latitude, table.longitude
    return ZoneEdges(src, dst, haversine_m(lat[src], lon[src], lat[dst], lon[dst]))


def _knn_edges(table: ZoneTable, neighbours: int) -> ZoneEdges:
    graph = knn_graph(table.latitude, table.longitude, k=neighbours)
    return _edges_between(table, graph.sources, graph.targets)


class H3Zoning(Zoning):
    """H3 cells of one resolution (``h3`` package, 4.x); codes are the cells' integers.

    Parameters
    ----------
    spec
        An ``h3`` spec.
    """

    def assign(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """``[r]`` the H3 cell of each point as int64, ``-1`` where a coordinate is NaN.

        The cell is computed once per distinct point (tap records repeat a few locations).

        Parameters
        ----------
        latitude
            ``[r]`` degrees, NaN where missing.
        longitude
            ``[r]`` degrees, NaN where missing.
        """
        codes, ok = _no_zones(latitude, longitude)
        if not ok.any():
            return codes
        points, inverse = np.unique(latitude[ok] + 1j * longitude[ok], return_inverse=True)
        resolution = self.spec.resolution
        cell = h3_int.latlng_to_cell
        cells = np.fromiter(
            (cell(p.real, p.imag, resolution) for p in points.tolist()),
            dtype=np.int64,
            count=points.size,
        )
        codes[ok] = cells[inverse.ravel()]
        return codes

    def describe(self, codes: np.ndarray) -> ZoneTable:
        """H3 cells sorted by code, their centres and ids as H3 hex strings.

        Parameters
        ----------
        codes
            ``[z]`` H3 cells as int64.
        """
        codes = np.unique(np.asarray(codes, dtype=np.int64))
        centres = np.array([h3_int.cell_to_latlng(int(c)) for c in codes]).reshape(-1, 2)
        ids = tuple(h3_int.int_to_str(int(c)) for c in codes)
        names = tuple(f"H3 cell {i} (resolution {self.spec.resolution})" for i in ids)
        return ZoneTable(codes, ids, centres[:, 0], centres[:, 1], names)

    def edges(self, table: ZoneTable) -> ZoneEdges:
        """H3 grid neighbours (``grid_disk`` at distance 1) that both received trips.

        Parameters
        ----------
        table
            The cells kept.
        """
        index = {int(code): i for i, code in enumerate(table.codes)}
        sources, targets = [], []
        for i, code in enumerate(table.codes):
            for neighbour in h3_int.grid_ring(int(code), 1):
                j = index.get(neighbour)
                if j is not None:
                    sources.append(i)
                    targets.append(j)
        return _edges_between(table, np.array(sources, np.int64), np.array(targets, np.int64))


class GridZoning(Zoning):
    """Square cells of ``cell_m`` metres from the extent's south-west corner, on an
    equirectangular projection around the extent's centre; ids ``g<row>_<col>``.

    Parameters
    ----------
    spec
        A ``grid`` spec.
    origin
        ``(south, west, north, east)`` extent, degrees.
    neighbours
        k of the kNN zone graph (8: the cells around a cell).
    """

    def __init__(
        self, spec: ZoneSpec, origin: tuple[float, float, float, float], neighbours: int
    ) -> None:
        super().__init__(spec)
        south, west, north, _ = origin
        self.south, self.west = float(south), float(west)
        self.cos_centre = math.cos(math.radians((south + north) / 2))
        self.neighbours = neighbours

    def _rows_cols(self, latitude: np.ndarray, longitude: np.ndarray) -> tuple[np.ndarray, ...]:
        size = self.spec.cell_m
        rows = np.floor((latitude - self.south) * METRES_PER_DEGREE / size)
        cols = np.floor((longitude - self.west) * METRES_PER_DEGREE * self.cos_centre / size)
        return rows, cols

    def assign(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """``[r]`` the cell of each point (row and column packed in one int64), ``-1`` where
        a coordinate is NaN.

        Parameters
        ----------
        latitude
            ``[r]`` degrees, NaN where missing.
        longitude
            ``[r]`` degrees, NaN where missing.
        """
        codes, ok = _no_zones(latitude, longitude)
        rows, cols = self._rows_cols(latitude[ok], longitude[ok])
        codes[ok] = (rows.astype(np.int64) + _ROW_OFFSET) * (1 << 32) + (
            cols.astype(np.int64) + _COL_OFFSET
        )
        return codes

    def describe(self, codes: np.ndarray) -> ZoneTable:
        """Cells sorted by row then column, with their centres.

        Parameters
        ----------
        codes
            ``[z]`` packed cell codes.
        """
        codes = np.unique(np.asarray(codes, dtype=np.int64))
        rows = codes // (1 << 32) - _ROW_OFFSET
        cols = codes % (1 << 32) - _COL_OFFSET
        size = self.spec.cell_m
        latitude = self.south + (rows + 0.5) * size / METRES_PER_DEGREE
        longitude = self.west + (cols + 0.5) * size / (METRES_PER_DEGREE * self.cos_centre)
        ids = tuple(f"g{r}_{c}" for r, c in zip(rows.tolist(), cols.tolist(), strict=True))
        names = tuple(
            f"grid row {r}, column {c} ({size:g} m cells)"
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        )
        return ZoneTable(codes, ids, latitude, longitude, names)

    def edges(self, table: ZoneTable) -> ZoneEdges:
        """Each cell to its ``neighbours`` nearest kept cells, both directions.

        Parameters
        ----------
        table
            The cells kept.
        """
        return _knn_edges(table, self.neighbours)


class StopZoning(Zoning):
    """The nearest stop within ``max_stop_distance_m`` (k-d tree on projected coordinates).

    Parameters
    ----------
    spec
        A ``stops`` spec; its file is read and checked here.
    max_stop_distance_m
        Farther points have no zone.
    neighbours
        k of the kNN zone graph.
    """

    def __init__(self, spec: ZoneSpec, max_stop_distance_m: float, neighbours: int) -> None:
        super().__init__(spec)
        assert spec.stops is not None
        self.stops = read_stops(spec.stops)
        self.max_stop_distance_m = float(max_stop_distance_m)
        self.neighbours = neighbours
        self.lat0 = float(np.mean(self.stops["latitude"]))
        self.cos0 = math.cos(math.radians(self.lat0))
        self.lon0 = float(np.mean(self.stops["longitude"]))
        self.tree = cKDTree(
            self._project(self.stops["latitude"].to_numpy(), self.stops["longitude"].to_numpy())
        )

    def _project(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        x = (longitude - self.lon0) * METRES_PER_DEGREE * self.cos0
        y = (latitude - self.lat0) * METRES_PER_DEGREE
        return np.column_stack([x, y])

    def assign(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """``[r]`` row of the nearest stop in the stops file, ``-1`` if none is within the
        maximum distance or a coordinate is NaN.

        Parameters
        ----------
        latitude
            ``[r]`` degrees, NaN where missing.
        longitude
            ``[r]`` degrees, NaN where missing.
        """
        codes, ok = _no_zones(latitude, longitude)
        if ok.any():
            _, nearest = self.tree.query(
                self._project(latitude[ok], longitude[ok]),
                distance_upper_bound=self.max_stop_distance_m,
            )
            codes[ok] = np.where(nearest < len(self.stops), nearest, -1)
        return codes

    def describe(self, codes: np.ndarray) -> ZoneTable:
        """Stops in file order, with their coordinates and names.

        Parameters
        ----------
        codes
            ``[z]`` rows of the stops file.
        """
        codes = np.unique(np.asarray(codes, dtype=np.int64))
        rows = self.stops.iloc[codes]
        return ZoneTable(
            codes,
            tuple(rows["stop_id"]),
            rows["latitude"].to_numpy(np.float64),
            rows["longitude"].to_numpy(np.float64),
            tuple(rows["name"]),
        )

    def edges(self, table: ZoneTable) -> ZoneEdges:
        """Each stop to its ``neighbours`` nearest kept stops, both directions.

        Parameters
        ----------
        table
            The stops kept.
        """
        return _knn_edges(table, self.neighbours)


def read_stops(path: Path | str) -> pd.DataFrame:
    """``stop_id, latitude, longitude, name`` of a stops CSV, checked row by row.

    ``stop_lat``/``stop_lon`` (GTFS ``stops.txt``) are read as ``latitude``/``longitude``
    and ``stop_name`` as ``name``; ``name`` defaults to the id.

    Parameters
    ----------
    path
        The stops CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: stops file not found; give a CSV with stop_id,latitude,longitude")
    frame = read_csv(path, label=path.name, dtype=str, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.rename(
        columns={"stop_lat": "latitude", "stop_lon": "longitude", "stop_name": "name"}
    )
    missing = [c for c in ("stop_id", "latitude", "longitude") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path.name}: missing column(s) {', '.join(missing)} (columns there: "
            f"{', '.join(map(str, frame.columns))}); the header must have "
            "stop_id,latitude,longitude"
        )
    if frame.empty:
        raise DataError(f"{path.name}: empty (a header but no stops); add stops")
    ids = frame["stop_id"].fillna("").astype(str).str.strip()
    for row in np.flatnonzero((ids == "").to_numpy() | ids.duplicated().to_numpy())[:1]:
        problem = "is empty" if ids.iloc[row] == "" else f"{ids.iloc[row]!r} appears twice"
        raise DataError(f"{path.name}: stop id {problem} (line {row + 2}); give each stop one id")
    result = pd.DataFrame({"stop_id": ids})
    for column, limit in (("latitude", 90), ("longitude", 180)):

        def refuse(row: int, problem: str, column: str = column) -> DataError:
            return DataError(
                f"{path.name}: {column} {frame[column].iloc[row]!r} of stop {ids.iloc[row]!r} "
                f"(line {row + 2}) is {problem}; write degrees"
            )

        values = parse_numbers(frame[column], refuse)
        bad = np.flatnonzero(np.isnan(values) | (np.abs(values) > limit))
        if bad.size:
            row = int(bad[0])
            raise DataError(
                f"{path.name}: {column} {frame[column].iloc[row]!r} of stop {ids.iloc[row]!r} "
                f"(line {row + 2}) is missing or outside -{limit}..{limit}; fix the value"
            )
        result[column] = values
    names = frame["name"].fillna("").astype(str).str.strip() if "name" in frame else ids
    result["name"] = names.where(names != "", ids).to_numpy()
    return result
