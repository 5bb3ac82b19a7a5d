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
    """Base class: validates inputs and outputs; subclasses implement ``_fit``/``_predict``.

    Parameters
    ----------
    input_len
        ``L``, input steps each forecast is made from, ≥ 1 (default 12).
    horizon
        ``h``, steps forecast ahead of each sample time, ≥ 1 (default 12).
    """

    name: ClassVar[str] = "forecaster"
    requires_graph: ClassVar[bool] = False

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

    def chosen_hyperparameters(self) -> dict[str, object]:
        """Settings the fit chose itself (e.g. ridge's ``alpha`` by validation MAE); empty for
        models that choose none. Reports show them beside the constructor settings."""
        return {}

    def parameter_count(self) -> int:
        """Number of learned numbers (0 for rules without learned state)."""
        return 0

    def forecast_distribution(self) -> tuple[str, np.ndarray | None]:
        """``(family, dispersion)`` of the distribution the fitted model's forecasts are the
        mean of: ``("none", None)`` unless a network was fitted with a distributional loss
        (``poisson``, ``tweedie``; ``negative-binomial`` with ``α [n]`` per sensor)."""
        return "none", None

    def fit(
        self,
        dataset: CityDataset,
        validation: CityDataset | None = None,
        progress: FitProgress | None = None,
    ) -> Forecaster:
        """Learn from ``dataset``; ``validation`` holds whole windows (inputs and targets).

        Parameters
        ----------
        dataset
            The training part: every step may be learned from. It needs at least
            ``input_len + 1`` steps.
        validation
            A later part with the same sensors, in the same order, whose windows (inputs and
            targets) may steer training (early stopping, model selection); never test data.
            ``None`` (default): no validation.
        progress
            Called as ``progress(done, total, status)`` while training, for a progress bar;
            ``None`` (default): silent. Models without iterative training may never call it.

        Returns
        -------
        Forecaster
            ``self``, fitted (``sensor_ids_`` set).
        """
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
        """``[b h n]`` forecasts, ``b = len(times)``, ``h = self.horizon``.

        Parameters
        ----------
        dataset
            The data to forecast from, with the fitted sensors in the fitted order (a
            DataError otherwise); its readings before each sample time are the inputs.
        times
            ``[b]`` int sample times, step indices of ``dataset`` in
            ``input_len … num_steps``: sample ``t`` forecasts steps ``t … t+h-1`` from the
            inputs ``t-input_len … t-1`` (and the calendar), never a reading at or after ``t``.

        Returns
        -------
        numpy.ndarray
            ``[b h n]`` float32 finite forecasts, in the unit of the readings' channel 0.
        """
        if not self.is_fitted:
            raise NotFittedError(f"{self.name} is not fitted; call fit(dataset) before predict")
        require_same_sensors(self.sensor_ids_, dataset, self.name)
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


def require_same_sensors(fitted: tuple[str, ...], dataset: CityDataset, model: str) -> None:
    """A DataError unless ``dataset`` has the fitted sensors, in the fitted order.

    Parameters
    ----------
    fitted
        The sensor ids the model was fitted on, in order.
    dataset
        The data it is asked to forecast or be scored on.
    model
        What to call the model in the message (its name or bundle folder).
    """
    if dataset.sensors.ids == fitted:
        return
    missing = sorted(set(fitted) - set(dataset.sensors.ids))
    detail = f"missing e.g. {', '.join(missing[:5])}" if missing else "in another order"
    raise DataError(
        f"{model}: the sensors differ from the model's: it was fitted on {len(fitted)}, "
        f"{dataset.metadata.name} has {dataset.num_sensors} ({detail}); give the dataset the "
        "model was fitted on"
    )
