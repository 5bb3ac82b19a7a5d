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
    """``readings``: ``[T n]`` float32 in the data's unit, NaN where missing; ``tod``,
    ``dow``: ``[T + H]``; ``scaler``: the z-score of the network's inputs.

    The readings are held once: on the CPU the tensor shares the dataset's array, and the
    z-scored inputs, presence masks and targets of a batch are derived from them when it is
    gathered. The calendar runs ``H`` steps past the end so that forecasts can look up target
    times.
    """

    readings: torch.Tensor
    scaler: Scaler
    tod: torch.Tensor
    dow: torch.Tensor

    @property
    def num_sensors(self) -> int:
        return int(self.readings.shape[1])

    @property
    def device(self) -> torch.device:
        return self.readings.device

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
        span = len(steps) > 0 and steps[-1] - steps[0] + 1 == len(steps)
        held = slice(steps[0], steps[-1] + 1) if span else steps  # a run of steps: a view
        series = cls._of_steps(dataset, held, steps, scaler, horizon, device, weekdays)
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
        readings = as_float32_tensor(dataset.readings[rows, :, 0], device)
        beyond = steps[-1] + 1 + np.arange(horizon) if len(steps) else np.arange(horizon)
        stamps = step_times(dataset, np.concatenate([steps, beyond]))
        _, slot = calendar_slots(stamps, dataset.step)
        meta = dataset.metadata
        weekday = day_types(stamps, weekdays, meta.country, meta.subdivision)
        return cls(
            readings=readings,
            scaler=scaler,
            tod=torch.as_tensor(slot, dtype=torch.int64, device=device),
            dow=torch.as_tensor(weekday, dtype=torch.int64, device=device),
        )

    def inputs(
        self, times: torch.Tensor, input_len: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [b L n 2]`` (z-scored reading, 0 where missing; presence mask), ``tod [b L]``,
        ``dow [b L]`` for samples at ``times [b]``."""
        index = times[:, None] + torch.as_tensor(input_offsets(input_len), device=times.device)
        window = self.readings[index]
        present = ~torch.isnan(window)
        scaled = ((window - self.scaler.mean) / self.scaler.std).masked_fill_(~present, 0.0)
        x = torch.stack([scaled, present.to(torch.float32)], dim=-1)
        return x, self.tod[index], self.dow[index]

    def targets(self, times: torch.Tensor, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``y [b H n]`` in the original unit (0 where missing) and its presence mask."""
        index = times[:, None] + torch.as_tensor(target_offsets(horizon), device=times.device)
        target = self.readings[index]
        present = ~torch.isnan(target)
        return target.masked_fill_(~present, 0.0), present.to(torch.float32)


def as_float32_tensor(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """``values`` as a float32 tensor on ``device``, sharing the array's memory when it already
    is a writable C-contiguous float32 array and the device is the CPU (no copy of a city's
    readings; the tensor is only ever read)."""
    flags = values.flags
    if (
        device.type == "cpu"
        and values.dtype == np.float32
        and flags.c_contiguous
        and flags.writeable
    ):
        return torch.from_numpy(values)
    return torch.as_tensor(np.ascontiguousarray(values, dtype=np.float32), device=device)
