"""The forecaster contract every model follows.

``Model(**hyperparameters)`` stores its settings and does nothing else; ``fit(dataset)``
learns from every step of the dataset given (the caller passes the training part only) and
returns ``self``; ``fit(dataset, validation)`` may also use the windows of a validation part
(early stopping, model selection), never test data; ``predict(dataset, times)`` returns
``[b h n]`` finite forecasts for the samples at ``times``: sample ``t`` may use
``dataset.readings[:t]`` (inputs end at ``t-1``) and the calendar, never a reading at or
after ``t``. Learned state ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from urbanflow.data.dataset import CityDataset
from urbanflow.errors import ConfigError, DataError, NotFittedError

FitProgress = Callable[[int, int, str], None]
"""Training progress: (steps done, steps in all, a status line such as the validation MAE)."""


class Forecaster:
    """Base class: validates inputs and outputs; subclasses implement ``_fit``/``_predict``."""

    name: ClassVar[str] = "forecaster"
    requires_graph: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = False

    def __init__(self, input_len: int = 12, horizon: int = 12) -> None:
        if input_len < 1 or horizon < 1:
            raise ConfigError(f"input_len and horizon must be ≥ 1; got {input_len}, {horizon}")
        self.input_len = input_len
        self.horizon = horizon

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "sensor_ids_")

    def hyperparameters(self) -> dict[str, object]:
        """Constructor settings (public attributes not ending in ``_``)."""
        return {
            key: value
            for key, value in vars(self).items()
            if not key.endswith("_") and not key.startswith("_")
        }

    def parameter_count(self) -> int:
        """Number of learned numbers (0 for rules without learned state)."""
        return 0

    def fit(
        self,
        dataset: CityDataset,
        validation: CityDataset | None = None,
        progress: FitProgress | None = None,
    ) -> Forecaster:
        """Learn from ``dataset``; ``validation`` holds whole windows (inputs and targets)."""
        if dataset.num_steps < self.input_len + 1:
            raise DataError(
                f"{self.name}: {dataset.num_steps} training steps are fewer than input length "
                f"{self.input_len} + 1; give more training data"
            )
        if validation is not None and validation.sensors.ids != dataset.sensors.ids:
            raise DataError(f"{self.name}: validation data must have the training sensors")
        self._fit(dataset, validation, progress)
        self.sensor_ids_ = dataset.sensors.ids
        return self

    def predict(self, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        """``[b h n]`` forecasts, ``b = len(times)``, ``h = self.horizon``."""
        if not self.is_fitted:
            raise NotFittedError(f"{self.name} is not fitted; call fit(dataset) before predict")
        if dataset.sensors.ids != self.sensor_ids_:
            raise DataError(
                f"{self.name} was fitted on {len(self.sensor_ids_)} sensors but the dataset has "
                f"{dataset.num_sensors} or a different order; forecast the dataset it was fitted on"
            )
        times = np.asarray(times, dtype=np.int64)
        if times.ndim != 1 or (
            times.size and (times.min() < self.input_len or times.max() > dataset.num_steps)
        ):
            raise DataError(
                f"sample times must lie in {self.input_len}..{dataset.num_steps} so that a full "
                "input window precedes each"
            )
        forecast = self._predict(dataset, times)
        expected = (times.size, self.horizon, dataset.num_sensors)
        if forecast.shape != expected:  # a bug in the model, not a user error
            raise RuntimeError(f"{self.name} returned {forecast.shape}, expected {expected}")
        if not np.isfinite(forecast).all():
            raise RuntimeError(f"{self.name} returned non-finite forecasts")
        return forecast.astype(np.float32, copy=False)

    def _fit(
        self, dataset: CityDataset, validation: CityDataset | None, progress: FitProgress | None
    ) -> None:
        raise NotImplementedError

    def _predict(self, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        raise NotImplementedError
