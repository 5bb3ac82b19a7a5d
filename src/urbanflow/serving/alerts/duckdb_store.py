"""Alerts in DuckDB: the audit trail, lifecycle state and webhook outbox in the store's file.

:class:`DuckDBAlertStore` takes an open ``duckdb`` connection (the reading store's) and
creates its tables when missing:

- ``alert_transitions (rule, sensor_id, from_state, to_state, issued_at, value,
  recorded_at)``: every transition, the audit trail;
- ``alert_state (rule, sensor_id, state, held, cleared, since, last_issued_at)``: each rule's
  lifecycle state after the latest issue (a row with ``sensor_id`` NULL carries a rule's
  ``last_issued_at``), so a restarted service continues where it stopped;
- ``alert_outbox (key, url, body, created_at, attempts, next_at, subject, issued,
  delivered_at, failed_at, last_error)``: one row per notification and URL, unique by
  ``(key, url)``; ``subject`` is rule and sensor, ``issued`` the issue's Unix seconds.

Times of issues are ``TIMESTAMP`` in UTC (like the readings); outbox times are Unix seconds of
the server's clock. Each ``record`` is one transaction, so undelivered notifications survive a
crash or restart and the next sender delivers them (at-least-once).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from urbanflow.serving.alerts.lifecycle import RuleState, SensorAlert, Transition
from urbanflow.serving.alerts.outbox import Notification

TABLES = (
    "CREATE TABLE IF NOT EXISTS alert_transitions (rule VARCHAR NOT NULL, "
    "sensor_id VARCHAR NOT NULL, from_state VARCHAR NOT NULL, to_state VARCHAR NOT NULL, "
    "issued_at TIMESTAMP NOT NULL, value DOUBLE, recorded_at TIMESTAMP NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alert_state (rule VARCHAR NOT NULL, sensor_id VARCHAR, "
    "state VARCHAR, held INTEGER, cleared INTEGER, since TIMESTAMP, last_issued_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS alert_outbox (key VARCHAR NOT NULL, url VARCHAR NOT NULL, "
    "body BLOB NOT NULL, created_at DOUBLE NOT NULL, attempts INTEGER NOT NULL, "
    "next_at DOUBLE NOT NULL, subject VARCHAR NOT NULL, issued DOUBLE NOT NULL, "
    "delivered_at DOUBLE, failed_at DOUBLE, last_error VARCHAR, PRIMARY KEY (key, url))",
)
HEADS = (  # the first open notification of each URL and subject
    "(SELECT * FROM alert_outbox o WHERE o.delivered_at IS NULL AND o.failed_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM alert_outbox p WHERE p.delivered_at IS NULL "
    "AND p.failed_at IS NULL AND p.url = o.url AND p.subject = o.subject "
    "AND p.issued < o.issued))"
)


def _naive(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=timezone.utc)


class DuckDBAlertStore:
    """An :class:`AlertStore` in DuckDB tables (see the module's docstring).

    It works on its own cursor of ``connection`` (a duplicate connection to the same
    database), guarded by a lock, so the sender's thread and the caller's may both use it and
    its transactions never mix with the owner's.

    Parameters
    ----------
    connection
        An open ``duckdb.DuckDBPyConnection``; its tables are created when missing.
    """

    def __init__(self, connection: Any) -> None:
        self._lock = threading.Lock()
        self._con = connection.cursor()
        with self._lock:
            for statement in TABLES:
                self._con.execute(statement)

    def close(self) -> None:
        """Close this store's cursor (the owner's connection stays open)."""
        with self._lock:
            self._con.close()

    def record(
        self,
        transitions: Sequence[Transition],
        notifications: Sequence[Notification],
        states: Mapping[str, RuleState] | None = None,
    ) -> None:
        """Store them in one transaction (see :class:`AlertStore`)."""
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with self._lock:
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                if transitions:
                    con.executemany(
                        "INSERT INTO alert_transitions VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                t.rule,
                                t.sensor_id,
                                t.from_state,
                                t.to_state,
                                _naive(t.issued_at),
                                t.value,
                                now,
                            )
                            for t in transitions
                        ],
                    )
                if notifications:
                    con.executemany(
                        "INSERT OR IGNORE INTO alert_outbox VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                        [
                            (
                                n.key,
                                n.url,
                                n.body,
                                n.created_at,
                                n.attempts,
                                n.next_at,
                                n.subject,
                                n.issued,
                            )
                            for n in notifications
                        ],
                    )
                if states:
                    self._write_states(states.values())
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _write_states(self, states: Iterable[RuleState]) -> None:
        rows = []
        names = []
        for state in states:
            names.append(state.rule)
            rows.append((state.rule, None, None, None, None, None, _naive(state.last_issued_at)))
            rows += [
                (state.rule, sensor, a.state, a.held, a.cleared, _naive(a.since), None)
                for sensor, a in state.alerts.items()
            ]
        self._con.executemany("DELETE FROM alert_state WHERE rule = ?", [(n,) for n in names])
        self._con.executemany("INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def load_states(self) -> dict[str, RuleState]:
        """Each rule's stored state (``for``/``resolve_after`` left at defaults: the engine
        takes them from the rules it runs)."""
        with self._lock:
            rows = self._con.execute(
                "SELECT rule, sensor_id, state, held, cleared, since, last_issued_at "
                "FROM alert_state ORDER BY rule, sensor_id NULLS FIRST"
            ).fetchall()
        alerts: dict[str, dict[str, SensorAlert]] = {}
        last: dict[str, datetime | None] = {}
        for rule, sensor, state, held, cleared, since, last_issued in rows:
            alerts.setdefault(rule, {})
            if sensor is None:
                last[rule] = _aware(last_issued)
            else:
                alerts[rule][sensor] = SensorAlert(state, held, cleared, _aware(since))
        return {
            rule: RuleState(rule, alerts=found, last_issued_at=last.get(rule))
            for rule, found in alerts.items()
        }

    def entry_values(self) -> dict[tuple[str, str], float | None]:
        """``(rule, sensor_id) → value`` recorded with the transition into each stored alert's
        current state (the probability or error ratio that drove it there)."""
        with self._lock:
            rows = self._con.execute(
                "SELECT s.rule, s.sensor_id, arg_max(t.value, t.recorded_at) FROM alert_state s "
                "JOIN alert_transitions t ON t.rule = s.rule AND t.sensor_id = s.sensor_id "
                "AND t.to_state = s.state AND t.issued_at = s.since "
                "WHERE s.sensor_id IS NOT NULL GROUP BY s.rule, s.sensor_id"
            ).fetchall()
        return {(rule, sensor): value for rule, sensor, value in rows}

    def transitions(self, to_state: str | None = None, limit: int = 1000) -> list[Transition]:
        """Newest first (by issue time, then by recording order).

        Parameters
        ----------
        to_state
            Only transitions into this state.
        limit
            At most this many.
        """
        where = "WHERE to_state = ?" if to_state else ""
        with self._lock:
            rows = self._con.execute(
                "SELECT rule, sensor_id, from_state, to_state, issued_at, value "
                f"FROM alert_transitions {where} ORDER BY issued_at DESC, rowid DESC LIMIT ?",
                [to_state, limit] if to_state else [limit],
            ).fetchall()
        return [Transition(r, s, f, t, _aware(at), v) for r, s, f, t, at, v in rows]

    def due(self, now: float, limit: int = 100) -> list[Notification]:
        """See :class:`AlertStore`."""
        with self._lock:
            rows = self._con.execute(
                "SELECT key, url, body, created_at, attempts, next_at, subject, issued "
                f"FROM {HEADS} WHERE next_at <= ? ORDER BY next_at, created_at, issued LIMIT ?",
                [now, limit],
            ).fetchall()
        return [Notification(k, u, bytes(b), *rest) for k, u, b, *rest in rows]

    def next_due(self) -> float | None:
        """See :class:`AlertStore`."""
        with self._lock:
            row = self._con.execute(f"SELECT min(next_at) FROM {HEADS}").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def mark_delivered(self, key: str, url: str, attempts: int, at: float) -> None:
        """See :class:`AlertStore`."""
        with self._lock:
            self._con.execute(
                "UPDATE alert_outbox SET delivered_at = ?, attempts = ? WHERE key = ? AND url = ?",
                [at, attempts, key, url],
            )

    def reschedule(self, key: str, url: str, attempts: int, next_at: float, error: str) -> None:
        """See :class:`AlertStore`."""
        with self._lock:
            self._con.execute(
                "UPDATE alert_outbox SET attempts = ?, next_at = ?, last_error = ? "
                "WHERE key = ? AND url = ?",
                [attempts, next_at, error, key, url],
            )

    def give_up(self, key: str, url: str, attempts: int, at: float, error: str) -> None:
        """See :class:`AlertStore`."""
        with self._lock:
            self._con.execute(
                "UPDATE alert_outbox SET attempts = ?, failed_at = ?, last_error = ? "
                "WHERE key = ? AND url = ?",
                [attempts, at, error, key, url],
            )

    def prune_outbox(self, before: float) -> int:
        """See :class:`AlertStore`."""
        with self._lock:
            gone = self._con.execute(
                "DELETE FROM alert_outbox WHERE created_at < ? "
                "AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL) RETURNING key",
                [before],
            ).fetchall()
        return len(gone)

    def outbox_counts(self) -> dict[str, int]:
        """``{"queued", "delivered", "failed"}``: how many notifications are in each state."""
        with self._lock:
            queued, delivered, failed = self._con.execute(
                "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL), "
                "count(delivered_at), count(failed_at) FROM alert_outbox"
            ).fetchone()
        return {"queued": queued, "delivered": delivered, "failed": failed}
