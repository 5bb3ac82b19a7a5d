"""Live accuracy: the forecasts the service issued, scored as their target readings arrive.

Every forecast the service computes is remembered with the readings at its issue time (the
last-value forecast a control room has without a model). When readings for a target time
arrive, both are scored on the same sensors: the errors ``|forecast − reading|`` per horizon
step, kept per target time for a day. A correction of a reading re-scores its target time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

KEEP = pd.Timedelta(days=1)  # target times older than this (behind the newest) are dropped


@dataclass(frozen=True)
class HorizonAccuracy:
    """MAE of the model and of the last value at one horizon step, over ``count`` readings."""

    horizon_steps: int
    mae: float | None
    last_value_mae: float | None
    count: int


@dataclass
class _Target:
    """What was forecast for one target time (``[h n]``, NaN: no forecast) and what arrived."""

    model: np.ndarray
    last: np.ndarray
    actual: np.ndarray


@dataclass
class AccuracyTracker:
    """Forecasts awaiting their readings, and the scores of those that got them."""

    sensor_ids: tuple[str, ...]
    horizon: int
    step: pd.Timedelta
    _targets: dict[int, _Target] = field(default_factory=dict)
    _index: pd.Index = field(init=False)

    def __post_init__(self) -> None:
        self._index = pd.Index(self.sensor_ids)

    def remember(
        self,
        issued_at: pd.Timestamp,
        values: np.ndarray,
        available: np.ndarray,
        latest: np.ndarray,
    ) -> None:
        """Keep ``values: [h n]`` issued at ``issued_at``; ``latest: [n]`` are the readings at
        that time (NaN: none). Only sensors with a forecast and a latest reading are scored."""
        scored = available & np.isfinite(latest)
        issued = issued_at.tz_convert("UTC").value
        for h in range(1, self.horizon + 1):
            target = self._target(issued + h * self.step.value)
            target.model[h - 1] = np.where(scored, values[h - 1], np.nan)
            target.last[h - 1] = np.where(scored, latest, np.nan)

    def observe(self, batch: pd.DataFrame) -> None:
        """Take a stored batch ``sensor_id, ts`` (UTC, naive), ``value`` (NaN: none)."""
        present = batch[batch["value"].notna()]
        times = pd.DatetimeIndex(present["ts"]).tz_localize("UTC").as_unit("ns").asi8
        columns = self._index.get_indexer(present["sensor_id"])
        values = present["value"].to_numpy(dtype=np.float64)
        for time in np.unique(times):
            if int(time) in self._targets:
                rows = times == time
                self._targets[int(time)].actual[columns[rows]] = values[rows]
        if times.size:
            self._forget_before(int(times.max()) - KEEP.value)

    def summary(self, until: pd.Timestamp, minutes: float) -> list[HorizonAccuracy]:
        """Scores per horizon step over target times in ``(until − minutes, until]``."""
        end = until.tz_convert("UTC").value
        start = end - pd.Timedelta(minutes=minutes).value
        model = np.zeros(self.horizon)
        last = np.zeros(self.horizon)
        count = np.zeros(self.horizon, dtype=np.int64)
        for time, target in self._targets.items():
            if not start < time <= end:
                continue
            both = np.isfinite(target.model) & np.isfinite(target.actual)[None, :]
            model += np.where(both, np.abs(target.model - target.actual), 0.0).sum(axis=1)
            last += np.where(both, np.abs(target.last - target.actual), 0.0).sum(axis=1)
            count += both.sum(axis=1)
        return [
            HorizonAccuracy(
                horizon_steps=h + 1,
                mae=float(model[h] / count[h]) if count[h] else None,
                last_value_mae=float(last[h] / count[h]) if count[h] else None,
                count=int(count[h]),
            )
            for h in range(self.horizon)
        ]

    def _target(self, time: int) -> _Target:
        if time not in self._targets:
            shape = (self.horizon, len(self.sensor_ids))
            self._targets[time] = _Target(
                model=np.full(shape, np.nan),
                last=np.full(shape, np.nan),
                actual=np.full(len(self.sensor_ids), np.nan),
            )
        return self._targets[time]

    def _forget_before(self, time: int) -> None:
        for old in [t for t in self._targets if t < time]:
            del self._targets[old]
