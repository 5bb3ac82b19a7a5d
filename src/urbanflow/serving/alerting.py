"""The service's alerts: a rules file wired to the issued forecasts (issue 9, §3).

``urbanflow serve --alerts rules.toml`` loads and checks the rules against the model before
the store opens (:func:`load_service_rules`; a bad file is a one-line ``ConfigError``). The
service then opens :class:`ServiceAlerts` on the store's file: the alert tables on a cursor of
their own (``ReadingStore.cursor``), the webhook sender's thread (secret from
``URBANFLOW_WEBHOOK_SECRET``) and the engine, which restores the stored lifecycle state.

At each issued forecast (on the issuing worker, after its commit; never on a POST's path):

- ``below``/``above``: the probability per step and sensor that the reading falls below the
  threshold, from the conformal distribution around the issued values with the sensors'
  current online scale, the one the issue's intervals were computed with (the bundle's
  calibrated scale when the service runs with ``--levels none``). A sensor without a forecast
  at that issue gets no probability (it is skipped, neither holding nor clearing).
- ``above_capacity``: the probability per step and sensor that the reading reaches the
  sensor's capacity, from the same distribution (``serving/capacity.py``); a sensor without a
  capacity is skipped like one without a forecast.
- ``drift``: live MAE per sensor from the stored forecasts whose targets fall in the hour up to
  the issue time (as ``GET /v1/accuracy`` scores them, pooled over the steps scored), against
  the validation MAE per sensor. The bundle keeps no per-sensor validation MAE, so this uses
  the calibration's ``scale``: the mean absolute validation residual per step and sensor
  (shrunk toward the pooled mean for sensors with few residuals), averaged over the same steps
  as the live MAE. It is computed only when some rule is a drift rule.

Webhook delivery runs in the sender's thread; evaluating and recording an issue takes a few
milliseconds of the issuing worker and never a lock that ingest holds for long.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanflow.errors import ConfigError
from urbanflow.models.conformal import Calibration, probability_below
from urbanflow.serving.alerts import (
    AlertEngine,
    CapacityCondition,
    DriftCondition,
    DuckDBAlertStore,
    Rule,
    RuleScope,
    ThresholdCondition,
    WebhookSender,
    load_rules,
    secret_from_environment,
)
from urbanflow.serving.capacity import probability_above_capacity
from urbanflow.serving.issued import IssuedForecast
from urbanflow.serving.live import LiveModel
from urbanflow.serving.store import ReadingStore

log = logging.getLogger(__name__)

DRIFT_WINDOW = pd.Timedelta(hours=1)
"""Target times of the live MAE a drift rule compares: the hour up to the issue time."""


def load_service_rules(path: Path, model: LiveModel) -> tuple[Rule, ...]:
    """The rules of ``path`` checked against ``model``'s sensors, horizon and step, and against
    what the bundle can evaluate (every condition needs its calibration)."""
    rules = load_rules(path, RuleScope.of(model.sensors, model.horizon, model.step))
    if model.calibration is not None:
        return rules
    rule = rules[0]  # every condition needs it: the first rule is the one to name
    raise ConfigError(
        f"{path}: rule {rule.name!r} `condition`: {rule.condition.kind!r} needs the bundle's "
        "conformal calibration, which this bundle lacks; retrain it with this version of urbanflow"
    )


class ServiceAlerts:
    """The rules, their engine, alert store and webhook sender, over one reading store.

    ``on_issue`` is the service's issue hook; ``alerts`` and ``rules`` answer the routes;
    ``close`` stops the sender (undelivered notifications stay in the outbox) and closes the
    alert tables' cursor.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        model: LiveModel,
        store: ReadingStore,
        sender_options: dict[str, Any] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.model = model
        self.store = store
        self._cursor = store.cursor()
        try:
            self.alert_store = DuckDBAlertStore(self._cursor)
            self.sender = WebhookSender(
                self.alert_store, secret_from_environment(), **(sender_options or {})
            ).start()
            self.engine = AlertEngine(self.rules, model.sensors.ids, self.alert_store, self.sender)
            self._values = self.alert_store.entry_values()
        except BaseException:
            self._cursor.close()
            raise
        self._lock = threading.Lock()
        self._threshold_rules = any(isinstance(r.condition, ThresholdCondition) for r in rules)
        self._capacity_rules = any(isinstance(r.condition, CapacityCondition) for r in rules)
        self._drift_rules = any(isinstance(r.condition, DriftCondition) for r in rules)

    # --- at each issue ------------------------------------------------------------------------

    def on_issue(self, issued: IssuedForecast, scale: np.ndarray | None) -> None:
        """Evaluate every rule on ``issued``; ``scale`` ``[h n]``: the conformal scale its
        intervals were computed with (None: the calibration's)."""
        calibration = self.model.calibration
        below = None
        if self._threshold_rules and calibration is not None:
            below = self._probability_below(calibration, scale, issued.values)
        above = None
        capacity = self.model.capacity
        if self._capacity_rules and calibration is not None and capacity is not None:
            scale_now = calibration.scale if scale is None else scale
            above = probability_above_capacity(calibration, scale_now, issued.values, capacity)
        live = reference = None
        if self._drift_rules and calibration is not None:
            live, reference = self._errors(calibration, issued.issued_at)
        transitions = self.engine.on_issue(
            issued.issued_at.to_pydatetime(),
            probability_below=below,
            live_mae=live,
            validation_mae=reference,
            probability_above_capacity=above,
        )
        if transitions:
            with self._lock:
                values = dict(self._values)
                for t in transitions:
                    if t.to_state == "inactive":
                        values.pop((t.rule, t.sensor_id), None)
                    else:
                        values[(t.rule, t.sensor_id)] = t.value
                self._values = values

    @staticmethod
    def _probability_below(
        calibration: Calibration, scale: np.ndarray | None, values: np.ndarray
    ) -> Any:
        scale = calibration.scale if scale is None else scale
        unknown = np.isnan(values)  # a NaN forecast would sort above every score: P = 1
        filled = np.where(unknown, 0.0, values)

        def below(threshold: float) -> np.ndarray:
            probability = probability_below(calibration, scale, filled, threshold)
            return np.where(unknown, np.nan, probability)

        return below

    def _errors(
        self, calibration: Calibration, issued_at: pd.Timestamp
    ) -> tuple[np.ndarray, np.ndarray]:
        """``[n]`` live MAE (NaN: nothing scored) and validation MAE over the same steps."""
        horizon, ids = calibration.horizon, self.model.sensors.ids
        scored = self.store.sensor_errors(
            self.model.weights_sha256, issued_at - DRIFT_WINDOW, issued_at
        )
        per_step = np.full((horizon, len(ids)), np.nan)  # [h n] live MAE
        column = pd.Index(ids).get_indexer(scored["sensor_id"])
        step = scored["horizon_steps"].to_numpy(dtype=np.int64) - 1
        keep = (column >= 0) & (step >= 0) & (step < horizon)
        mae = scored["error"].to_numpy(dtype=np.float64) / scored["count"].to_numpy(np.float64)
        per_step[step[keep], column[keep]] = mae[keep]
        known = ~np.isnan(per_step)
        counts = known.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            live = np.where(counts > 0, np.nansum(per_step, axis=0) / counts, np.nan)
            reference = np.where(
                counts > 0, (calibration.reference_mae * known).sum(axis=0) / counts, np.nan
            )
        return live, reference

    # --- for the routes -----------------------------------------------------------------------

    def describe_rules(self) -> list[dict[str, Any]]:
        """Each rule as ``Rule.describe`` gives it, in the file's order."""
        return [rule.describe() for rule in self.rules]

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        """The current alerts (``state``: only those in it), each with its rule's condition
        and the value recorded when it entered its state; ``since`` is a UTC ``Timestamp``."""
        by_name = {rule.name: rule for rule in self.rules}
        with self._lock:
            values = self._values
        out = []
        for alert in self.engine.alerts(state):
            rule = by_name[alert["rule"]]
            condition = rule.condition
            threshold = isinstance(condition, ThresholdCondition)
            probable = threshold or isinstance(condition, CapacityCondition)
            since = alert["since"]
            out.append(
                {
                    "rule": alert["rule"],
                    "sensor_id": alert["sensor_id"],
                    "state": alert["state"],
                    "since": None if since is None else pd.Timestamp(since).tz_convert("UTC"),
                    "value": values.get((alert["rule"], alert["sensor_id"])),
                    "condition": condition.kind,
                    "threshold": condition.threshold if threshold else None,
                    "within_minutes": condition.within_minutes if probable else None,
                    "probability": condition.probability if probable else None,
                    "factor": None if probable else condition.factor,
                }
            )
        return out

    def close(self) -> None:
        """Stop the sender after its current request, close the alert tables' cursor."""
        try:
            self.sender.stop()
            self.sender.client.close()
        finally:
            try:
                self.alert_store.close()
            finally:
                self._cursor.close()
