"""An issued forecast: what the service forecast at one step, with its provenance.

The service issues one when a step is complete (``serving/service.py``), stores it whole in the
reading store (``serving/store.py``) and never changes it afterwards; ``GET /v1/forecasts``
answers from it, live accuracy and coverage are scored from it, and the service's issue hooks
receive it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd


@dataclass(frozen=True, eq=False)
class IssuedForecast:
    """The forecast issued at step ``issued_at`` (UTC): inputs end with its readings.

    Parameters
    ----------
    issued_at
        The newest input step, UTC; step ``h`` (1-based) targets ``issued_at + h·step``.
    model, model_version, data_fingerprint
        The model's name, the SHA-256 of its weights (hex, full) and the fingerprint of the data
        it was trained on (from its card).
    input_start, input_end
        The first and last step of the input window, UTC.
    step
        The data's step.
    sensor_ids
        ``[n]`` the sensors, in the order of the arrays.
    levels
        Interval levels in percent, ``()`` when the model has no calibration.
    values
        ``[h n]`` point forecasts, NaN for a sensor without one.
    available
        ``[n]`` whether a sensor got a forecast (at least half its input window present).
    latest
        ``[n]`` the readings at ``issued_at`` when it was issued (NaN: none): the last-value
        forecast that live accuracy compares with.
    lower, upper
        ``[K h n]`` interval bounds per level (``K = 0`` without levels).
    stored
        Whether it is in the store (False: computed on request before it was issued).
    stored_at
        The server's clock when it was stored (UTC), for the audit; None when not stored.
    scale
        ``[h n]`` the online conformal scale its intervals were computed with, kept in memory
        only (not stored): None for a forecast read back from the store or issued without
        intervals, where the calibration's scale stands in (probabilities of exceeding a
        capacity, ``serving/capacity.py``).
    """

    issued_at: pd.Timestamp
    model: str
    model_version: str
    data_fingerprint: str
    input_start: pd.Timestamp
    input_end: pd.Timestamp
    step: pd.Timedelta
    sensor_ids: tuple[str, ...]
    levels: tuple[float, ...]
    values: np.ndarray
    available: np.ndarray
    latest: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    stored: bool = True
    stored_at: pd.Timestamp | None = None
    scale: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        """``h``, the steps forecast."""
        return int(self.values.shape[0])

    def as_stored(self, stored_at: pd.Timestamp) -> IssuedForecast:
        """This forecast as the store holds it (numbers in single precision), stored at
        ``stored_at``: what reading it back gives."""

        def single(array: np.ndarray) -> np.ndarray:
            return array.astype(np.float32).astype(np.float64)

        return replace(
            self,
            values=single(self.values),
            latest=np.where(self.available, single(self.latest), np.nan),
            lower=single(self.lower),
            upper=single(self.upper),
            stored=True,
            stored_at=stored_at,
        )

    def target_times(self) -> pd.DatetimeIndex:
        """``[h]`` the target times (UTC) of steps ``1 … h``."""
        return pd.DatetimeIndex(
            [self.issued_at + k * self.step for k in range(1, self.horizon + 1)]
        ).as_unit("ns")
