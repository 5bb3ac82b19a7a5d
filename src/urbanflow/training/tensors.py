"""A dataset as tensors for training: z-scored readings, presence mask, calendar indices.

Windows are gathered per batch from sample times (``t``: inputs ``[t-L, t)``, targets
``[t, t+H)``), never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from urbanflow.data.calendar import calendar_slots, day_types, step_times
from urbanflow.data.dataset import CityDataset
from urbanflow.data.windows import input_offsets, input_steps, target_offsets


@dataclass(frozen=True)
class Scaler:
    """Z-score of the target channel, fitted on present training readings only."""

    mean: float
    std: float

    @classmethod
    def fit(cls, readings: np.ndarray) -> Scaler:
        present = readings[~np.isnan(readings)]
        if present.size == 0:
            return cls(0.0, 1.0)
        std = float(present.std())
        return cls(float(present.mean()), std if std > 0 else 1.0)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.std + self.mean


@dataclass(frozen=True)
class SeriesTensors:
    """``values``, ``present``, ``raw``: ``[T n]``; ``tod``, ``dow``: ``[T + H]``.

    The calendar runs ``H`` steps past the end so that forecasts can look up target times.
    """

    values: torch.Tensor
    present: torch.Tensor
    raw: torch.Tensor
    tod: torch.Tensor
    dow: torch.Tensor

    @classmethod
    def build(
        cls,
        dataset: CityDataset,
        scaler: Scaler,
        horizon: int,
        device: torch.device,
        weekdays: bool = True,
    ) -> SeriesTensors:
        """The tensors of ``dataset``; ``dow`` holds day types (:func:`calendar.day_types`):
        weekdays with holidays as Sundays, or 0 throughout when ``weekdays`` is False."""
        return cls._of_steps(
            dataset, slice(None), np.arange(dataset.num_steps), scaler, horizon, device, weekdays
        )

    @classmethod
    def for_inputs(
        cls,
        dataset: CityDataset,
        times: np.ndarray,
        input_len: int,
        scaler: Scaler,
        horizon: int,
        device: torch.device,
        weekdays: bool = True,
    ) -> tuple[SeriesTensors, np.ndarray]:
        """``(series, rows)``: tensors of only the steps that the input windows of samples at
        ``times`` read, and each sample's time as a row of them, so that
        ``series.inputs(rows, input_len)`` equals ``build(...).inputs(times, input_len)``.

        What a forecast needs: its cost grows with the samples asked for, not with the length
        of ``dataset``. ``targets`` of such a series are meaningless (its rows skip steps).

        Parameters
        ----------
        dataset
            The readings to forecast from.
        times
            ``[b]`` int sample times in ``input_len … num_steps``: inputs ``t-L … t-1``.
        input_len
            ``L``, input steps per sample.
        scaler
            Z-score of the target channel (the model's training scaler).
        horizon
            ``H``: the calendar runs ``H`` steps past the last step held.
        device
            Torch device of the tensors.
        weekdays
            Whether ``dow`` holds day types (see :meth:`build`) or 0 throughout.
        """
        times = np.asarray(times, dtype=np.int64)
        steps = np.unique(input_steps(times, input_len))
        rows = np.searchsorted(steps, times - input_len) + input_len
        series = cls._of_steps(dataset, steps, steps, scaler, horizon, device, weekdays)
        return series, rows

    @classmethod
    def _of_steps(
        cls,
        dataset: CityDataset,
        rows: slice | np.ndarray,
        steps: np.ndarray,
        scaler: Scaler,
        horizon: int,
        device: torch.device,
        weekdays: bool,
    ) -> SeriesTensors:
        """The tensors of the readings at ``rows`` (a slice keeps the whole dataset uncopied),
        which are the sorted grid ``steps``; the calendar adds ``H`` steps past the last."""
        readings = dataset.readings[rows, :, 0]
        present = ~np.isnan(readings)
        raw = np.nan_to_num(readings)  # a copy: missing readings read 0
        scaled = scaler.transform(raw)
        scaled[~present] = 0.0
        beyond = steps[-1] + 1 + np.arange(horizon) if len(steps) else np.arange(horizon)
        stamps = step_times(dataset, np.concatenate([steps, beyond]))
        _, slot = calendar_slots(stamps, dataset.step)
        meta = dataset.metadata
        weekday = day_types(stamps, weekdays, meta.country, meta.subdivision)
        return cls(
            values=torch.as_tensor(scaled, dtype=torch.float32, device=device),
            present=torch.as_tensor(present, dtype=torch.float32, device=device),
            raw=torch.as_tensor(raw, dtype=torch.float32, device=device),
            tod=torch.as_tensor(slot, dtype=torch.int64, device=device),
            dow=torch.as_tensor(weekday, dtype=torch.int64, device=device),
        )

    def inputs(
        self, times: torch.Tensor, input_len: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [b L n 2]``, ``tod [b L]``, ``dow [b L]`` for samples at ``times [b]``."""
        index = times[:, None] + torch.as_tensor(input_offsets(input_len), device=times.device)
        x = torch.stack([self.values[index], self.present[index]], dim=-1)
        return x, self.tod[index], self.dow[index]

    def targets(self, times: torch.Tensor, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``y [b H n]`` in the original unit and its presence mask."""
        index = times[:, None] + torch.as_tensor(target_offsets(horizon), device=times.device)
        return self.raw[index], self.present[index]
