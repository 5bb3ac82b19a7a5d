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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from urbanflow.errors import StoreError
from urbanflow.version import __version__

SCHEMA_VERSION = 2

_READINGS = (
    "CREATE TABLE {name} (sensor_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE NOT NULL)"
)
_SCHEMA = (
    "CREATE TABLE store_info (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    "CREATE TABLE sensors (sensor_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, "
    "latitude DOUBLE, longitude DOUBLE)",
    _READINGS.format(name="readings"),
)
_MIGRATIONS = {  # from schema N to N + 1, in one transaction
    1: (  # drop the primary-key index on readings: copy, swap
        _READINGS.format(name="readings_v2"),
        "INSERT INTO readings_v2 SELECT sensor_id, ts, value FROM readings ORDER BY ts, sensor_id",
        "DROP TABLE readings",
        "ALTER TABLE readings_v2 RENAME TO readings",
    ),
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
        except BaseException:
            self._connection.close()
            raise

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
        """The newest reading's time (UTC), or None when nothing is stored."""
        with self._lock:
            value = self._connection.execute("SELECT max(ts) FROM readings").fetchall()[0][0]
        return None if value is None else pd.Timestamp(value).tz_localize("UTC")

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
        with self._lock:
            rows = self._connection.execute(
                "SELECT sensor_id, ts, value FROM readings WHERE ts >= ? AND ts <= ?",
                [first, last],
            ).df()
        values = np.full((len(times), len(sensor_ids)), np.nan, dtype=np.float32)
        if rows.empty:
            return values
        column = pd.Index(sensor_ids).get_indexer(rows["sensor_id"])
        stamps = pd.DatetimeIndex(pd.to_datetime(rows["ts"])).tz_localize("UTC")
        row = times.get_indexer(stamps)
        keep = (column >= 0) & (row >= 0)
        values[row[keep], column[keep]] = rows["value"].to_numpy(dtype=np.float32)[keep]
        return values


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
