"""Baseline forecasters: persistence, calendar averages, seasonal naive and ridge regression.

Vectorised NumPy rules and linear models. Every forecast is finite: a value a rule cannot
produce (no reading in the input window, a calendar slot never seen) falls back to a coarser
one and in the end to the sensor's training mean.

Shapes: ``values: [t n]`` (channel 0 of the readings), ``times: [b]`` sample times, forecasts
``[b h n]``, ridge features ``[b n f]``.
"""

from __future__ import annotations

import numbers
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import sparse

from urbanflow.data.calendar import (
    calendar_slots,
    day_types,
    nanoseconds_of_day,
    step_times,
    weekdays_usable,
)
from urbanflow.data.dataset import CityDataset
from urbanflow.data.timegrid import NS_PER_DAY, frequency_alias
from urbanflow.data.windows import (
    batches,
    hold_out,
    input_span,
    input_steps,
    input_windows,
    sample_times,
    target_steps,
    target_windows,
)
from urbanflow.errors import ConfigError, DataError
from urbanflow.graph.matrices import neighbour_average
from urbanflow.models.base import FitProgress, Forecaster

_CHUNK_ELEMENTS = 1 << 22  # ridge features built at most this many numbers at a time
# ridge takes at least this many samples at a time, in blocks of sensors on a large city:
# per-sensor normal equations made from a few rows each cost more in overhead than in sums
_MIN_CHUNK_SAMPLES = 256
# per-sensor ridge is fitted a group of sensors at a time, whose XᵀX take at most this much
_GRAM_BYTES = 1 << 28
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""The penalties ridge chooses from by validation MAE when no ``alpha`` is given."""
# one of RIDGE_ALPHAS: the penalty when there is nothing to choose on (too few samples to hold out)
FALLBACK_ALPHA = 1.0


# --- small pure helpers -------------------------------------------------------------------


def training_means(values: np.ndarray) -> np.ndarray:
    """``[t n] -> [n]`` mean of the present readings of each sensor.

    A sensor without any reading gets the overall mean (0 when nothing is present at all).

    Parameters
    ----------
    values
        ``[t n]`` training readings (channel 0), NaN where missing.
    """
    counts = np.zeros(values.shape[1], dtype=np.int64)
    sums = np.zeros(values.shape[1])
    for rows in row_blocks(values):
        present = ~np.isnan(rows)
        counts += present.sum(axis=0)
        sums += np.where(present, rows, 0.0).sum(axis=0, dtype=np.float64)
    overall = sums.sum() / counts.sum() if counts.sum() else 0.0
    return np.divide(sums, counts, out=np.full(sums.shape, overall), where=counts > 0)


def training_stds(values: np.ndarray, means: np.ndarray) -> np.ndarray:
    """``[t n] -> [n]`` standard deviation of the present readings; 1 where it is 0 or unknown.

    Parameters
    ----------
    values
        ``[t n]`` training readings (channel 0), NaN where missing.
    means
        ``[n]`` mean of each sensor, from ``training_means(values)``.
    """
    counts = np.zeros(values.shape[1], dtype=np.int64)
    squares = np.zeros(values.shape[1])
    for rows in row_blocks(values):
        present = ~np.isnan(rows)
        counts += present.sum(axis=0)
        squares += np.where(present, (rows - means) ** 2, 0.0).sum(axis=0, dtype=np.float64)
    stds = np.sqrt(np.divide(squares, counts, out=np.zeros(squares.shape), where=counts > 0))
    return np.where(stds > 0, stds, 1.0)


def last_present(values: np.ndarray, times: np.ndarray, input_len: int) -> np.ndarray:
    """``[b n]`` latest present reading in ``values[t-L : t]`` for each ``t``; NaN where none.

    Works in O(t·n) on the span the samples cover (a running index of the latest reading),
    never gathering the ``[b L n]`` windows.

    Parameters
    ----------
    values
        ``[t n]`` readings (channel 0), NaN where missing.
    times
        ``[b]`` int sample times: sample ``t``'s inputs end at ``t-1``.
    input_len
        ``L``, steps of the input window searched back from ``t-1``.
    """
    if times.size == 0:
        return np.empty((0, values.shape[1]))
    start, stop = input_span(times, input_len)
    segment = values[start:stop]  # [s n]
    steps = np.arange(segment.shape[0])[:, None]
    latest = np.maximum.accumulate(np.where(np.isnan(segment), -1, steps), axis=0)  # [s n]
    window = input_steps(times, input_len) - start  # [b L] positions in the segment
    index = latest[window[:, -1]]  # [b n]
    found = index >= window[:, :1]
    value = np.take_along_axis(segment, np.maximum(index, 0), axis=0)
    return np.where(found, value, np.nan)


def fill_windows(windows: np.ndarray, fallback: np.ndarray | float) -> np.ndarray:
    """``[b l n]`` windows with each gap filled by the latest earlier reading of its window.

    Gaps before the window's first reading take ``fallback`` (``[n]`` or a scalar).

    Parameters
    ----------
    windows
        ``[b l n]`` input windows, NaN where a reading is missing.
    fallback
        Value for gaps before a window's first reading: ``[n]`` per sensor or a scalar.
    """
    positions = np.arange(windows.shape[1])[None, :, None]
    latest = np.maximum.accumulate(np.where(np.isnan(windows), -1, positions), axis=1)
    filled = np.take_along_axis(windows, np.maximum(latest, 0), axis=1)
    return np.where(latest >= 0, filled, fallback)


def future_values(values: np.ndarray, times: np.ndarray, horizon: int) -> np.ndarray:
    """``[b h n]`` readings ``values[t : t+H]``, NaN where a step lies beyond the end.

    Parameters
    ----------
    values
        ``[t n]`` readings (channel 0), NaN where missing.
    times
        ``[b]`` int sample times: sample ``t``'s inputs end at ``t-1``. The targets are
        ``t … t+H-1``.
    horizon
        ``H``, steps ahead gathered per sample.
    """
    index = target_steps(times, horizon)  # [b h]
    inside = index < values.shape[0]
    gathered = values[np.minimum(index, values.shape[0] - 1)]
    return np.where(inside[..., None], gathered, np.nan)


def group_means(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """``[t n] -> [count n]`` mean of the present readings per group; NaN for an empty group.

    Parameters
    ----------
    values
        ``[t n]`` readings (channel 0), NaN where missing.
    groups
        ``[t]`` int group of each step, in ``0 … count-1`` (e.g. a time-of-day slot).
    count
        Number of groups; groups with no present reading get NaN.
    """
    sums = np.zeros((count, values.shape[1]))
    counts = np.zeros((count, values.shape[1]))
    first = 0
    for rows in row_blocks(values):
        present = ~np.isnan(rows)
        group = groups[first : first + rows.shape[0]]
        onehot = sparse.csr_matrix(
            (np.ones(group.size), (group, np.arange(group.size))), shape=(count, group.size)
        )
        sums += onehot @ np.where(present, rows, 0.0).astype(np.float64)
        counts += onehot @ present.astype(np.float64)
        first += rows.shape[0]
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


def row_blocks(values: np.ndarray) -> list[np.ndarray]:
    """``[t n]`` readings as consecutive blocks of rows of at most ``_CHUNK_ELEMENTS``
    numbers: sums over time made a block at a time never copy all the readings.

    Parameters
    ----------
    values
        ``[t n]`` readings (channel 0).
    """
    size = max(1, _CHUNK_ELEMENTS // max(values.shape[1], 1))
    return [values[start : start + size] for start in range(0, values.shape[0], size)]


def _with_fallback(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), fallback, values)


# --- rules ----------------------------------------------------------------------------------


class LastValue(Forecaster):
    """Persistence: every step ahead repeats the latest present reading of the input window.

    A sensor with no reading in its window falls back to its training mean.
    """

    name: ClassVar[str] = "last-value"

    def parameter_count(self) -> int:
        return int(self.means_.size)

    def _fit(
        self, dataset: CityDataset, validation: CityDataset | None, progress: FitProgress | None
    ) -> None:
        self.means_ = training_means(dataset.readings[..., 0])

    def _predict(self, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        latest = _with_fallback(
            last_present(dataset.readings[..., 0], times, self.input_len), self.means_
        )  # [b n]
        return np.repeat(latest[:, None, :].astype(np.float32), self.horizon, axis=1)


class HistoricalAverage(Forecaster):
    """Mean training reading per (day type, time-of-day slot, sensor) of each target time.

    Day types are weekdays, a public holiday counting as a Sunday, when the training part holds
    every weekday twice (``urbanflow.data.calendar.weekdays_usable``); otherwise every day is
    one type (the profile is per time of day). A (day type, slot) never seen in training falls
    back to the slot's mean over all days, then to the sensor's training mean. ``profile_``:
    ``[7 s n]``, ``s`` slots per day.
    """

    name: ClassVar[str] = "historical-average"

    def parameter_count(self) -> int:
        return int(self.profile_.size)

    def _fit(
        self, dataset: CityDataset, validation: CityDataset | None, progress: FitProgress | None
    ) -> None:
        values = dataset.readings[..., 0]
        slots = dataset.steps_per_day
        self.weekdays_ = weekdays_usable(dataset.timestamps)
        weekday = self._day_types(dataset, dataset.timestamps)
        _, slot = calendar_slots(dataset.timestamps, dataset.step)
        weekly = group_means(values, weekday * slots + slot, 7 * slots).reshape(7, slots, -1)
        daily = group_means(values, slot, slots)  # [s n]
        profile = _with_fallback(weekly, _with_fallback(daily, training_means(values)))
        self.step_ = dataset.step
        self.profile_ = profile.astype(np.float32)

    def _predict(self, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        if dataset.step != self.step_:
            raise DataError(
                f"{self.name} was fitted on {self.step_} steps but the dataset has "
                f"{dataset.step}; forecast data of the frequency it was fitted on"
            )
        stamps = step_times(dataset, target_steps(times, self.horizon))
        _, slot = calendar_slots(stamps, dataset.step)
        weekday = self._day_types(dataset, stamps)
        return self.profile_[weekday, slot].reshape(
            times.size, self.horizon, self.profile_.shape[-1]
        )

    def _day_types(self, dataset: CityDataset, stamps: pd.DatetimeIndex) -> np.ndarray:
        meta = dataset.metadata
        return day_types(stamps, self.weekdays_, meta.country, meta.subdivision)


class SeasonalNaive(Forecaster):
    """Target ``t+k`` repeats the reading one season earlier, ``t+k-period``.

    ``season``: ``"day"`` or ``"week"``. Where that reading is missing, before the start, or
    not yet known at ``t`` (horizon longer than the period), the latest present reading of the
    input window is used, then the sensor's training mean.

    Parameters
    ----------
    input_len
        ``L``, input steps searched for the latest reading when the seasonal one is unusable
        (default 12).
    horizon
        ``H``, steps forecast ahead (default 12).
    season
        ``"day"`` (default) or ``"week"``: how far back the repeated reading lies. The data's
        frequency must divide a day.
    """

    name: ClassVar[str] = "seasonal-naive"
    seasons: ClassVar[dict[str, int]] = {"day": 1, "week": 7}

    def __init__(self, input_len: int = 12, horizon: int = 12, *, season: str = "day") -> None:
        super().__init__(input_len, horizon)
        self.season = season

    def parameter_count(self) -> int:
        return int(self.means_.size)

    def _fit(
        self, dataset: CityDataset, validation: CityDataset | None, progress: FitProgress | None
    ) -> None:
        if self.season not in self.seasons:
            raise ConfigError(
                f"{self.name}: season {self.season!r} is not one of {sorted(self.seasons)}"
            )
        if NS_PER_DAY % dataset.step.value:
            raise ConfigError(
                f"{self.name}: frequency {frequency_alias(dataset.step)} does not divide a day, "
                "so a reading one season back is not at the same time of day; resample to a "
                "frequency that divides 24 hours (e.g. 5min, 15min, 1h) or use historical-average"
            )
        self.means_ = training_means(dataset.readings[..., 0])

    def _predict(self, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        values = dataset.readings[..., 0]
        period = dataset.steps_per_day * self.seasons[self.season]
        source = target_steps(times, self.horizon) - period  # [b h]
        known = (source >= 0) & (source < times[:, None])
        seasonal = np.where(known[..., None], values[np.where(known, source, 0)], np.nan)
        latest = _with_fallback(last_present(values, times, self.input_len), self.means_)
        return _with_fallback(seasonal, latest[:, None, :].astype(np.float32))


# --- ridge regression -----------------------------------------------------------------------


def ridge_features(
    scaled: np.ndarray,
    times: np.ndarray,
    input_len: int,
    transition: sparse.spmatrix,
    day_fraction: np.ndarray,
    sensors: slice = slice(None),
) -> np.ndarray:
    """``[b s f]`` features of the ``sensors``, ``f = 2L + 3``: own lags, neighbour-average
    lags, sin, cos, 1. Only these sensors' and their neighbours' readings are read.

    Parameters
    ----------
    scaled
        ``[t n]`` standardised readings, NaN where missing; a gap takes the latest earlier
        reading of its window, else 0 (the training mean).
    times
        ``[b]`` int issue times, indices into ``scaled``: sample ``t``'s lags are
        ``t-L … t-1``.
    input_len
        ``L``, lags per sensor.
    transition
        ``[n n]`` row-normalised adjacency (sparse) that averages each sensor's neighbours.
    day_fraction
        ``[b]`` local time of day of each issue time ``t``, in days (``0 … 1``).
    sensors
        The ``s`` sensors (columns of ``scaled``) whose rows are built; default all.
    """
    own = fill_windows(input_windows(scaled[:, sensors], times, input_len), 0.0)  # [b l s]
    b, lags, n = own.shape
    rows = sparse.csr_matrix(transition)[sensors]  # [s n]
    reached = np.unique(rows.indices)  # the neighbours of these sensors, sorted
    near = fill_windows(input_windows(scaled[:, reached], times, input_len), 0.0)  # [b l r]
    flat = near.reshape(b * lags, reached.size).T
    neighbours = np.asarray(rows[:, reached] @ flat).T.reshape(b, lags, n)
    angle = 2 * np.pi * day_fraction
    calendar = np.stack([np.sin(angle), np.cos(angle), np.ones(b)], axis=-1)  # [b 3]
    return np.concatenate(
        [
            own.transpose(0, 2, 1),
            neighbours.transpose(0, 2, 1),
            np.broadcast_to(calendar[:, None, :], (b, n, 3)),
        ],
        axis=-1,
    )


def by_group(rows: np.ndarray, per_sensor: bool) -> np.ndarray:
    """``[b n f] -> [g r f]``: ``[n b f]`` per sensor, else one group ``[1 (b n) f]``.

    Parameters
    ----------
    rows
        ``[b n f]`` feature rows (or ``[b n h]`` targets).
    per_sensor
        ``True``: one group per sensor; ``False``: all rows in one group.
    """
    if per_sensor:
        return rows.transpose(1, 0, 2)
    return rows.reshape(1, -1, rows.shape[-1])


def padded_rows(flags: np.ndarray) -> np.ndarray:
    """``[g r] -> [g k]`` indices of the flagged rows of each group, padded with ``r``.

    Parameters
    ----------
    flags
        ``[g r]`` bool, the rows to pick in each group.
    """
    group, row = np.nonzero(flags)
    counts = flags.sum(axis=1)
    starts = np.cumsum(counts) - counts
    indices = np.full((flags.shape[0], counts.max(initial=0)), flags.shape[1])
    indices[group, np.arange(group.size) - starts[group]] = row
    return indices


def accumulate_normal_equations(
    gram: np.ndarray, moment: np.ndarray, x: np.ndarray, y: np.ndarray
) -> None:
    """Add ``XᵀX`` to ``gram: [g h f f]`` and ``Xᵀy`` to ``moment: [g f h]`` in place.

    A row with a missing target is left out of that step: the full product is added to every
    step and the rows of its missing targets taken back out, so the cost grows with the
    missing targets rather than with ``h`` full products.

    Parameters
    ----------
    gram
        ``[g h f f]`` float64 running ``XᵀX`` per group and step ahead, updated in place.
    moment
        ``[g f h]`` float64 running ``Xᵀy``, updated in place.
    x
        ``[g r f]`` feature rows of this chunk, grouped by ``by_group``.
    y
        ``[g r h]`` standardised targets of those rows, NaN where missing.
    """
    present = ~np.isnan(y)
    x_t = x.transpose(0, 2, 1)
    moment += x_t @ np.where(present, y, 0.0)
    gram += (x_t @ x)[:, None]
    if present.all():
        return
    with_zero_row = np.concatenate([x, np.zeros_like(x[:, :1])], axis=1)  # [g r+1 f]
    groups = np.arange(x.shape[0])[:, None]
    for step in range(y.shape[-1]):  # a loop over horizon steps, each one batched product
        left_out = with_zero_row[groups, padded_rows(~present[..., step])]  # [g k f]
        gram[:, step] -= left_out.transpose(0, 2, 1) @ left_out


def solve_ridge(gram: np.ndarray, moment: np.ndarray, alpha: float) -> np.ndarray:
    """``[g f h]`` weights solving ``(XᵀX + αI) w = Xᵀy`` for each group and step.

    Parameters
    ----------
    gram
        ``[g h f f]`` accumulated ``XᵀX`` per group and step ahead.
    moment
        ``[g f h]`` accumulated ``Xᵀy``.
    alpha
        L2 penalty ``α`` ≥ 0; at 0 a singular system is solved by least squares.
    """
    weights = np.empty(moment.shape)
    size = max(1, _CHUNK_ELEMENTS // gram[0].size)  # groups solved at once: no copy of gram
    for first in range(0, gram.shape[0], size):
        group = slice(first, first + size)
        system = gram[group] + alpha * np.eye(gram.shape[-1])
        rhs = moment[group].transpose(0, 2, 1)[..., None]  # [g h f 1]
        try:
            solved = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:  # singular only when alpha = 0: least squares instead
            solved = np.linalg.pinv(system) @ rhs
        weights[group] = solved[..., 0].transpose(0, 2, 1)
    return weights


class Ridge(Forecaster):
    """Linear model per step ahead on the sensor's lags, its neighbours' lags and the clock.

    Readings are standardised per sensor with training mean and std; the model predicts the
    standardised target ``t+k`` from features ``[own L lags, neighbour-average L lags,
    sin/cos of the time of day of t, 1]``. ``per_sensor=False`` shares one ``[f h]`` weight
    matrix across sensors; ``True`` fits one per sensor (``weights_: [n f h]``).

    Without an ``alpha``, the penalty is chosen from :data:`RIDGE_ALPHAS` by the MAE on the
    validation part's windows (in the readings' unit), then the model is fitted on the whole
    training part with it; without a validation part the last 10 % of the training samples
    are held out for the choice, after a gap of ``H`` samples (``data.windows.hold_out``, the
    rule neural models early-stop with). ``alpha_`` is the penalty used. On count and
    occupancy data (``CityDataset.non_negative``) forecasts are clipped at 0.

    Parameters
    ----------
    input_len
        ``L``, lags of the sensor and of its neighbour average used as features (default 12).
    horizon
        ``H``, steps forecast ahead, each with its own weights (default 12).
    alpha
        L2 penalty of the ridge fit on standardised readings, a finite number ≥ 0; larger values
        shrink the weights toward zero. ``None`` (default): chosen by validation MAE.
    per_sensor
        ``False`` (default): one weight matrix shared by every sensor; ``True``: one per sensor,
        ``n`` times the parameters and each fitted on that sensor's rows only.
    """

    name: ClassVar[str] = "ridge"

    def __init__(
        self,
        input_len: int = 12,
        horizon: int = 12,
        *,
        alpha: float | None = None,
        per_sensor: bool = False,
    ) -> None:
        super().__init__(input_len, horizon)
        self.alpha = alpha
        self.per_sensor = per_sensor

    def parameter_count(self) -> int:
        return int(self.weights_.size + self.mean_.size + self.std_.size)

    def chosen_hyperparameters(self) -> dict[str, object]:
        if self.alpha is None and hasattr(self, "alpha_"):
            return {"alpha": self.alpha_}
        return {}

    def _check_hyperparameters(self) -> None:
        if self.alpha is not None and (
            isinstance(self.alpha, bool)
            or not isinstance(self.alpha, numbers.Real)
            or not (np.isfinite(self.alpha) and self.alpha >= 0)
        ):
            raise ConfigError(f"{self.name}: alpha must be a finite number ≥ 0; got {self.alpha!r}")
        if not isinstance(self.per_sensor, (bool, np.bool_)):
            raise ConfigError(
                f"{self.name}: per_sensor must be true or false; got {self.per_sensor!r}"
            )

    def _fit(
        self, dataset: CityDataset, validation: CityDataset | None, progress: FitProgress | None
    ) -> None:
        self._check_hyperparameters()
        values = dataset.readings[..., 0]
        self.mean_ = training_means(values)
        self.std_ = training_stds(values, self.mean_)
        self.non_negative_ = dataset.non_negative
        times = np.arange(self.input_len, dataset.num_steps)
        groups = self._fit_groups(dataset.num_sensors)
        if self.alpha is not None:
            self.alpha_ = float(self.alpha)
            self.weights_ = np.concatenate(
                [
                    solve_ridge(*self._normal_equations(dataset, times, g), self.alpha_)
                    for g in groups
                ]
            )
            return
        if validation is not None:
            scored, scored_times = validation, self._full_samples(validation)
            fitted = times
        else:  # hold out the last samples; the fit adds their equations back afterwards
            fitting, scored_times = hold_out(self._full_samples(dataset), self.horizon)
            stop = int(fitting[-1]) + 1 if fitting.size else self.input_len
            scored, fitted = dataset, times[times < stop]
        errors, count = np.zeros(len(RIDGE_ALPHAS)), 0
        candidates: list[list[np.ndarray]] = []  # per group of sensors, the weights per alpha
        for group in groups:
            gram, moment = self._normal_equations(dataset, fitted, group)
            weights = [solve_ridge(gram, moment, alpha) for alpha in RIDGE_ALPHAS]
            group_errors, group_count = self._validation_errors(
                weights, scored, scored_times, group
            )
            errors, count = errors + group_errors, count + group_count
            if validation is None:
                rest = self._normal_equations(dataset, times[times >= stop], group)
                gram += rest[0]
                moment += rest[1]
                weights = [solve_ridge(gram, moment, alpha) for alpha in RIDGE_ALPHAS]
            candidates.append(weights)
            del gram, moment
        errors = errors / count if count else np.full(len(RIDGE_ALPHAS), np.nan)
        finite = np.isfinite(errors)
        chosen = (
            int(np.argmin(np.where(finite, errors, np.inf)))
            if finite.any() and np.ptp(errors[finite]) > 0
            else RIDGE_ALPHAS.index(FALLBACK_ALPHA)
        )
        self.alpha_ = float(RIDGE_ALPHAS[chosen])
        self.validation_maes_ = dict(zip(RIDGE_ALPHAS, errors.tolist(), strict=True))
        self.weights_ = np.concatenate([weights[chosen] for weights in candidates])

    def _full_samples(self, dataset: CityDataset) -> np.ndarray:
        """Sample times of ``dataset`` whose inputs and targets lie inside it (maybe none)."""
        count = dataset.num_steps - self.input_len - self.horizon + 1
        if count < 1:
            return np.empty(0, dtype=np.int64)
        return sample_times(dataset.num_steps, self.input_len, self.horizon)

    def _normal_equations(
        self, dataset: CityDataset, times: np.ndarray, group: list[slice]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``XᵀX: [g h f f]`` and ``Xᵀy: [g f h]`` of one group of sensors (its blocks, see
        :meth:`_fit_groups`) over the samples at ``times``; the readings are standardised a
        chunk of samples at a time."""
        transition = neighbour_average(dataset.graph)
        features = 2 * self.input_len + 3
        first = group[0].start
        size = min(group[-1].stop, dataset.num_sensors) - first if self.per_sensor else 1
        gram = np.zeros((size, self.horizon, features, features))
        moment = np.zeros((size, features, self.horizon))
        for chunk in batches(times, self._chunks(dataset.num_sensors)[0]):
            start, stop = input_span(chunk, self.input_len)
            stop = min(stop + self.horizon, dataset.num_steps)
            scaled = (dataset.readings[start:stop, :, 0] - self.mean_) / self.std_
            local = chunk - start
            day = self._day_fraction(dataset, chunk)
            for sensors in group:
                x = ridge_features(scaled, local, self.input_len, transition, day, sensors)
                y = future_values(scaled[:, sensors], local, self.horizon).transpose(0, 2, 1)
                rows = slice(sensors.start - first, sensors.stop - first)
                rows = rows if self.per_sensor else slice(None)  # [b s h] targets above
                accumulate_normal_equations(
                    gram[rows],
                    moment[rows],
                    by_group(x, self.per_sensor),
                    by_group(y, self.per_sensor),
                )
        return gram, moment

    def _validation_errors(
        self,
        weights: list[np.ndarray],
        dataset: CityDataset,
        times: np.ndarray,
        group: list[slice],
    ) -> tuple[np.ndarray, int]:
        """``[k]`` summed absolute errors over the present targets at ``times`` of one group of
        sensors, forecast with each of ``weights`` (that group's, one per alpha), and the
        count of those targets."""
        errors, count = np.zeros(len(weights)), 0
        if times.size == 0:
            return errors, count
        transition = neighbour_average(dataset.graph)
        first = group[0].start
        for chunk in batches(times, self._chunks(dataset.num_sensors)[0]):
            inputs = self._chunk_inputs(dataset, chunk)
            for sensors in group:
                target = target_windows(dataset.readings[:, sensors], chunk, self.horizon)
                present = ~np.isnan(target)  # [b h s]
                count += int(present.sum())
                rows = slice(sensors.start - first, sensors.stop - first)
                block = [w[rows] if self.per_sensor else w for w in weights]
                forecasts = self._forecasts(*inputs, block, transition, sensors)
                for k, forecast in enumerate(forecasts):
                    errors[k] += np.abs(np.where(present, target - forecast, 0.0)).sum()
        return errors, count

    def _predict(self, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        forecast = np.empty((times.size, self.horizon, dataset.num_sensors), dtype=np.float32)
        transition = neighbour_average(dataset.graph)
        first = 0
        samples, blocks = self._chunks(dataset.num_sensors)
        for chunk in batches(times, samples):
            rows = slice(first, first + chunk.size)
            inputs = self._chunk_inputs(dataset, chunk)
            for sensors in blocks:
                weights = self.weights_[sensors] if self.per_sensor else self.weights_
                (forecast[rows, :, sensors],) = self._forecasts(
                    *inputs, [weights], transition, sensors
                )
            first += chunk.size
        return forecast

    def _chunk_inputs(
        self, dataset: CityDataset, times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the forecasts of one chunk of ``times`` start from, for every sensor: the
        standardised readings of the span their inputs cover, the times as indices into it,
        and their time of day."""
        start, stop = input_span(times, self.input_len)
        scaled = (dataset.readings[start:stop, :, 0] - self.mean_) / self.std_
        return scaled, times - start, self._day_fraction(dataset, times)

    def _forecasts(
        self,
        scaled: np.ndarray,
        times: np.ndarray,
        day_fraction: np.ndarray,
        weights: list[np.ndarray],
        transition: sparse.spmatrix,
        sensors: slice,
    ) -> list[np.ndarray]:
        """``[b h s]`` forecasts of the ``sensors`` from one chunk's inputs
        (:meth:`_chunk_inputs`) with each of ``weights`` (``[s f h]`` these sensors', or
        ``[1 f h]`` shared), in the readings' unit, clipped at 0 on non-negative data."""
        x = ridge_features(scaled, times, self.input_len, transition, day_fraction, sensors)
        x = x.transpose(1, 0, 2)  # [s b f]
        std, mean = self.std_[sensors, None, None], self.mean_[sensors, None, None]
        forecasts = []
        for w in weights:
            z = (x @ w) * std + mean  # [s b h]
            if self.non_negative_:
                z = np.maximum(z, 0.0)
            forecasts.append(z.transpose(1, 2, 0))
        return forecasts

    def _chunks(self, num_sensors: int) -> tuple[int, list[slice]]:
        """Samples per chunk and the blocks of sensors each chunk's features are built in:
        at most ``_CHUNK_ELEMENTS`` feature numbers at a time, from at least
        ``_MIN_CHUNK_SAMPLES`` samples (one block of every sensor on a small city)."""
        features = 2 * self.input_len + 3
        samples = max(_MIN_CHUNK_SAMPLES, _CHUNK_ELEMENTS // (num_sensors * features))
        size = max(1, _CHUNK_ELEMENTS // (samples * features))
        return samples, [slice(first, first + size) for first in range(0, num_sensors, size)]

    def _fit_groups(self, num_sensors: int) -> list[list[slice]]:
        """The blocks of sensors (:meth:`_chunks`) in groups fitted one after the other:
        per sensor, each group's normal equations take at most ``_GRAM_BYTES``, so that a
        large city's are never all held at once; one group for a shared fit."""
        blocks = self._chunks(num_sensors)[1]
        if not self.per_sensor:
            return [blocks]
        features = 2 * self.input_len + 3
        per_sensor = self.horizon * features * features * 8
        sensors = max(1, _GRAM_BYTES // per_sensor)
        per_group = max(1, sensors // (blocks[0].stop - blocks[0].start))
        return [blocks[first : first + per_group] for first in range(0, len(blocks), per_group)]

    @staticmethod
    def _day_fraction(dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        return nanoseconds_of_day(step_times(dataset, times)) / NS_PER_DAY
