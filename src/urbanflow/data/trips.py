"""Trip or tap records to flows: counts per zone and step, and origin–destination counts.

:func:`trips_to_flows` reads trip records (CSV or Parquet, one file or a glob) in DuckDB,
streamed: DuckDB parses, converts times to the local zone, floors them to the step and
filters the bounding box; NumPy assigns zones to one Arrow record batch at a time
(:mod:`urbanflow.data.zones`); DuckDB aggregates the batches. No table of all rows is ever
held in Python. It writes

```
OUT/departures/   city folder: readings.parquet (long), sensors.csv, edges.csv, dataset.toml
OUT/arrivals/     the same for trip ends (when the records have end time and coordinates)
OUT/od.parquet    origin_zone, destination_zone, hour_of_week, trips (with end coordinates)
```

and returns a :class:`TripSummary` that counts every record not counted (missing values,
outside the bounding box, no zone), so nothing is dropped silently.
"""

from __future__ import annotations

import csv
import glob
import gzip
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from urbanflow.data.timegrid import check_timezone, frequency_alias, parse_frequency
from urbanflow.data.zones import (
    DEFAULT_MAX_STOP_DISTANCE_M,
    DEFAULT_ZONE_NEIGHBOURS,
    ZoneSpec,
    ZoneTable,
    Zoning,
    make_zoning,
    parse_zone_spec,
)
from urbanflow.errors import ConfigError, DataError

DEFAULT_BATCH_ROWS = 1_000_000
DEFAULT_MEMORY_LIMIT = "1GB"
TripProgress = Callable[[int, int], None]
"""Called after each batch with (records done, records in all)."""

ISO_HINT = "write ISO 8601 such as '2024-05-14 08:15' or '2024-05-14T08:15:00+02:00'"


@dataclass(frozen=True)
class TripColumns:
    """Names of the columns in the trip records; the end columns are optional.

    Parameters
    ----------
    start_time
        When the trip starts (or the tap happens).
    start_lat
        Where it starts, latitude in degrees.
    start_lon
        Where it starts, longitude in degrees.
    end_time
        When it ends (arrivals need it).
    end_lat
        Where it ends, latitude (arrivals and origin–destination counts need it).
    end_lon
        Where it ends, longitude.
    """

    start_time: str = "start_time"
    start_lat: str = "start_lat"
    start_lon: str = "start_lon"
    end_time: str = "end_time"
    end_lat: str = "end_lat"
    end_lon: str = "end_lon"


_OPTION = {
    "start_time": "--start-time-column",
    "start_lat": "--start-lat-column",
    "start_lon": "--start-lon-column",
    "end_time": "--end-time-column",
    "end_lat": "--end-lat-column",
    "end_lon": "--end-lon-column",
}


@dataclass(frozen=True)
class EndpointCounts:
    """What became of the records at one end of the trips (start or end).

    Parameters
    ----------
    counted
        Records counted in a zone.
    missing
        Records without a time or a coordinate at this end (empty cells).
    outside_bbox
        Records whose point is outside the bounding box.
    no_zone
        Records in the box but in no zone (farther than the maximum distance from every stop).
    """

    counted: int
    missing: int
    outside_bbox: int
    no_zone: int

    @property
    def not_counted(self) -> int:
        """Records at this end that are in no count."""
        return self.missing + self.outside_bbox + self.no_zone


@dataclass(frozen=True)
class TripSummary:
    """What :func:`trips_to_flows` read and wrote.

    Parameters
    ----------
    source
        The input as given (file or glob).
    files
        How many files it matched.
    records
        Records read.
    zones
        Zones kept (those that received at least one departure or arrival).
    departures
        Counts at the trips' start.
    arrivals
        Counts at the trips' end; None without end time and coordinates.
    od_trips
        Trips in ``od.parquet``; None without end coordinates.
    steps
        Time steps of the departures folder (and of the arrivals folder, if any).
    out
        The output folder.
    written
        The paths written.
    """

    source: str
    files: int
    records: int
    zones: int
    departures: EndpointCounts
    arrivals: EndpointCounts | None
    od_trips: int | None
    steps: dict[str, int]
    out: Path
    written: tuple[Path, ...] = field(default=())


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``S,W,N,E`` degrees as a tuple, else a one-line ``ConfigError``.

    Parameters
    ----------
    text
        The box as the user wrote it, e.g. ``48.80,2.25,48.92,2.42``.
    """
    parts = [part.strip() for part in str(text).split(",")]
    try:
        south, west, north, east = (float(part) for part in parts)
    except ValueError:
        raise ConfigError(
            f"bbox {text!r} is not four numbers; write south,west,north,east in degrees, "
            "e.g. 48.80,2.25,48.92,2.42"
        ) from None
    return check_bbox((south, west, north, east))


def check_bbox(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """``bbox`` if south < north, west < east and each is in range, else a ``ConfigError``.

    Parameters
    ----------
    bbox
        ``(south, west, north, east)`` in degrees.
    """
    south, west, north, east = (float(v) for v in bbox)
    written = ",".join(f"{v:g}" for v in (south, west, north, east))
    if not all(math.isfinite(v) for v in (south, west, north, east)):
        raise ConfigError(f"bbox {written} has a value that is not finite; give degrees")
    if not (-90 <= south < north <= 90):
        raise ConfigError(
            f"bbox {written}: needs -90 ≤ south < north ≤ 90; the order is south,west,north,east"
        )
    if not (-180 <= west < east <= 180):
        raise ConfigError(
            f"bbox {written}: needs -180 ≤ west < east ≤ 180; the order is south,west,north,east"
        )
    return south, west, north, east


def trips_to_flows(
    trips: Path | str,
    zones: str | ZoneSpec,
    frequency: str,
    out: Path | str,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    timezone: str = "UTC",
    columns: TripColumns | None = None,
    max_stop_distance_m: float = DEFAULT_MAX_STOP_DISTANCE_M,
    neighbours: int = DEFAULT_ZONE_NEIGHBOURS,
    force: bool = False,
    progress: TripProgress | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> TripSummary:
    """Count trips per zone and time step into city folders, and origin–destination pairs.

    Naive times are local in ``timezone``; times with an offset (or tz-aware Parquet
    columns) are converted to it. Each time is floored to ``frequency`` in local time. Only
    zones that receive at least one trip are kept; every step from the first counted record
    to the last is written, zero where no trip.

    Parameters
    ----------
    trips
        A CSV or Parquet file, or a glob of them (``trips/*.parquet``).
    zones
        ``h3:RES``, ``grid:METRES`` or ``stops:FILE`` (see
        :func:`urbanflow.data.zones.parse_zone_spec`).
    frequency
        The time step: ``15min``, ``1h``, ``PT15M``.
    out
        Output folder; refused if it exists and is not empty, unless ``force``.
    bbox
        ``(south, west, north, east)``: points outside are counted as such, not in a zone.
    timezone
        IANA zone of naive times and of the steps.
    columns
        Column names; default :class:`TripColumns`.
    max_stop_distance_m
        ``stops`` zones: farther points have no zone.
    neighbours
        ``grid`` and ``stops`` zones: k of the zone graph.
    force
        Write into a non-empty ``out``, replacing ``departures/``, ``arrivals/`` and
        ``od.parquet``.
    progress
        Called after each batch with (records done, records in all).
    memory_limit
        DuckDB's memory limit (it spills to a temporary folder beyond it).
    threads
        DuckDB threads; default: the CPU count, at most 4.
    batch_rows
        Records per Arrow batch whose zones NumPy computes at once.
    """
    columns = columns or TripColumns()
    spec = zones if isinstance(zones, ZoneSpec) else parse_zone_spec(zones)
    step = parse_frequency(frequency)
    if step.value % 1000:
        raise ConfigError(f"frequency {frequency!r} must be a whole number of microseconds")
    check_timezone(timezone)
    bbox = None if bbox is None else check_bbox(bbox)
    out = Path(out).expanduser()
    _check_out(out, force)
    files, kind, label = _input_files(trips)
    stop_zoning = (
        make_zoning(spec, max_stop_distance_m=max_stop_distance_m, neighbours=neighbours)
        if spec.kind == "stops"
        else None
    )  # the stops file is checked before the trips are read
    with tempfile.TemporaryDirectory(prefix="urbanflow-trips-") as scratch:
        con = duckdb.connect()
        try:
            con.execute(f"SET memory_limit = {_lit(memory_limit)}")
            con.execute(f"SET threads = {int(threads or min(4, os.cpu_count() or 1))}")
            con.execute(f"SET temp_directory = {_lit(scratch)}")
            con.execute("SET preserve_insertion_order = false")
            con.execute(f"SET TimeZone = {_lit(timezone)}")
            reader = _TripReader(con, files, kind, label, columns, timezone, bbox, step)
            stats = reader.check()
            if stats["records"] == 0:
                raise DataError(f"{label}: empty (no trip records); give a file with data rows")
            origin = bbox or _extent(stats)
            zoning = stop_zoning or make_zoning(
                spec,
                origin=origin,
                max_stop_distance_m=max_stop_distance_m,
                neighbours=neighbours,
            )
            no_zone = reader.aggregate(zoning, batch_rows, progress, int(stats["records"]))
            return _write(
                con,
                reader,
                zoning,
                stats,
                no_zone,
                out,
                force,
                trips,
                spec,
                step,
                timezone,
                len(files),
            )
        except duckdb.Error as error:
            detail = str(error).strip().splitlines()[0]
            raise DataError(
                f"{label}: cannot be read ({detail}); check that it is CSV or Parquet"
            ) from None
        finally:
            con.close()


def _lit(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; give a folder for --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"{out}: exists and is not empty; choose a new --out folder, or add --force to "
            "replace its departures/, arrivals/ and od.parquet"
        )


def _input_files(trips: Path | str) -> tuple[list[Path], str, str]:
    """The files of a path or glob, their format (``csv`` or ``parquet``) and a label."""
    text = str(trips)
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text)) if Path(p).is_file())
        if not files:
            raise DataError(f"{text}: no file matches; check the pattern")
        label = text
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise DataError(f"{text}: trip records file not found; check the path")
        files, label = [path], path.name
    for path in files:
        if path.stat().st_size == 0:
            raise DataError(f"{path.name}: empty (0 bytes); give a file with trip records")
    kinds = {_format(path) for path in files}
    if len(kinds) > 1:
        raise DataError(f"{label}: mixes CSV and Parquet files; convert them to one format")
    return files, kinds.pop(), label


def _format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and (suffixes[-1] in (".csv", ".txt", ".tsv") or suffixes[-2:] == [".csv", ".gz"]):
        return "csv"
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PAR1":
        return "parquet"
    raise DataError(f"{path.name}: not .csv or .parquet; give trip records as CSV or Parquet")


_NUMERIC_TYPES = (
    "DOUBLE",
    "FLOAT",
    "REAL",
    "DECIMAL",
    "INTEGER",
    "BIGINT",
    "SMALLINT",
    "TINYINT",
    "HUGEINT",
    "UBIGINT",
    "UINTEGER",
    "USMALLINT",
    "UTINYINT",
)


class _TripReader:
    """SQL over the trip records: parsing, checks, flooring, and the batches to zone."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        files: list[Path],
        kind: str,
        label: str,
        columns: TripColumns,
        timezone: str,
        bbox: tuple[float, float, float, float] | None,
        step: pd.Timedelta,
    ) -> None:
        self.con, self.files, self.kind, self.label = con, files, kind, label
        self.timezone, self.bbox, self.step_us = timezone, bbox, step.value // 1000
        listed = "[" + ", ".join(_lit(path) for path in files) + "]"
        if kind == "csv":
            self.source = (
                f"read_csv({listed}, header = true, all_varchar = true, union_by_name = true)"
            )
            self.tagged = (
                f"read_csv({listed}, header = true, all_varchar = true, union_by_name = true, "
                "filename = '__file__')"
            )
        else:
            self.source = f"read_parquet({listed}, union_by_name = true)"
            self.tagged = (
                f"read_parquet({listed}, union_by_name = true, filename = '__file__', "
                "file_row_number = true)"
            )
        types = dict(
            con.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {self.source})"
            ).fetchall()
        )
        self.names = {role: getattr(columns, role) for role in _OPTION}
        present = {role: name for role, name in self.names.items() if name in types}
        for role in ("start_time", "start_lat", "start_lon"):
            if role not in present:
                raise DataError(
                    f"{label}: no column {self.names[role]!r} for the {role.replace('_', ' ')} "
                    f"(columns there: {', '.join(types)}); name it with {_OPTION[role]}"
                )
        if ("end_lat" in present) != ("end_lon" in present):
            have, lack = ("end_lat", "end_lon") if "end_lat" in present else ("end_lon", "end_lat")
            raise DataError(
                f"{label}: has {self.names[have]!r} but no {self.names[lack]!r} column; give "
                f"both end coordinates (or name it with {_OPTION[lack]})"
            )
        self.has_od = "end_lat" in present
        self.has_arrivals = self.has_od and "end_time" in present
        self.roles = [r for r in _OPTION if r in present and (r != "end_time" or self.has_arrivals)]
        self.types = {role: types[present[role]] for role in self.roles}
        parsed, bad = {}, {}
        for role in self.roles:
            make = self._time if role.endswith("time") else self._number
            parsed[role], bad[role] = make(role)
        self.bad = bad
        select = ", ".join(f"{sql} AS {role}" for role, sql in parsed.items())
        con.execute(f"CREATE TEMP VIEW trips AS SELECT {select} FROM {self.source}")

    # -- SQL pieces --------------------------------------------------------------------------

    def _time(self, role: str) -> tuple[str, str]:
        column, dtype = _ident(self.names[role]), self.types[role].upper()
        if dtype == "VARCHAR":
            value = f"TRY_CAST(trim({column}) AS TIMESTAMPTZ)"
            return value, f"(nullif(trim({column}), '') IS NOT NULL AND {value} IS NULL)"
        if dtype.startswith("TIMESTAMP WITH TIME ZONE"):
            return column, "false"
        if dtype.startswith("TIMESTAMP") or dtype == "DATE":
            return f"timezone({_lit(self.timezone)}, {column}::TIMESTAMP)", "false"
        raise DataError(
            f"{self.label}: column {self.names[role]!r} has type {dtype}; write times as "
            f"text ({ISO_HINT.removeprefix('write ')}) or as timestamps"
        )

    def _number(self, role: str) -> tuple[str, str]:
        column, dtype = _ident(self.names[role]), self.types[role].upper()
        limit = 90 if role.endswith("lat") else 180
        if dtype == "VARCHAR":
            raw = f"TRY_CAST(trim({column}) AS DOUBLE)"
            given = f"nullif(trim({column}), '') IS NOT NULL"
        elif dtype.split("(")[0] in _NUMERIC_TYPES:
            raw, given = f"CAST({column} AS DOUBLE)", f"{column} IS NOT NULL"
        else:
            raise DataError(
                f"{self.label}: column {self.names[role]!r} has type {dtype}; write degrees "
                "as numbers"
            )
        value = f"CASE WHEN isnan({raw}) THEN NULL ELSE {raw} END"
        bad = f"({given} AND NOT coalesce(isnan({raw}) OR abs({raw}) <= {limit}, false))"
        return value, bad

    def _inside(self, lat: str, lon: str) -> str:
        if self.bbox is None:
            return "true"
        south, west, north, east = self.bbox
        return f"({lat} BETWEEN {south!r} AND {north!r} AND {lon} BETWEEN {west!r} AND {east!r})"

    def _floor(self, time: str) -> str:
        """Start of the step holding ``time``, UTC microseconds, floored in local time."""
        local = f"epoch_us({time} AT TIME ZONE {_lit(self.timezone)})"
        step = self.step_us
        return f"(epoch_us({time}) - ((({local}) % {step}) + {step}) % {step})"

    def _hour_of_week(self, time: str) -> str:
        local = f"({time} AT TIME ZONE {_lit(self.timezone)})"
        return f"((isodow({local}) - 1) * 24 + hour({local}))"

    def _conditions(self) -> dict[str, str]:
        start_ok = "start_time IS NOT NULL AND start_lat IS NOT NULL AND start_lon IS NOT NULL"
        out = {
            "start_ok": start_ok,
            "start_use": f"{start_ok} AND {self._inside('start_lat', 'start_lon')}",
        }
        if self.has_od:
            end_ok = "end_lat IS NOT NULL AND end_lon IS NOT NULL"
            out["end_place_use"] = f"{end_ok} AND {self._inside('end_lat', 'end_lon')}"
            if self.has_arrivals:
                out["end_ok"] = f"end_time IS NOT NULL AND {end_ok}"
        return out

    # -- passes ------------------------------------------------------------------------------

    def check(self) -> dict[str, float]:
        """Pass 1: counts, the first malformed value (raised), and the data's extent."""
        cond = self._conditions()
        parts = ["count(*) AS records"]
        raw = f"SELECT * FROM {self.source}"
        parts += [f"count_if({bad}) AS bad_{role}" for role, bad in self.bad.items()]
        stats_sql = f"SELECT {', '.join(parts)} FROM ({raw})"
        stats = dict(
            zip(
                ["records", *(f"bad_{r}" for r in self.bad)],
                self.con.execute(stats_sql).fetchall()[0],
                strict=True,
            )
        )
        for role in self.bad:
            if stats[f"bad_{role}"]:
                raise self._malformed(role)
        parts = [
            f"count_if(NOT ({cond['start_ok']})) AS start_missing",
            f"count_if(({cond['start_ok']}) AND NOT ({cond['start_use']})) AS start_outside",
            f"min(start_lat) FILTER ({cond['start_use']}) AS south",
            f"max(start_lat) FILTER ({cond['start_use']}) AS north",
            f"min(start_lon) FILTER ({cond['start_use']}) AS west",
            f"max(start_lon) FILTER ({cond['start_use']}) AS east",
        ]
        if self.has_od:
            parts += [
                f"min(end_lat) FILTER ({cond['end_place_use']}) AS end_south",
                f"max(end_lat) FILTER ({cond['end_place_use']}) AS end_north",
                f"min(end_lon) FILTER ({cond['end_place_use']}) AS end_west",
                f"max(end_lon) FILTER ({cond['end_place_use']}) AS end_east",
            ]
        if self.has_arrivals:
            parts += [
                f"count_if(NOT ({cond['end_ok']})) AS end_missing",
                f"count_if(({cond['end_ok']}) AND NOT ({cond['end_place_use']})) AS end_outside",
            ]
        query = self.con.execute(f"SELECT {', '.join(parts)} FROM trips")
        names = [d[0] for d in query.description]
        stats.update(zip(names, query.fetchall()[0], strict=True))
        return stats

    def _malformed(self, role: str) -> DataError:
        """The first malformed value of ``role`` in file order, with its line or row."""
        column = self.names[role]
        where = self.bad[role]
        if self.kind == "parquet":
            value, file, row = self.con.execute(
                f"SELECT {_ident(column)}::VARCHAR, __file__, file_row_number FROM {self.tagged} "
                f"WHERE {where} ORDER BY __file__, file_row_number LIMIT 1"
            ).fetchall()[0]
            place = f"row {int(row) + 1}"
        else:
            found = self.con.execute(
                f"SELECT DISTINCT __file__, {_ident(column)} FROM {self.tagged} WHERE {where} "
                "ORDER BY __file__ LIMIT 1000"
            ).fetchall()
            file = found[0][0]
            line, value = _csv_line(Path(file), column, {v for f, v in found if f == file})
            place = f"line {line}"
        name = Path(file).name
        if role.endswith("time"):
            return DataError(f"{name}: {column} {value!r} on {place} cannot be parsed; {ISO_HINT}")
        limit = 90 if role.endswith("lat") else 180
        try:
            number = float(str(value).strip())
        except ValueError:
            number = math.nan
        if math.isnan(number):
            return DataError(
                f"{name}: {column} {value!r} on {place} is not a number; write decimal degrees"
            )
        hint = " (latitude and longitude swapped?)" if role.endswith("lat") else ""
        return DataError(
            f"{name}: {column} {value!r} on {place} is outside -{limit}..{limit}{hint}; "
            "fix the value"
        )

    def aggregate(
        self, zoning: Zoning, batch_rows: int, progress: TripProgress | None, total: int
    ) -> dict[str, int]:
        """Pass 2: zone each batch in NumPy, count it in DuckDB; returns the no-zone counts."""
        cond = self._conditions()
        parts = [
            f"CASE WHEN {cond['start_use']} THEN {self._floor('start_time')} END AS dep_step",
            f"CASE WHEN {cond['start_use']} THEN {self._hour_of_week('start_time')} END AS how",
            f"CASE WHEN {cond['start_use']} THEN start_lat END AS slat",
            f"CASE WHEN {cond['start_use']} THEN start_lon END AS slon",
        ]
        if self.has_od:
            parts += [
                f"CASE WHEN {cond['end_place_use']} THEN end_lat END AS elat",
                f"CASE WHEN {cond['end_place_use']} THEN end_lon END AS elon",
            ]
        if self.has_arrivals:
            parts.append(
                f"CASE WHEN {cond['end_ok']} THEN {self._floor('end_time')} END AS arr_step"
            )
        writer = self.con.cursor()
        writer.execute("CREATE TABLE dep (step BIGINT, zone BIGINT, n BIGINT)")
        writer.execute("CREATE TABLE arr (step BIGINT, zone BIGINT, n BIGINT)")
        writer.execute("CREATE TABLE od (origin BIGINT, dest BIGINT, how INTEGER, n BIGINT)")
        no_zone = {"start": 0, "end": 0}
        done = 0
        stream = self.con.sql(f"SELECT {', '.join(parts)} FROM trips")
        for batch in stream.to_arrow_reader(batch_rows):
            table = pa.Table.from_batches([batch])
            slat = table["slat"].to_numpy()
            origin = zoning.assign(slat, table["slon"].to_numpy())
            no_zone["start"] += int(np.count_nonzero(np.isfinite(slat) & (origin < 0)))
            table = table.append_column("ozone", pa.array(origin))
            writer.register("batch", table)
            writer.execute(
                "INSERT INTO dep SELECT dep_step, ozone, count(*) FROM batch WHERE ozone >= 0 "
                "GROUP BY ALL"
            )
            if self.has_od:
                elat = table["elat"].to_numpy()
                dest = zoning.assign(elat, table["elon"].to_numpy())
                writer.unregister("batch")
                table = table.append_column("dzone", pa.array(dest))
                writer.register("batch", table)
                writer.execute(
                    "INSERT INTO od SELECT ozone, dzone, how, count(*) FROM batch "
                    "WHERE ozone >= 0 AND dzone >= 0 GROUP BY ALL"
                )
                if self.has_arrivals:
                    has_time = pc.is_valid(table["arr_step"]).to_numpy(zero_copy_only=False)
                    no_zone["end"] += int(
                        np.count_nonzero(has_time & np.isfinite(elat) & (dest < 0))
                    )
                    writer.execute(
                        "INSERT INTO arr SELECT arr_step, dzone, count(*) FROM batch "
                        "WHERE arr_step IS NOT NULL AND dzone >= 0 GROUP BY ALL"
                    )
            writer.unregister("batch")
            done += batch.num_rows
            if progress is not None:
                progress(done, total)
        writer.close()
        return no_zone


def _csv_line(path: Path, column: str, values: set[str]) -> tuple[int, str]:
    """Line and value of the first record of a CSV whose ``column`` holds one of ``values``
    (the header is line 1)."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    wanted = {str(value).strip(): value for value in values}
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        header = [name.strip() for name in next(reader, [])]
        if column in header:
            index = header.index(column)
            for record in reader:
                if len(record) > index and record[index].strip() in wanted:
                    return reader.line_num, wanted[record[index].strip()]
    return 0, next(iter(values))


def _extent(stats: dict[str, float]) -> tuple[float, float, float, float]:
    """South, west, north, east of the usable points (the grid's origin without a bbox)."""
    values = {}
    for side, pick in (("south", min), ("west", min), ("north", max), ("east", max)):
        found = [stats.get(key) for key in (side, f"end_{side}")]
        found = [v for v in found if v is not None]
        values[side] = pick(found) if found else 0.0
    return values["south"], values["west"], values["north"], values["east"]


def _write(
    con: duckdb.DuckDBPyConnection,
    reader: _TripReader,
    zoning: Zoning,
    stats: dict[str, float],
    no_zone: dict[str, int],
    out: Path,
    force: bool,
    trips: Path | str,
    spec: ZoneSpec,
    step: pd.Timedelta,
    timezone: str,
    files: int,
) -> TripSummary:
    """Sum the batches, pick the zones, and write the folders and ``od.parquet``."""
    con.execute(
        "CREATE TABLE dep_n AS SELECT step, zone, sum(n)::BIGINT AS n FROM dep GROUP BY ALL"
    )
    con.execute(
        "CREATE TABLE arr_n AS SELECT step, zone, sum(n)::BIGINT AS n FROM arr GROUP BY ALL"
    )
    union = "SELECT zone FROM dep_n UNION ALL SELECT zone FROM arr_n"
    found = con.execute(f"SELECT DISTINCT zone FROM ({union})").fetchall()
    codes = np.array([row[0] for row in found], dtype=np.int64)
    departures = EndpointCounts(
        counted=int(con.execute("SELECT coalesce(sum(n), 0) FROM dep_n").fetchall()[0][0]),
        missing=int(stats["start_missing"]),
        outside_bbox=int(stats["start_outside"]),
        no_zone=no_zone["start"],
    )
    arrivals = None
    if reader.has_arrivals:
        arrivals = EndpointCounts(
            counted=int(con.execute("SELECT coalesce(sum(n), 0) FROM arr_n").fetchall()[0][0]),
            missing=int(stats["end_missing"]),
            outside_bbox=int(stats["end_outside"]),
            no_zone=no_zone["end"],
        )
    if codes.size == 0:
        raise DataError(
            f"{reader.label}: no record falls in a zone ({departures.missing} without start time "
            f"or coordinates, {departures.outside_bbox} outside the bbox, {departures.no_zone} "
            "with no zone); check --bbox, --zones and the column options"
        )
    table = zoning.describe(codes)
    zone_frame = pd.DataFrame(
        {"code": table.codes, "idx": np.arange(len(table)), "sensor_id": list(table.ids)}
    )
    con.register("zone_list", zone_frame)
    if force:
        for name in ("departures", "arrivals"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "od.parquet").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    edges = zoning.edges(table)
    source = f"trip records from {Path(str(trips)).name} (zones {_spec_label(spec)})"
    written, steps = [], {}
    folders = [("departures", "dep_n")] + ([("arrivals", "arr_n")] if arrivals else [])
    for quantity, counts in folders:
        folder = out / quantity
        folder.mkdir(parents=True, exist_ok=True)
        steps[quantity] = _write_readings(con, counts, step.value // 1000, folder)
        _write_sensors(table, folder)
        if edges.sources.size:
            pd.DataFrame(
                {
                    "source": np.array(table.ids, dtype=object)[edges.sources],
                    "target": np.array(table.ids, dtype=object)[edges.targets],
                    "distance_m": np.round(edges.distance_m, 1),
                }
            ).to_csv(folder / "edges.csv", index=False)
        sigma = float(np.mean(edges.distance_m)) if edges.distance_m.size else None
        _write_toml(
            folder / "dataset.toml",
            {
                "name": f"{out.name}-{quantity}",
                "quantity": quantity,
                "unit": "trips",
                "kind": "count",
                "frequency": frequency_alias(step),
                "timezone": timezone,
                "source": source,
                **({"kernel_sigma_m": round(sigma, 1)} if sigma else {}),
            },
        )
        written.append(folder)
    od_trips = None
    if reader.has_od:
        od_path = out / "od.parquet"
        con.execute(
            f"""COPY (
                SELECT o.sensor_id AS origin_zone, d.sensor_id AS destination_zone,
                       od.how::SMALLINT AS hour_of_week, sum(od.n)::BIGINT AS trips
                FROM od JOIN zone_list o ON o.code = od.origin
                        JOIN zone_list d ON d.code = od.dest
                GROUP BY o.idx, d.idx, o.sensor_id, d.sensor_id, od.how
                ORDER BY o.idx, d.idx, od.how
            ) TO {_lit(od_path)} (FORMAT parquet)"""
        )
        od_trips = int(con.execute("SELECT coalesce(sum(n), 0) FROM od").fetchall()[0][0])
        written.append(od_path)
    return TripSummary(
        source=str(trips),
        files=files,
        records=int(stats["records"]),
        zones=len(table),
        departures=departures,
        arrivals=arrivals,
        od_trips=od_trips,
        steps=steps,
        out=out,
        written=tuple(written),
    )


def _spec_label(spec: ZoneSpec) -> str:
    return f"stops:{spec.stops.name}" if spec.kind == "stops" and spec.stops else str(spec)


def _write_readings(con: duckdb.DuckDBPyConnection, counts: str, step_us: int, folder: Path) -> int:
    """Long ``timestamp, sensor_id, value`` over every step and zone, zero where no trip."""
    low, high = con.execute(f"SELECT min(step), max(step) FROM {counts}").fetchall()[0]
    if low is None:  # no arrival in any kept zone: one step of zeros keeps the folder valid
        low = high = con.execute("SELECT min(step) FROM dep_n").fetchall()[0][0]
    con.execute(
        f"""COPY (
            SELECT timezone('UTC', make_timestamp(s.range)) AS timestamp, z.sensor_id,
                   coalesce(c.n, 0)::BIGINT AS value
            FROM range({int(low)}, {int(high) + step_us}, {step_us}) s
            CROSS JOIN zone_list z
            LEFT JOIN {counts} c ON c.step = s.range AND c.zone = z.code
            ORDER BY s.range, z.idx
        ) TO {_lit(folder / "readings.parquet")} (FORMAT parquet)"""
    )
    return (int(high) - int(low)) // step_us + 1


def _write_sensors(table: ZoneTable, folder: Path) -> None:
    pd.DataFrame(
        {
            "sensor_id": list(table.ids),
            "latitude": np.round(table.latitude, 7),
            "longitude": np.round(table.longitude, 7),
            "name": list(table.names),
        }
    ).to_csv(folder / "sensors.csv", index=False)


def _write_toml(path: Path, values: dict[str, object]) -> None:
    lines = []
    for key, value in values.items():
        if isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key} = "{escaped}"')
        else:
            lines.append(f"{key} = {value!r}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
