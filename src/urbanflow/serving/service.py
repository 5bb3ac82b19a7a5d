"""The running service: one store, one model, and the worker that issues forecasts.

Issuing. A step ``T`` is complete when readings for it have arrived from at least
``issue_share`` of the model's sensors, or when a reading for a later step has arrived; the
time a batch arrives never matters, so a replay of old data issues the same forecasts as the
live feed did. After each committed batch that changed a stored reading, :meth:`ingest` wakes
the issuing worker (one thread) and returns: the POST's answer never waits for a forecast. The
worker issues, in time order, a forecast at every complete step after the last one issued (on
a new store: within ``keep_forecasts`` of the newest reading), from the readings stored when it
runs, and stores each one whole in one transaction (``ReadingStore.store_forecast``), with its
provenance and, when the bundle has a calibration, its conformal intervals at ``levels``. A
stored forecast is never changed or issued again: late readings and corrections reach only
later forecasts and the accuracy scores. Steps where no sensor has half its input window get
no forecast.

Intervals. :class:`~urbanflow.models.conformal.OnlineConformal` runs on step indices
``UTC nanoseconds // step nanoseconds``: before issuing at ``T`` the worker feeds it the
readings of ``T`` (updating the intervals of the forecasts that targeted ``T``), then issues
the sample ``T + 1``. Its online state lives in memory and restarts from the bundle's
calibration when the service restarts.

Hooks. ``LiveService.issue_hooks`` is a list of callables ``hook(forecast: IssuedForecast) ->
None`` (``serving/issued.py``), called on the worker thread with each forecast after its
transaction has committed, in issue order. A hook that raises is logged and skipped; a slow
hook delays later issues (never ingest), so a hook with slow work (webhooks) should hand it to
its own thread.

Alerts. With ``ServeSettings.alerts`` (``serve --alerts rules.toml``), :func:`open_service`
loads and checks the rules before it opens the store, and the service's first issue hook is
:meth:`~urbanflow.serving.alerting.ServiceAlerts.on_issue`, registered before the worker starts
so that every issue (the catch-up after a restart included) is evaluated. It gets the issued
forecast and the online conformal scale its intervals were computed with (the worker changes
the scale only when it observes the next step's readings, after the hooks ran).

Reading. ``GET /v1/forecasts`` answers the stored forecast of the newest step. While the
worker has a batch to look at, the request first waits for it (``issue_wait``, 2 s at most), so
that a step is not forecast twice; if the step is still not issued (too few sensors yet, or the
worker slower than that) :meth:`forecast` computes it on request as before issuing existed
(cached per store revision) and marks it ``stored=False``.
Live accuracy and coverage are scored in the store from the stored forecasts, so they survive
a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

import numpy as np
import pandas as pd

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.models.conformal import DEFAULT_LEVELS, OnlineConformal
from urbanflow.serving.accuracy import HorizonAccuracy, summarise
from urbanflow.serving.alerting import ServiceAlerts, load_service_rules
from urbanflow.serving.ingest import ParsedBody, ReadingRules, validate
from urbanflow.serving.issued import IssuedForecast
from urbanflow.serving.live import (
    LiveForecast,
    LiveModel,
    forecast_latest,
    forecast_steps,
    input_times,
)
from urbanflow.serving.settings import ServeSettings
from urbanflow.serving.store import IngestCounts, ReadingStore

log = logging.getLogger(__name__)

IssueHook = Callable[[IssuedForecast], None]
"""Called with each stored forecast, after its commit, on the issuing worker's thread."""

CATCH_UP_CHUNK = 64  # steps forecast in one batch when the worker catches up


def open_service(settings: ServeSettings) -> LiveService:
    """Load the bundle and the alert rules (a bad rules file fails before the store opens), open
    the store, register the model's sensors in it and open the alerts on it."""
    model = LiveModel.load(settings.model_dir)
    rules = None if settings.alerts is None else load_service_rules(settings.alerts, model)
    store = ReadingStore(settings.store_path)
    alerts = None
    try:
        store.register_sensors(model.sensor_table())
        if rules is not None:
            alerts = ServiceAlerts(rules, model, store)
        return LiveService(
            store=store,
            model=model,
            issue_share=settings.issue_share,
            levels=settings.levels,
            keep_forecasts=settings.keep_forecasts,
            alerts=alerts,
        )
    except BaseException:
        if alerts is not None:
            alerts.close()
        store.close()
        raise


@dataclass(eq=False)
class LiveService:
    """The model and store of a running service, and its issuing worker (started here)."""

    store: ReadingStore
    model: LiveModel
    issue_share: float = 0.8
    levels: tuple[float, ...] = DEFAULT_LEVELS
    keep_forecasts: timedelta | None = timedelta(days=7)
    issue_hooks: list[IssueHook] = field(default_factory=list)
    alerts: ServiceAlerts | None = None
    issue_wait: float = 2.0  # seconds a GET waits for the worker before computing (forecast)
    _revision: int = 0
    _cached: tuple[int, IssuedForecast] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Condition = field(init=False)
    _pending: bool = False  # a batch arrived since the worker last looked
    _busy: bool = False
    _closing: bool = False
    _last_issued: pd.Timestamp | None = None  # UTC
    _done_until: pd.Timestamp | None = None  # the newest step the worker looked at (UTC)
    _latest_issued: IssuedForecast | None = None
    _conformal: OnlineConformal | None = None
    _conformal_lock: threading.Lock = field(default_factory=threading.Lock)
    _worker: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.issue_share <= 1:
            raise ConfigError(
                f"issue share {self.issue_share} must be in (0, 1]: the share of sensors whose "
                "readings complete a step, e.g. 0.8"
            )
        calibration = self.model.calibration
        if calibration is not None and self.levels:
            # every reading that arrives counts: the cutoff is step 0
            self._conformal = OnlineConformal(replace(calibration, cutoff=0), self.levels)
        else:
            self.levels = ()
        self._wake = threading.Condition(self._lock)
        if self.alerts is not None:
            self.issue_hooks.insert(0, self._alert)
        self._last_issued = self._done_until = self.store.last_issued_time()
        self._pending = True  # readings may have arrived after the last issue before a restart
        self._worker = threading.Thread(target=self._work, name="urbanflow-issue", daemon=True)
        self._worker.start()

    # --- ingest -------------------------------------------------------------------------------

    def rules(self) -> ReadingRules:
        return ReadingRules(
            sensor_ids=frozenset(self.model.sensors.ids),
            timezone=self.model.metadata.timezone,
            step=self.model.step,
            now=pd.Timestamp.now(tz="UTC"),
        )

    def ingest(self, parsed: ParsedBody) -> IngestCounts:
        """Validate and commit one batch; returns once it is durable (issuing runs after)."""
        batch = validate(parsed, self.rules())
        counts = self.store.ingest(batch)
        if counts.changed:
            with self._lock:
                self._revision += 1
                self._pending = True
                self._wake.notify_all()
        return counts

    @property
    def revision(self) -> int:
        """Batches that changed a stored reading since this service started."""
        return self._revision

    # --- the issuing worker -------------------------------------------------------------------

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until the worker has issued every complete step; False on timeout."""
        with self._wake:
            return self._wake.wait_for(
                lambda: not (self._pending or self._busy) or self._closing, timeout
            )

    @property
    def last_issued_at(self) -> pd.Timestamp | None:
        """The newest stored forecast's issue time (UTC)."""
        return self._last_issued

    def close(self) -> None:
        """Let the worker finish the forecast it is storing, stop it, close the store."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._worker.join(timeout=60)
        try:
            if self.alerts is not None:
                self.alerts.close()
        finally:
            self.store.close()

    def _work(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._closing)
                if self._closing:
                    return
                self._pending = False
                self._busy = True
            try:
                self._catch_up()
            except Exception:  # keep serving; the next batch retries
                if not self._closing:
                    log.exception("issuing forecasts failed")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _complete_until(self) -> pd.Timestamp | None:
        """The newest complete step (UTC), or None."""
        latest = self.store.latest_time()
        if latest is None:
            return None
        if self.store.readings_at(latest) >= self.issue_share * len(self.model.sensors):
            return latest
        return latest - self.model.step

    def _catch_up(self) -> None:
        step = self.model.step
        until = self._complete_until()
        if until is None:
            return
        if self._done_until is not None:
            start = self._done_until + step
        else:
            oldest = until if self.keep_forecasts is None else until - self.keep_forecasts
            start = self.store.earliest_time(oldest)
            if start is None:
                return
        while start <= until and not self._closing:
            ends = pd.date_range(start, until, freq=step).as_unit("ns")[:CATCH_UP_CHUNK]
            for end, forecast in zip(
                ends, forecast_steps(self.model, self.store, ends), strict=True
            ):
                if self._closing:
                    return
                readings = None if forecast is None else forecast.latest
                self._observe(end, readings)
                if forecast is not None:
                    self._issue(forecast)
                self._done_until = end
            start = ends[-1] + step

    def _observe(self, end: pd.Timestamp, readings: np.ndarray | None) -> None:
        if self._conformal is None:
            return
        if readings is None:
            readings = self.store.window(self.model.sensors.ids, pd.DatetimeIndex([end]))[0]
        with self._conformal_lock:
            self._conformal.observe(self._step_index(end), readings.astype(np.float64))

    def _issue(self, forecast: LiveForecast) -> None:
        issued = self._issued(forecast, remember=True)
        stored_at = self.store.store_forecast(issued, self.keep_forecasts)
        issued = issued.as_stored(stored_at)  # as reading it back would give
        with self._lock:
            self._last_issued = issued.issued_at
            self._latest_issued = issued
        for hook in list(self.issue_hooks):
            try:
                hook(issued)
            except Exception:
                log.exception("an issue hook failed on the forecast issued at %s", issued.issued_at)

    def _alert(self, issued: IssuedForecast) -> None:
        if self.alerts is not None:
            self.alerts.on_issue(issued, self.conformal_scale())

    def conformal_scale(self) -> np.ndarray | None:
        """``[h n]`` a copy of the online conformal scale now (None: no intervals)."""
        if self._conformal is None:
            return None
        with self._conformal_lock:
            return self._conformal.scale.copy()

    def _step_index(self, time: pd.Timestamp) -> int:
        return int(time.tz_convert("UTC").value // self.model.step.value)

    def _issued(self, forecast: LiveForecast, remember: bool) -> IssuedForecast:
        """``forecast`` with its provenance and intervals (the sample ``T + 1`` of the online
        conformal state; ``remember``: issued, so that its targets update the state)."""
        model = self.model
        issued_at = forecast.issued_at.tz_convert("UTC")
        raw = forecast.values.astype(np.float64)  # finite for every sensor
        values = np.where(forecast.available[None, :], raw, np.nan)
        shape = (len(self.levels), *values.shape)
        lower, upper = np.full(shape, np.nan), np.full(shape, np.nan)
        scale = None
        if self._conformal is not None:
            # the raw forecast of every sensor: a NaN would poison the sensor's online scale
            with self._conformal_lock:
                scale = self._conformal.scale.copy()  # the one these intervals use
                if remember:
                    lower, upper = self._conformal.issue(self._step_index(issued_at) + 1, raw)
                else:
                    lower, upper = self._conformal.intervals(raw)
            lower = np.where(forecast.available[None, None, :], lower, np.nan)
            upper = np.where(forecast.available[None, None, :], upper, np.nan)
        times = input_times(model, issued_at)
        return IssuedForecast(
            issued_at=issued_at,
            model=model.name,
            model_version=model.weights_sha256,
            data_fingerprint=model.data_fingerprint,
            input_start=times[0],
            input_end=times[-1],
            step=model.step,
            sensor_ids=model.sensors.ids,
            levels=self.levels,
            values=values,
            available=forecast.available,
            latest=forecast.latest.astype(np.float64),
            lower=lower,
            upper=upper,
            stored=False,
            scale=scale,
        )

    # --- reading forecasts and scores ---------------------------------------------------------

    def forecast(self) -> IssuedForecast:
        """The forecast of the newest step: the stored one, else computed now (not stored).

        While the worker has a batch to look at it may be issuing that very step: the request
        waits for it (at most ``issue_wait`` seconds) instead of computing the same forecast a
        second time (at 10,000 sensors a forecast costs most of a second of the two cores).
        """
        issued = self._stored_latest()
        if issued is None and self.issue_wait > 0:
            with self._lock:
                working = self._pending or self._busy
            if working and self.wait_idle(self.issue_wait):
                issued = self._stored_latest()
        if issued is not None:
            return issued
        with self._lock:
            revision = self._revision
            if self._cached is not None and self._cached[0] == revision:
                return self._cached[1]
        computed = self._issued(forecast_latest(self.model, self.store), remember=False)
        with self._lock:
            self._cached = (revision, computed)
        return computed

    def forecast_in_memory(self) -> IssuedForecast | None:
        """The stored forecast of the newest step when it is already held in memory, else None:
        neither reads the store nor waits, so the event loop may answer from it directly."""
        latest = self.store.latest_time()
        with self._lock:
            issued = self._latest_issued
        if latest is None or issued is None or issued.issued_at != latest:
            return None
        return issued

    def _stored_latest(self) -> IssuedForecast | None:
        """The stored forecast of the newest reading's step; None while it is not issued."""
        latest = self.store.latest_time()
        with self._lock:
            issued = self._latest_issued
            last = self._last_issued
        if latest is None or last is None or last != latest:
            return None
        if issued is None or issued.issued_at != last:
            issued = self.store.issued_forecast(self.model.sensors.ids)
            with self._lock:
                self._latest_issued = issued
        return issued

    def issued(self, issued_at: pd.Timestamp) -> IssuedForecast:
        """The stored forecast issued at ``issued_at``; UnknownNameError (404) when none is."""
        found = self.store.issued_forecast(self.model.sensors.ids, issued_at)
        if found is not None:
            return found
        zone = self.model.metadata.timezone
        span = self.store.issued_span()
        held = (
            "none is stored yet"
            if span is None
            else f"{span[2]} are stored, issued from {span[0].tz_convert(zone).isoformat()} "
            f"to {span[1].tz_convert(zone).isoformat()}"
        )
        raise UnknownNameError(
            f"no forecast was issued at {issued_at.tz_convert(zone).isoformat()}; {held}"
        )

    def accuracy(
        self, minutes: float
    ) -> tuple[pd.Timestamp | None, list[HorizonAccuracy], tuple[float, ...]]:
        """Scores of the stored forecasts whose target times lie in the last ``minutes`` before
        the newest reading, that time (None: nothing stored), and the levels scored."""
        latest = self.store.latest_time()
        if latest is None:
            return None, summarise(self.model.horizon, self.levels, None, None), self.levels
        start = latest - pd.Timedelta(minutes=minutes)
        errors, coverage = self.store.forecast_scores(self.model.weights_sha256, start, latest)
        levels = tuple(sorted({*self.levels, *(float(v) for v in coverage["level"])}))
        return latest, summarise(self.model.horizon, levels, errors, coverage), levels
