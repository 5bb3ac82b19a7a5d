"""Samples as indices into the readings: windows are gathered per batch, never stored.

A sample at time ``t`` has inputs ``readings[t-L : t]`` and targets ``readings[t : t+H, :, 0]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from urbanflow.errors import ConfigError


def sample_times(num_steps: int, input_len: int, horizon: int) -> np.ndarray:
    """Valid sample times ``t = L, …, T-H`` (both ends included): ``S = T - L - H + 1``."""
    if input_len < 1 or horizon < 1:
        raise ConfigError(f"input length and horizon must be ≥ 1; got {input_len}, {horizon}")
    count = num_steps - input_len - horizon + 1
    if count < 1:
        raise ConfigError(
            f"{num_steps} time steps are too few for input length {input_len} and horizon "
            f"{horizon}; shorten them or give a longer series"
        )
    return np.arange(input_len, input_len + count, dtype=np.int64)


def input_windows(readings: np.ndarray, times: np.ndarray, input_len: int) -> np.ndarray:
    """Gather ``[b L n c]`` inputs ``readings[t-L : t]`` for each ``t`` in ``times``."""
    offsets = np.arange(-input_len, 0)
    return readings[np.asarray(times)[:, None] + offsets]


def target_windows(readings: np.ndarray, times: np.ndarray, horizon: int) -> np.ndarray:
    """Gather ``[b H n]`` targets ``readings[t : t+H, :, 0]`` for each ``t`` in ``times``."""
    offsets = np.arange(horizon)
    return readings[np.asarray(times)[:, None] + offsets, :, 0]


def batches(times: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``times`` of at most ``batch_size`` samples."""
    for start in range(0, len(times), batch_size):
        yield times[start : start + batch_size]
