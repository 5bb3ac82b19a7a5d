"""The running service: one store, one model, forecasts cached per issue time.

The cache is keyed by the store's revision (bumped whenever a batch changes a stored reading),
so a forecast is computed once per issue time and recomputed only when a correction or a late
reading could change its input window.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pandas as pd

from urbanflow.serving.ingest import ParsedBody, ReadingRules, validate
from urbanflow.serving.live import LiveForecast, LiveModel, forecast_latest
from urbanflow.serving.store import IngestCounts, ReadingStore


@dataclass
class LiveService:
    store: ReadingStore
    model: LiveModel
    _revision: int = 0
    _cached: tuple[int, LiveForecast] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rules(self) -> ReadingRules:
        return ReadingRules(
            sensor_ids=frozenset(self.model.sensors.ids),
            timezone=self.model.metadata.timezone,
            step=self.model.step,
            now=pd.Timestamp.now(tz="UTC"),
        )

    def ingest(self, parsed: ParsedBody) -> IngestCounts:
        """Validate and commit one batch; returns once it is durable."""
        counts = self.store.ingest(validate(parsed, self.rules()))
        if counts.changed:
            with self._lock:
                self._revision += 1
        return counts

    @property
    def revision(self) -> int:
        """Batches that changed a stored reading since this service started."""
        return self._revision

    def forecast(self) -> LiveForecast:
        with self._lock:
            revision = self._revision
            if self._cached is not None and self._cached[0] == revision:
                return self._cached[1]
            forecast = forecast_latest(self.model, self.store)
            self._cached = (revision, forecast)
            return forecast
