"""The running service: one store, one model, forecasts cached per issue time.

The cache is keyed by the store's revision (bumped whenever a batch changes a stored reading),
so a forecast is computed once per issue time and recomputed only when a correction or a late
reading could change its input window. Every forecast computed is handed to the accuracy
tracker, and every stored batch scores the forecasts that targeted it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pandas as pd

from urbanflow.serving.accuracy import AccuracyTracker, HorizonAccuracy
from urbanflow.serving.ingest import ParsedBody, ReadingRules, validate
from urbanflow.serving.live import LiveForecast, LiveModel, forecast_latest
from urbanflow.serving.settings import ServeSettings
from urbanflow.serving.store import IngestCounts, ReadingStore


def open_service(settings: ServeSettings) -> LiveService:
    """Load the bundle, open the store and register the model's sensors in it."""
    model = LiveModel.load(settings.model_dir)
    store = ReadingStore(settings.store_path)
    try:
        store.register_sensors(model.sensor_table())
    except BaseException:
        store.close()
        raise
    return LiveService(store=store, model=model)


@dataclass
class LiveService:
    store: ReadingStore
    model: LiveModel
    _revision: int = 0
    _cached: tuple[int, LiveForecast] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _accuracy: AccuracyTracker = field(init=False)

    def __post_init__(self) -> None:
        self._accuracy = AccuracyTracker(
            self.model.sensors.ids, self.model.horizon, self.model.step
        )

    def rules(self) -> ReadingRules:
        return ReadingRules(
            sensor_ids=frozenset(self.model.sensors.ids),
            timezone=self.model.metadata.timezone,
            step=self.model.step,
            now=pd.Timestamp.now(tz="UTC"),
        )

    def ingest(self, parsed: ParsedBody) -> IngestCounts:
        """Validate and commit one batch; returns once it is durable."""
        batch = validate(parsed, self.rules())
        counts = self.store.ingest(batch)
        if counts.changed:
            with self._lock:
                self._revision += 1
                self._accuracy.observe(batch)
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
            self._accuracy.remember(
                forecast.issued_at, forecast.values, forecast.available, forecast.latest
            )
            return forecast

    def accuracy(self, minutes: float) -> tuple[pd.Timestamp | None, list[HorizonAccuracy]]:
        """Scores of the forecasts whose target times lie in the last ``minutes`` before the
        newest reading, and that time (None: nothing stored)."""
        latest = self.store.latest_time()
        if latest is None:
            return None, self._accuracy.summary(pd.Timestamp(0, tz="UTC"), 0)
        with self._lock:
            return latest, self._accuracy.summary(latest, minutes)
