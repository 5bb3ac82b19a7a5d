"""Samples as indices into the readings: windows are gathered per batch, never stored.

A sample at time ``t`` has inputs ``readings[t-L : t]`` and targets ``readings[t : t+H, :, 0]``;
:func:`input_offsets` and :func:`target_offsets` are the one place that says so;
:func:`input_steps` and :func:`target_steps` add them to sample times in NumPy, and PyTorch
code adds them (through ``torch.as_tensor``) to its own tensor of times.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from urbanflow.errors import ConfigError


def sample_times(num_steps: int, input_len: int, horizon: int) -> np.ndarray:
    """Valid sample times ``t = L, …, T-H`` (both ends included): ``S = T - L - H + 1``.

    Parameters
    ----------
    num_steps
        ``T``, the number of time steps of the series.
    input_len
        ``L``, input steps per sample (≥ 1).
    horizon
        ``H``, target steps per sample (≥ 1).
    """
    if input_len < 1 or horizon < 1:
        raise ConfigError(f"input length and horizon must be ≥ 1; got {input_len}, {horizon}")
    count = num_steps - input_len - horizon + 1
    if count < 1:
        raise ConfigError(
            f"{num_steps} time steps are too few for input length {input_len} and horizon "
            f"{horizon}; shorten them or give a longer series"
        )
    return np.arange(input_len, input_len + count, dtype=np.int64)


INNER_VALIDATION = 0.1
"""Share of the training samples a model holds out for validation when it is given none."""


def hold_out(
    times: np.ndarray, horizon: int, share: float = INNER_VALIDATION
) -> tuple[np.ndarray, np.ndarray]:
    """``(fitting, held)``: the last ``share`` of ``times`` (at least one) held out, and the
    ``H`` samples before them dropped, so that no fitting target is a held-out target.

    What a model does for early stopping or model selection when ``fit`` gets no validation
    part. ``fitting`` may be empty when there are too few samples.

    Parameters
    ----------
    times
        ``[s]`` sample times of the training part, in time order.
    horizon
        ``H``, target steps per sample: the gap left between the two parts.
    share
        Share of the samples held out (default :data:`INNER_VALIDATION`, 10 %).
    """
    held = max(1, int(len(times) * share))
    return times[: max(0, len(times) - held - horizon)], times[-held:]


def input_offsets(input_len: int) -> np.ndarray:
    """``[L]`` offsets ``-L, …, -1`` of a sample's input steps from its time ``t``.

    Parameters
    ----------
    input_len
        ``L``, input steps per sample.
    """
    return np.arange(-input_len, 0)


def target_offsets(horizon: int) -> np.ndarray:
    """``[H]`` offsets ``0, …, H-1`` of a sample's target steps from its time ``t``.

    Parameters
    ----------
    horizon
        ``H``, target steps per sample.
    """
    return np.arange(horizon)


def input_steps(times: np.ndarray, input_len: int) -> np.ndarray:
    """``[b L]`` step indices ``t-L, …, t-1`` of the inputs of each sample time ``t``.

    Parameters
    ----------
    times
        ``[b]`` integer sample times.
    input_len
        ``L``, input steps per sample.
    """
    return np.asarray(times)[:, None] + input_offsets(input_len)


def target_steps(times: np.ndarray, horizon: int) -> np.ndarray:
    """``[b H]`` step indices ``t, …, t+H-1`` of the targets of each sample time ``t``.

    Parameters
    ----------
    times
        ``[b]`` integer sample times.
    horizon
        ``H``, target steps per sample.
    """
    return np.asarray(times)[:, None] + target_offsets(horizon)


def input_span(times: np.ndarray, input_len: int) -> tuple[int, int]:
    """``(first, stop)``: the steps ``[first, stop)`` that the inputs of all ``times`` cover.

    Parameters
    ----------
    times
        ``[b]`` integer sample times, at least one.
    input_len
        ``L``, input steps per sample.
    """
    return int(np.min(times)) - input_len, int(np.max(times))


def input_windows(readings: np.ndarray, times: np.ndarray, input_len: int) -> np.ndarray:
    """Gather ``[b L n c]`` inputs ``readings[t-L : t]`` for each ``t`` in ``times``.

    Parameters
    ----------
    readings
        ``[t n c]`` (or ``[t n]``) readings.
    times
        ``[b]`` integer sample times.
    input_len
        ``L``, input steps per sample.
    """
    return readings[input_steps(times, input_len)]


def target_windows(readings: np.ndarray, times: np.ndarray, horizon: int) -> np.ndarray:
    """Gather ``[b H n]`` targets ``readings[t : t+H, :, 0]`` for each ``t`` in ``times``.

    Parameters
    ----------
    readings
        ``[t n c]`` readings; channel 0 is the target.
    times
        ``[b]`` integer sample times.
    horizon
        ``H``, target steps per sample.
    """
    return readings[target_steps(times, horizon), :, 0]


def batches(times: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``times`` of at most ``batch_size`` samples.

    Parameters
    ----------
    times
        ``[s]`` sample times (any 1-D array).
    batch_size
        Most samples per slice (≥ 1).
    """
    for start in range(0, len(times), batch_size):
        yield times[start : start + batch_size]
