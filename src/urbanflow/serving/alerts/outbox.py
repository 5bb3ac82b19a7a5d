"""The storage protocol of alerts, and its in-memory implementation.

:class:`AlertStore` is what the engine and the webhook sender write against: the audit trail of
transitions, each rule's lifecycle state, and the outbox of webhook notifications. Two
implementations: :class:`MemoryAlertStore` here (in the process, lost on exit: tests,
benchmarks) and :class:`~urbanflow.serving.alerts.duckdb_store.DuckDBAlertStore` (tables in
the reading store's DuckDB file, so undelivered notifications survive a restart).

Each ``record`` stores transitions, the state after them and their notifications together or
not at all. The outbox hands out, per URL and subject (rule and sensor), only the earliest
undelivered notification, so one sensor's notifications arrive in issue order.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from urbanflow.serving.alerts.lifecycle import RuleState, Transition


@dataclass(frozen=True)
class Notification:
    """One webhook delivery to make: a body for one URL.

    Parameters
    ----------
    key
        The idempotency key (the same for every URL of one transition).
    url
        Where to post it.
    body
        The exact JSON bytes to post (the signature covers them).
    created_at
        Unix seconds when it was queued.
    attempts
        Tries made so far.
    next_at
        Unix seconds of the next try.
    subject
        What it is about (rule and sensor): a URL gets one subject's notifications in the
        order of their issues, each only once the one before it is delivered or given up.
    issued
        The issue time of its transition, Unix seconds (orders one subject's notifications).
    """

    key: str
    url: str
    body: bytes
    created_at: float
    attempts: int = 0
    next_at: float = 0.0
    subject: str = ""
    issued: float = 0.0


class AlertStore(Protocol):
    """What the alert engine and the webhook sender need from storage."""

    def record(
        self,
        transitions: Sequence[Transition],
        notifications: Sequence[Notification],
        states: Mapping[str, RuleState] | None = None,
    ) -> None:
        """Store transitions, notifications and the state after them, all or nothing."""

    def load_states(self) -> dict[str, RuleState]:
        """Each rule's stored state (rule parameters as stored; the engine sets its own)."""

    def transitions(self, to_state: str | None = None, limit: int = 1000) -> list[Transition]:
        """The newest transitions first, optionally only those into ``to_state``."""

    def due(self, now: float, limit: int = 100) -> list[Notification]:
        """Undelivered notifications whose next try is at or before ``now``, oldest first;
        only the earliest undelivered one of each URL and subject."""

    def next_due(self) -> float | None:
        """The earliest next try of a notification ``due`` could give, None when none is
        left."""

    def mark_delivered(self, key: str, url: str, attempts: int, at: float) -> None:
        """The receiver accepted it on try ``attempts``: never send it again."""

    def reschedule(self, key: str, url: str, attempts: int, next_at: float, error: str) -> None:
        """A try failed: remember it and try again at ``next_at``."""

    def give_up(self, key: str, url: str, attempts: int, at: float, error: str) -> None:
        """The last allowed try failed: keep the row, stop trying."""

    def prune_outbox(self, before: float) -> int:
        """Forget delivered and failed notifications queued before ``before``; how many."""


class MemoryAlertStore:
    """An :class:`AlertStore` in the process's memory (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.audit: list[Transition] = []
        self.states: dict[str, RuleState] = {}
        self.outbox: dict[tuple[str, str], Notification] = {}
        self.delivered: dict[tuple[str, str], float] = {}
        self.failed: dict[tuple[str, str], str] = {}

    def record(
        self,
        transitions: Sequence[Transition],
        notifications: Sequence[Notification],
        states: Mapping[str, RuleState] | None = None,
    ) -> None:
        """Store them together, in memory (see :class:`AlertStore`)."""
        with self._lock:
            self.audit += transitions
            for note in notifications:
                self.outbox.setdefault((note.key, note.url), note)
            if states is not None:
                self.states.update(states)

    def load_states(self) -> dict[str, RuleState]:
        """The states stored by the latest ``record``."""
        with self._lock:
            return dict(self.states)

    def transitions(self, to_state: str | None = None, limit: int = 1000) -> list[Transition]:
        """Newest first.

        Parameters
        ----------
        to_state
            Only transitions into this state.
        limit
            At most this many.
        """
        with self._lock:
            rows = [t for t in reversed(self.audit) if to_state in (None, t.to_state)]
        return rows[:limit]

    def _open(self) -> list[Notification]:
        """The first undelivered notification of each URL and subject."""
        done = self.delivered.keys() | self.failed.keys()
        heads: dict[tuple[str, str], Notification] = {}
        for k, note in self.outbox.items():
            head = heads.get((note.url, note.subject))
            if k not in done and (head is None or note.issued < head.issued):
                heads[(note.url, note.subject)] = note
        return list(heads.values())

    def due(self, now: float, limit: int = 100) -> list[Notification]:
        """See :class:`AlertStore`."""
        with self._lock:
            ready = [n for n in self._open() if n.next_at <= now]
        return sorted(ready, key=lambda n: (n.next_at, n.created_at, n.issued))[:limit]

    def next_due(self) -> float | None:
        """See :class:`AlertStore`."""
        with self._lock:
            return min((n.next_at for n in self._open()), default=None)

    def mark_delivered(self, key: str, url: str, attempts: int, at: float) -> None:
        """See :class:`AlertStore`."""
        with self._lock:
            self.outbox[(key, url)] = replace(self.outbox[(key, url)], attempts=attempts)
            self.delivered[(key, url)] = at

    def reschedule(self, key: str, url: str, attempts: int, next_at: float, error: str) -> None:
        """See :class:`AlertStore`."""
        with self._lock:
            note = self.outbox[(key, url)]
            self.outbox[(key, url)] = replace(note, attempts=attempts, next_at=next_at)

    def give_up(self, key: str, url: str, attempts: int, at: float, error: str) -> None:
        """See :class:`AlertStore`."""
        with self._lock:
            note = self.outbox[(key, url)]
            self.outbox[(key, url)] = replace(note, attempts=attempts)
            self.failed[(key, url)] = error

    def prune_outbox(self, before: float) -> int:
        """See :class:`AlertStore`."""
        with self._lock:
            settled = self.delivered.keys() | self.failed.keys()
            old = [k for k in settled if self.outbox[k].created_at < before]
            for k in old:
                del self.outbox[k]
                self.delivered.pop(k, None)
                self.failed.pop(k, None)
        return len(old)
