"""The reading store: one embedded DuckDB file holding sensors and their readings.

Readings are rows ``(sensor_id, ts, value)``, one per sensor and time; ``ts`` is UTC
(``TIMESTAMP`` without zone), missing readings are absent rows. A batch is written in one
transaction: all of it or none. DuckDB appends the transaction to its write-ahead log and
syncs it to disk before ``COMMIT`` returns, so a batch acknowledged by :meth:`ingest` survives
a crash of the process or the machine. One process owns the file at a time (DuckDB locks it)
and one thread writes at a time (a lock here).

Schema 2 keeps "one row per sensor and time" in :meth:`ingest` instead of a primary-key
index: the index took 80 % of the file (55 MB per million readings against 9 MB) and half of
each batch's time. Each batch looks up only the stored rows in its own time range, which
DuckDB's per-row-group min/max of ``ts`` finds without scanning the rest when readings arrive
roughly in time order. A schema-1 store (with the index) is migrated when opened.

Schema 3 adds the issued forecasts: ``forecasts``, one row per issue (its time, provenance,
input window, levels, which sensors got none) with a primary key on the issue time, and
``forecast_values``, one row per sensor and horizon step (value, the reading at the issue time,
and the interval bounds as lists in the order of the issue's levels), in single precision like
the model's output: half the size of doubles (about 30 bytes per row at two levels). An issue
is written in one transaction with the deletion of the issues older than the keep period, so a
crash leaves it whole or absent; nothing updates a stored issue. A schema-2 store gets the two
tables, empty.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from urbanflow.errors import StoreError
from urbanflow.serving.issued import IssuedForecast
from urbanflow.version import __version__

SCHEMA_VERSION = 3

_READINGS = (
    "CREATE TABLE {name} (sensor_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE NOT NULL)"
)
_FORECASTS = (
    "CREATE TABLE forecasts (issued_at TIMESTAMP PRIMARY KEY, model VARCHAR NOT NULL, "
    "model_version VARCHAR NOT NULL, data_fingerprint VARCHAR NOT NULL, "
    "input_start TIMESTAMP NOT NULL, input_end TIMESTAMP NOT NULL, step_seconds DOUBLE NOT NULL, "
    "horizon INTEGER NOT NULL, levels DOUBLE[] NOT NULL, sensors INTEGER NOT NULL, "
    "missing VARCHAR[] NOT NULL, stored_at TIMESTAMP NOT NULL)",
    "CREATE TABLE forecast_values (issued_at TIMESTAMP NOT NULL, sensor_id VARCHAR NOT NULL, "
    "horizon_steps SMALLINT NOT NULL, target_ts TIMESTAMP NOT NULL, value FLOAT NOT NULL, "
    "last_value FLOAT, lower FLOAT[] NOT NULL, upper FLOAT[] NOT NULL)",
)
_SCHEMA = (
    "CREATE TABLE store_info (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    "CREATE TABLE sensors (sensor_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, "
    "latitude DOUBLE, longitude DOUBLE)",
    _READINGS.format(name="readings"),
    *_FORECASTS,
)
_MIGRATIONS = {  # from schema N to N + 1, in one transaction
    1: (  # drop the primary-key index on readings: copy, swap
        _READINGS.format(name="readings_v2"),
        "INSERT INTO readings_v2 SELECT sensor_id, ts, value FROM readings ORDER BY ts, sensor_id",
        "DROP TABLE readings",
        "ALTER TABLE readings_v2 RENAME TO readings",
    ),
    2: _FORECASTS,  # issued forecasts
}


@dataclass(frozen=True)
class IngestCounts:
    """What one batch did: ``new`` rows, ``updated`` values, ``unchanged`` repeats, ``empty``
    (null values: no reading, nothing stored or overwritten)."""

    received: int
    new: int
    updated: int
    unchanged: int
    empty: int

    @property
    def changed(self) -> bool:
        return self.new + self.updated > 0


class ReadingStore:
    """A DuckDB file of sensors and readings; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection = _connect(self.path)
        try:
            self._prepare()
            newest = self._connection.execute("SELECT max(ts) FROM readings").fetchall()[0][0]
        except BaseException:
            self._connection.close()
            raise
        # This process is the store's one writer (DuckDB locks the file) and readings are never
        # deleted, so the newest time is kept here instead of scanning the table per request.
        self._latest = None if newest is None else pd.Timestamp(newest)
        self._wanted: tuple[tuple[str, ...], pd.DataFrame] | None = None

    def _prepare(self) -> None:
        """Check an existing file's schema before touching it; create or migrate it."""
        connection = self._connection
        tables = {row[0] for row in connection.execute("SHOW TABLES").fetchall()}
        if not tables:
            connection.execute("BEGIN TRANSACTION")
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.executemany(
                "INSERT INTO store_info VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("created_by", __version__)],
            )
            connection.execute("COMMIT")
            return
        if "store_info" not in tables:
            raise StoreError(
                f"{self.path}: a DuckDB file but not an urbanflow store; give a new --store path"
            )
        rows = connection.execute(
            "SELECT value FROM store_info WHERE key = 'schema_version'"
        ).fetchall()
        found = str(rows[0][0]) if rows else ""
        if not found.isdigit():
            raise StoreError(
                f"{self.path}: the store gives no schema version ({found or 'none'}); it was "
                "not written by urbanflow or is damaged; give a new --store path"
            )
        if int(found) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer urbanflow (store schema {found}, this "
                f"version reads up to {SCHEMA_VERSION}); upgrade urbanflow"
            )
        if not {"sensors", "readings"} <= tables:
            raise StoreError(
                f"{self.path}: an urbanflow store without its sensors or readings table "
                f"(tables: {', '.join(sorted(tables))}); give a new --store path"
            )
        for version in range(int(found), SCHEMA_VERSION):
            connection.execute("BEGIN TRANSACTION")
            for statement in _MIGRATIONS[version]:
                connection.execute(statement)
            connection.execute(
                "UPDATE store_info SET value = ? WHERE key = 'schema_version'", [str(version + 1)]
            )
            connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the store's database (DuckDB's ``cursor()``) for a component
        that keeps its own tables in the store's file (the alerts): its transactions are its
        own, so it never takes this store's lock; close it before the store."""
        with self._lock:
            return self._connection.cursor()

    def __enter__(self) -> ReadingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        with self._lock:
            rows = self._connection.execute(
                "SELECT value FROM store_info WHERE key = 'schema_version'"
            ).fetchall()
        return int(rows[0][0])

    def register_sensors(self, sensors: pd.DataFrame) -> None:
        """Insert or refresh ``sensor_id, name, latitude, longitude`` rows."""
        frame = sensors[["sensor_id", "name", "latitude", "longitude"]]
        with self._lock:
            self._connection.register("incoming_sensors", frame)
            try:
                self._connection.execute(
                    "INSERT INTO sensors SELECT sensor_id, name, latitude, longitude "
                    "FROM incoming_sensors ON CONFLICT (sensor_id) DO UPDATE SET "
                    "name = excluded.name, latitude = excluded.latitude, "
                    "longitude = excluded.longitude"
                )
            finally:
                self._connection.unregister("incoming_sensors")

    def sensors(self) -> pd.DataFrame:
        with self._lock:
            return self._connection.execute(
                "SELECT sensor_id, name, latitude, longitude FROM sensors ORDER BY sensor_id"
            ).df()

    def ingest(self, batch: pd.DataFrame) -> IngestCounts:
        """Store ``sensor_id, ts`` (UTC, naive), ``value`` (NaN: no reading) in one transaction.

        Each ``(sensor_id, ts)`` must appear once in the batch (the caller checks). A value for a
        stored key replaces it; a NaN never does.
        """
        present = batch[batch["value"].notna()]
        window = [present["ts"].min(), present["ts"].max()] if len(present) else [None, None]
        stored = "(SELECT * FROM readings WHERE ts BETWEEN ? AND ?)"  # the batch's time range
        with self._lock:
            connection = self._connection
            connection.register("incoming", present[["sensor_id", "ts", "value"]])
            try:
                connection.execute("BEGIN TRANSACTION")
                new, updated = connection.execute(
                    "SELECT count(*) FILTER (WHERE r.value IS NULL), "
                    "count(*) FILTER (WHERE r.value IS NOT NULL AND r.value <> i.value) "
                    f"FROM incoming i LEFT JOIN {stored} r USING (sensor_id, ts)",
                    window,
                ).fetchall()[0]
                connection.execute(  # corrected values: remove the old row, insert below
                    "DELETE FROM readings USING incoming i WHERE readings.ts BETWEEN ? AND ? "
                    "AND readings.sensor_id = i.sensor_id AND readings.ts = i.ts "
                    "AND readings.value <> i.value",
                    window,
                )
                connection.execute(
                    "INSERT INTO readings SELECT i.sensor_id, i.ts, i.value FROM incoming i "
                    f"ANTI JOIN {stored} r USING (sensor_id, ts)",
                    window,
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            finally:
                connection.unregister("incoming")
            if len(present) and (self._latest is None or window[1] > self._latest):
                self._latest = pd.Timestamp(window[1])
        return IngestCounts(
            received=len(batch),
            new=int(new),
            updated=int(updated),
            unchanged=len(present) - int(new) - int(updated),
            empty=len(batch) - len(present),
        )

    def count(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT count(*) FROM readings").fetchall()[0][0])

    def latest_time(self) -> pd.Timestamp | None:
        """The newest reading's time (UTC), or None when nothing is stored (kept in memory)."""
        value = self._latest
        return None if value is None else value.tz_localize("UTC")

    def readings(
        self,
        sensor_id: str,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        limit: int,
    ) -> pd.DataFrame:
        """``ts`` (UTC), ``value`` of one sensor in ``[start, end)``, oldest first."""
        query = "SELECT ts, value FROM readings WHERE sensor_id = ?"
        parameters: list[object] = [sensor_id]
        if start is not None:
            query += " AND ts >= ?"
            parameters.append(_naive_utc(start))
        if end is not None:
            query += " AND ts < ?"
            parameters.append(_naive_utc(end))
        query += " ORDER BY ts LIMIT ?"
        parameters.append(limit)
        with self._lock:
            frame = self._connection.execute(query, parameters).df()
        frame["ts"] = pd.to_datetime(frame["ts"]).dt.tz_localize("UTC")
        return frame

    def window(self, sensor_ids: tuple[str, ...], times: pd.DatetimeIndex) -> np.ndarray:
        """``[t n]`` readings of ``sensor_ids`` at ``times`` (UTC grid), NaN where absent."""
        first, last = _naive_utc(times[0]), _naive_utc(times[-1])
        step_us = (times[1] - times[0]) // pd.Timedelta(microseconds=1) if len(times) > 1 else 1
        # Rows and columns are found in DuckDB (a join on the wanted sensors' positions, the
        # time's offset from the first step): no Python string per reading at 10,000 sensors.
        wanted = self._positions(sensor_ids)
        with self._lock:
            self._connection.register("wanted_sensors", wanted)
            try:
                found = self._connection.execute(
                    "SELECT w.position, (epoch_us(r.ts) - epoch_us(?::TIMESTAMP)) // ? AS step, "
                    "(epoch_us(r.ts) - epoch_us(?::TIMESTAMP)) % ? AS off_grid, r.value "
                    "FROM readings r JOIN wanted_sensors w USING (sensor_id) "
                    "WHERE r.ts >= ? AND r.ts <= ?",
                    [first, step_us, first, step_us, first, last],
                ).fetchnumpy()
            finally:
                self._connection.unregister("wanted_sensors")
        values = np.full((len(times), len(sensor_ids)), np.nan, dtype=np.float32)
        on_grid = np.asarray(found["off_grid"]) == 0
        row = np.asarray(found["step"], dtype=np.int64)[on_grid]
        column = np.asarray(found["position"], dtype=np.int64)[on_grid]
        values[row, column] = np.asarray(found["value"], dtype=np.float32)[on_grid]
        return values

    def _positions(self, sensor_ids: tuple[str, ...]) -> pd.DataFrame:
        """``sensor_id, position`` of ``sensor_ids``, kept for the last tuple asked."""
        cached = self._wanted
        if cached is None or cached[0] is not sensor_ids:
            frame = pd.DataFrame(
                {"sensor_id": list(sensor_ids), "position": np.arange(len(sensor_ids))}
            )
            cached = self._wanted = (sensor_ids, frame)
        return cached[1]

    def readings_at(self, time: pd.Timestamp) -> int:
        """How many readings are stored for step ``time`` (UTC)."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT count(*) FROM readings WHERE ts = ?", [_naive_utc(time)]
            ).fetchall()
        return int(rows[0][0])

    def earliest_time(self, since: pd.Timestamp) -> pd.Timestamp | None:
        """The oldest reading's time (UTC) at or after ``since``; None when there is none."""
        with self._lock:
            value = self._connection.execute(
                "SELECT min(ts) FROM readings WHERE ts >= ?", [_naive_utc(since)]
            ).fetchall()[0][0]
        return None if value is None else pd.Timestamp(value).tz_localize("UTC")

    # --- issued forecasts ---------------------------------------------------------------------

    def store_forecast(self, issued: IssuedForecast, keep: timedelta | None = None) -> pd.Timestamp:
        """Store ``issued`` in one transaction, deleting the issues more than ``keep`` older than
        it in the same transaction; returns the server's time of storing (UTC).

        Raises a DuckDB constraint error, storing nothing, when a forecast was already stored
        for its issue time: a stored forecast never changes.
        """
        columns = np.flatnonzero(issued.available)
        horizon, count = issued.horizon, len(columns)
        targets = issued.target_times().tz_localize(None)
        levels = len(issued.levels)
        latest = issued.latest[columns].astype(np.float32)
        frame = pd.DataFrame(
            {  # sensors by position, their ids joined in DuckDB: no Python string per row
                "position": np.repeat(columns, horizon),
                "horizon_steps": np.tile(np.arange(1, horizon + 1, dtype=np.int32), count),
                "target_ts": np.tile(targets.to_numpy(), count),
                "value": issued.values[:, columns].T.reshape(-1).astype(np.float32),
                "last_value": np.repeat(latest, horizon),
            }
        )
        # [K h n] -> one float column per bound and level (sensors outermost like the frame),
        # put into lists by DuckDB: a column of K-element arrays costs a Python object per row
        for name, bounds in (("lower", issued.lower), ("upper", issued.upper)):
            for k in range(levels):
                frame[f"{name}_{k}"] = bounds[k][:, columns].T.reshape(-1).astype(np.float32)
        lists = [
            f"list_value({', '.join(f'{name}_{k}' for k in range(levels))})"
            if levels
            else "[]::FLOAT[]"
            for name in ("lower", "upper")
        ]
        stored_at = pd.Timestamp.now(tz="UTC")
        issued_at = _naive_utc(issued.issued_at)
        header = [
            issued_at,
            issued.model,
            issued.model_version,
            issued.data_fingerprint,
            _naive_utc(issued.input_start),
            _naive_utc(issued.input_end),
            issued.step.total_seconds(),
            horizon,
            list(issued.levels),
            count,
            [issued.sensor_ids[n] for n in np.flatnonzero(~issued.available)],
            stored_at.tz_localize(None),
        ]
        with self._lock:
            connection = self._connection
            connection.register("incoming_forecast", frame)
            connection.register("wanted_sensors", self._positions(issued.sensor_ids))
            try:
                connection.execute("BEGIN TRANSACTION")
                connection.execute(
                    "INSERT INTO forecasts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", header
                )
                connection.execute(
                    "INSERT INTO forecast_values SELECT ?, w.sensor_id, horizon_steps, "
                    "target_ts, value, CASE WHEN isnan(last_value) THEN NULL ELSE last_value "
                    f"END, {lists[0]}, {lists[1]} FROM incoming_forecast i "
                    "JOIN wanted_sensors w USING (position)",
                    [issued_at],
                )
                if keep is not None:
                    cutoff = issued_at - pd.Timedelta(keep)
                    connection.execute("DELETE FROM forecast_values WHERE issued_at < ?", [cutoff])
                    connection.execute("DELETE FROM forecasts WHERE issued_at < ?", [cutoff])
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            finally:
                connection.unregister("incoming_forecast")
                connection.unregister("wanted_sensors")
        return stored_at

    def last_issued_time(self) -> pd.Timestamp | None:
        """The newest stored forecast's issue time (UTC), or None when none is stored."""
        with self._lock:
            value = self._connection.execute("SELECT max(issued_at) FROM forecasts").fetchall()
        return None if value[0][0] is None else pd.Timestamp(value[0][0]).tz_localize("UTC")

    def issued_span(self) -> tuple[pd.Timestamp, pd.Timestamp, int] | None:
        """The oldest and newest stored issue times (UTC) and how many are stored."""
        with self._lock:
            first, last, count = self._connection.execute(
                "SELECT min(issued_at), max(issued_at), count(*) FROM forecasts"
            ).fetchall()[0]
        if not count:
            return None
        return (
            pd.Timestamp(first).tz_localize("UTC"),
            pd.Timestamp(last).tz_localize("UTC"),
            int(count),
        )

    def issued_forecast(
        self, sensor_ids: tuple[str, ...], issued_at: pd.Timestamp | None = None
    ) -> IssuedForecast | None:
        """The forecast stored for ``issued_at`` (None: the newest), on ``sensor_ids`` (a stored
        sensor not among them is left out); None when there is none."""
        where = "issued_at = (SELECT max(issued_at) FROM forecasts)"
        parameters: list[object] = []
        if issued_at is not None:
            where, parameters = "issued_at = ?", [_naive_utc(issued_at)]
        with self._lock:
            header = self._connection.execute(
                "SELECT issued_at, model, model_version, data_fingerprint, input_start, "
                f"input_end, step_seconds, horizon, levels, stored_at FROM forecasts WHERE {where}",
                parameters,
            ).fetchall()
            if not header:
                return None
            k = len(header[0][8])
            # each level's bound as its own column (list elements are 1-based), and the
            # sensors' positions joined in DuckDB: no Python object per row
            bounds = "".join(
                f", f.{name}[{level + 1}] AS {name}_{level}"
                for level in range(k)
                for name in ("lower", "upper")
            )
            self._connection.register("wanted_sensors", self._positions(tuple(sensor_ids)))
            try:
                rows = self._connection.execute(
                    "SELECT w.position, f.horizon_steps, f.value, "
                    f"coalesce(f.last_value, 'NaN'::FLOAT) AS last_value{bounds} "
                    "FROM forecast_values f JOIN wanted_sensors w USING (sensor_id) "
                    "WHERE f.issued_at = ?",
                    [header[0][0]],
                ).fetchnumpy()
            finally:
                self._connection.unregister("wanted_sensors")
        (stamp, model, version, fingerprint, start, end, seconds, horizon, levels, stored_at) = (
            header[0]
        )
        n = len(sensor_ids)
        values = np.full((horizon, n), np.nan)
        latest = np.full(n, np.nan)
        lower = np.full((k, horizon, n), np.nan)
        upper = np.full((k, horizon, n), np.nan)
        column = np.asarray(rows["position"], dtype=np.int64)
        step = np.asarray(rows["horizon_steps"], dtype=np.int64) - 1
        values[step, column] = np.asarray(rows["value"], dtype=np.float64)
        latest[column] = np.asarray(rows["last_value"], dtype=np.float64)
        for level in range(k):
            lower[level, step, column] = np.asarray(rows[f"lower_{level}"], dtype=np.float64)
            upper[level, step, column] = np.asarray(rows[f"upper_{level}"], dtype=np.float64)
        available = np.zeros(n, dtype=bool)
        available[column] = True
        return IssuedForecast(
            issued_at=pd.Timestamp(stamp).tz_localize("UTC"),
            model=str(model),
            model_version=str(version),
            data_fingerprint=str(fingerprint),
            input_start=pd.Timestamp(start).tz_localize("UTC"),
            input_end=pd.Timestamp(end).tz_localize("UTC"),
            step=pd.Timedelta(seconds=float(seconds)),
            sensor_ids=tuple(sensor_ids),
            levels=tuple(float(level) for level in levels),
            values=values,
            available=available,
            latest=latest,
            lower=lower,
            upper=upper,
            stored=True,
            stored_at=pd.Timestamp(stored_at).tz_localize("UTC"),
        )

    def forecast_scores(
        self, model_version: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Stored forecasts of ``model_version`` scored against the stored readings at their
        target times in ``(start, end]``, on the sensors that had a reading at the issue time.

        Returns ``horizon_steps, count, model_error, last_error`` (sums of absolute errors of
        the forecast and of the reading at the issue time) and ``horizon_steps, level, count,
        covered`` (targets inside the interval at that level).
        """
        scored = (
            "WITH scored AS (SELECT f.horizon_steps, f.value, f.last_value, f.lower, f.upper, "
            "h.levels, r.value AS y FROM forecast_values f "
            "JOIN forecasts h ON h.issued_at = f.issued_at "
            "JOIN readings r ON r.sensor_id = f.sensor_id AND r.ts = f.target_ts "
            "WHERE h.model_version = ? AND f.target_ts > ? AND f.target_ts <= ? "
            "AND r.ts > ? AND r.ts <= ? AND f.last_value IS NOT NULL) "
        )
        window = [_naive_utc(start), _naive_utc(end)]
        parameters = [model_version, *window, *window]
        with self._lock:
            errors = self._connection.execute(
                scored + "SELECT horizon_steps, count(*) AS count, "
                "sum(abs(value - y)) AS model_error, sum(abs(last_value - y)) AS last_error "
                "FROM scored GROUP BY horizon_steps ORDER BY horizon_steps",
                parameters,
            ).df()
            coverage = self._connection.execute(
                scored + "SELECT horizon_steps, level, count(*) AS count, "
                "count(*) FILTER (WHERE y >= lo AND y <= hi) AS covered FROM ("
                "SELECT horizon_steps, y, unnest(levels) AS level, unnest(lower) AS lo, "
                "unnest(upper) AS hi FROM scored) GROUP BY horizon_steps, level "
                "ORDER BY horizon_steps, level",
                parameters,
            ).df()
        return errors, coverage

    def sensor_errors(
        self, model_version: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """``sensor_id, horizon_steps, count, error``: the sum of absolute errors of the stored
        forecasts of ``model_version`` whose target times lie in ``(start, end]``, per sensor and
        step, on the sensors that had a reading at the issue time (as in
        :meth:`forecast_scores`)."""
        window = [_naive_utc(start), _naive_utc(end)]
        with self._lock:
            return self._connection.execute(
                "SELECT f.sensor_id, f.horizon_steps, count(*) AS count, "
                "sum(abs(f.value - r.value)) AS error FROM forecast_values f "
                "JOIN forecasts h ON h.issued_at = f.issued_at "
                "JOIN readings r ON r.sensor_id = f.sensor_id AND r.ts = f.target_ts "
                "WHERE h.model_version = ? AND f.target_ts > ? AND f.target_ts <= ? "
                "AND r.ts > ? AND r.ts <= ? AND f.last_value IS NOT NULL "
                "GROUP BY f.sensor_id, f.horizon_steps",
                [model_version, *window, *window],
            ).df()


def _naive_utc(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_convert("UTC").tz_localize(None)


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    if path.is_dir():
        raise StoreError(f"{path}: a folder; give the store a file path such as readings.duckdb")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path))
    except duckdb.IOException as error:
        first = str(error).splitlines()[0]
        if "lock" in first.lower():
            raise StoreError(
                f"{path}: in use by another process ({first}); stop the other "
                "`urbanflow serve` or give another --store"
            ) from None
        raise StoreError(f"{path}: cannot be opened ({first})") from None
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise StoreError(f"{path}: not a DuckDB store ({first}); give a new --store path") from None
