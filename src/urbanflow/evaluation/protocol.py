"""Evaluation protocols: which rows fit a model, which samples validate and test it.

``default``: windows over the whole series, split by sample order (EVALUATION.md).
``tgcn``: the T-GCN paper's Los-loop protocol (cut at 80 % of rows; per-horizon windows over
the test rows, errors pooled over steps 1…h), with validation taken from the fitting rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from urbanflow.data.windows import sample_times
from urbanflow.errors import ConfigError, UnknownNameError

DEFAULT_SPLIT = (0.7, 0.1, 0.2)
DEFAULT_HORIZONS = (3, 6, 12)
TGCN_HORIZONS = (3, 6, 9, 12)
# Horizons the default protocol reports, as durations, by the grid's step (the largest is the
# model's horizon): 15/30/60 minutes ahead for sub-hourly grids (3, 6, 12 steps of 5 minutes:
# the road-traffic convention), 1/3/6 hours for hourly ones, 1/3/7 days for daily ones.
HORIZON_DURATIONS = (
    (pd.Timedelta(hours=1), tuple(pd.Timedelta(minutes=m) for m in (15, 30, 60))),
    (pd.Timedelta(days=1), tuple(pd.Timedelta(hours=h) for h in (1, 3, 6))),
    (None, tuple(pd.Timedelta(days=d) for d in (1, 3, 7))),
)


def default_horizons(step: pd.Timedelta | None) -> tuple[int, ...]:
    """The default protocol's horizons in steps for a grid of ``step`` (:data:`HORIZON_DURATIONS`).

    Each duration becomes ``max(1, round(duration / step))`` steps; duplicates are dropped.
    ``None``: :data:`DEFAULT_HORIZONS` (3, 6, 12).

    Parameters
    ----------
    step
        The dataset's time step, or None when it is not known.
    """
    if step is None:
        return DEFAULT_HORIZONS
    durations = next(d for below, d in HORIZON_DURATIONS if below is None or step < below)
    return tuple(sorted({max(1, round(duration / step)) for duration in durations}))


@dataclass(frozen=True)
class ScoreGroup:
    """Metrics pooled over 1-based ``steps`` of the forecasts issued at ``times``.

    Parameters
    ----------
    label
        Name of the row in reports, e.g. ``"step 3"``, ``"3 steps"`` or ``"average"``.
    horizon_steps
        The horizon the group stands for, in steps (its largest step).
    times
        ``[b]`` int64 sample times scored: sample ``t``'s inputs end at ``t-1`` and its step ``k``
        targets ``t+k-1``.
    steps
        1-based forecast steps whose errors are pooled, e.g. ``(3,)`` or ``(1, 2, 3)``.
    """

    label: str
    horizon_steps: int
    times: np.ndarray
    steps: tuple[int, ...]


@dataclass(frozen=True)
class EvaluationPlan:
    """Everything an evaluation needs, as indices into the dataset's time steps.

    Parameters
    ----------
    protocol
        The protocol's name, ``"default"`` or ``"tgcn"``.
    input_len
        ``L``, input steps per sample.
    horizon
        ``H``, steps the model forecasts: the largest horizon scored.
    split
        ``(train, validation, test)`` fractions; for ``tgcn`` the shares of rows it works out to.
    fit_stop
        The model is fitted on steps ``[0, fit_stop)``; validation and test windows lie after.
    validation_times
        ``[v]`` int64 sample times of the validation windows (early stopping, model selection).
    test_groups
        One score group per reported horizon.
    average
        The group of the headline average: every step ``1 … H`` pooled.
    """

    protocol: str
    input_len: int
    horizon: int
    split: tuple[float, float, float]
    fit_stop: int  # the model is fitted on steps [0, fit_stop)
    validation_times: np.ndarray
    test_groups: tuple[ScoreGroup, ...]
    average: ScoreGroup

    @property
    def test_times(self) -> np.ndarray:
        """Every distinct issue time that some test group scores."""
        return np.unique(np.concatenate([g.times for g in self.test_groups]))

    @property
    def test_samples(self) -> int:
        return int(self.average.times.size)


def parse_split(text: str) -> tuple[float, float, float]:
    """``(train, validation, test)`` fractions from ``--split`` text; a ConfigError unless valid.

    Parameters
    ----------
    text
        ``"train,validation,test"`` fractions summing to 1 with train and test > 0, e.g.
        ``"0.7,0.1,0.2"`` (the ``--split`` option).
    """
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if (
        len(parts) != 3
        or min(parts) < 0
        or abs(sum(parts) - 1) > 1e-6
        or parts[0] == 0
        or parts[2] == 0
    ):
        raise ConfigError(
            f"split {text!r} must be three fractions train,validation,test summing to 1 "
            "with train and test > 0, e.g. 0.7,0.1,0.2"
        )
    return parts  # type: ignore[return-value]


def parse_horizons(text: str) -> tuple[int, ...]:
    """Sorted distinct horizons in steps from ``--horizons`` text; a ConfigError unless all are ≥ 1.

    Parameters
    ----------
    text
        Comma-separated positive step counts, e.g. ``"3,6,12"`` (the ``--horizons`` option);
        duplicates are dropped and the result sorted.
    """
    try:
        steps = tuple(sorted({int(p) for p in text.split(",")}))
    except ValueError:
        steps = ()
    if not steps or steps[0] < 1:
        raise ConfigError(f"horizons {text!r} must be positive step counts, e.g. 3,6,12")
    return steps


def default_plan(
    num_steps: int,
    input_len: int = 12,
    horizons: tuple[int, ...] = DEFAULT_HORIZONS,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
) -> EvaluationPlan:
    """Split the ``S`` sample times in order: first round(S·train), last round(S·test).

    Parameters
    ----------
    num_steps
        ``T``, time steps of the dataset.
    input_len
        ``L``, input steps per sample (default 12).
    horizons
        Steps ahead scored one by one (default ``(3, 6, 12)``); the largest is the model's horizon.
    split
        ``(train, validation, test)`` fractions of the samples, in time order (default
        ``(0.7, 0.1, 0.2)``).
    """
    horizon = max(horizons)
    times = sample_times(num_steps, input_len, horizon)
    count = times.size
    n_test = round(count * split[2])
    n_train = round(count * split[0])
    if n_train < 1 or n_test < 1 or n_train + n_test > count:
        raise ConfigError(
            f"{count} samples cannot be split {split}; give a longer series or change --split"
        )
    train, test = times[:n_train], times[count - n_test :]
    validation = times[n_train : count - n_test]
    all_steps = tuple(range(1, horizon + 1))
    return EvaluationPlan(
        protocol="default",
        input_len=input_len,
        horizon=horizon,
        split=split,
        fit_stop=int(train[-1]) + horizon,
        validation_times=validation,
        test_groups=tuple(ScoreGroup(f"step {h}", h, test, (h,)) for h in horizons),
        average=ScoreGroup("average", horizon, test, all_steps),
    )


def tgcn_plan(
    num_steps: int,
    input_len: int = 12,
    horizons: tuple[int, ...] = TGCN_HORIZONS,
    fit_fraction: float = 0.8,
    validation_fraction: float = 0.1,
) -> EvaluationPlan:
    """T-GCN: test rows from ``int(0.8·T)``; for horizon h windows ``i = 0 … len(test)-L-h-1``.

    Validation: the last 10 % of the fitting rows, windowed the same way at the largest
    horizon; the model is fitted on the rows before them.

    Parameters
    ----------
    num_steps
        ``T``, time steps (rows) of the dataset.
    input_len
        ``L``, input steps per sample (default 12).
    horizons
        Horizons scored, each pooling steps ``1 … h`` (default ``(3, 6, 9, 12)``).
    fit_fraction
        Share of rows before the test rows (default 0.8).
    validation_fraction
        Share of those fitting rows, at their end, held out for validation (default 0.1).
    """
    horizon = max(horizons)
    cut = int(fit_fraction * num_steps)
    validation_start = cut - round(validation_fraction * cut)

    def windows(start: int, stop: int, steps: int) -> np.ndarray:
        count = (stop - start) - input_len - steps  # T-GCN drops the last possible window
        return start + input_len + np.arange(max(count, 0), dtype=np.int64)

    groups = tuple(
        ScoreGroup(f"{h} steps", h, windows(cut, num_steps, h), tuple(range(1, h + 1)))
        for h in horizons
    )
    validation = windows(validation_start, cut, horizon)
    if min(g.times.size for g in groups) < 1 or validation.size < 1:
        raise ConfigError(
            f"{num_steps} steps are too few for the tgcn protocol with input length "
            f"{input_len} and horizon {horizon}; use --protocol default or a longer series"
        )
    rows = num_steps
    return EvaluationPlan(
        protocol="tgcn",
        input_len=input_len,
        horizon=horizon,
        split=(validation_start / rows, (cut - validation_start) / rows, (rows - cut) / rows),
        fit_stop=validation_start,
        validation_times=validation,
        test_groups=groups,
        average=groups[-1],
    )


PROTOCOL_NAMES = ("default", "tgcn")


def make_plan(
    protocol: str,
    num_steps: int,
    input_len: int = 12,
    horizons: tuple[int, ...] | None = None,
    split: tuple[float, float, float] | None = None,
    step: pd.Timedelta | None = None,
) -> EvaluationPlan:
    """The plan of a named protocol; ``None`` options take the protocol's defaults.

    Parameters
    ----------
    protocol
        ``"default"`` or ``"tgcn"``.
    num_steps
        ``T``, time steps of the dataset.
    input_len
        ``L``, input steps per sample (default 12).
    horizons
        Horizons to score; ``None`` (default): the protocol's.
    split
        ``(train, validation, test)`` fractions for ``default``; ``None`` (default):
        ``(0.7, 0.1, 0.2)``. The ``tgcn`` protocol fixes its split and rejects one.
    step
        The dataset's time step: the ``default`` protocol's horizons follow from it
        (:func:`default_horizons`); ``None`` (default): 3, 6 and 12 steps.
    """
    if protocol == "default":
        return default_plan(
            num_steps, input_len, horizons or default_horizons(step), split or DEFAULT_SPLIT
        )
    if protocol == "tgcn":
        if split is not None:
            raise ConfigError(
                "the tgcn protocol fixes its split (80 % fit, 20 % test); drop --split"
            )
        return tgcn_plan(num_steps, input_len, horizons or TGCN_HORIZONS)
    raise UnknownNameError(
        f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOL_NAMES)}"
    )
