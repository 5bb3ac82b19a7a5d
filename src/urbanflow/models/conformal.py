"""Prediction intervals for any forecaster: conformal, per horizon step, scaled per sensor, and
updated online as readings arrive.

Calibration (split conformal, per step ``k``): the signed residuals ``r = y - ŷ`` of the
validation part's forecasts whose target reading lies before the cutoff (the first forecast
that will get intervals), each divided by its sensor's scale ``σ[k, n]``, the mean absolute
residual of that sensor at that step (shrunk toward the step's pooled mean so that a sensor
with few or tiny validation errors is not trusted blindly). A forecast's interval at level
``1-α`` is ``ŷ + σ·[q(α/2), q(1-α/2)]`` of those scores.

Online update, as each reading arrives (never before: a forecast issued at sample time ``t``
uses only residuals whose target step is ``≤ t-1``):

- the scale of each sensor at step ``k`` follows the freshest evidence of its error regime:
  the residuals of steps ``1 … k`` that arrive with each reading (forecasts issued at most
  ``k`` steps ago), each relative to its step's calibrated scale, in an exponential moving
  average whose half-life is the forecast's own span (``h`` steps: one hour for 12 steps of 5
  minutes);
- adaptive conformal inference (Gibbs and Candès, 2021) moves each level's miscoverage
  ``α_t ← α_t + γ(α - miss_t)``, where ``miss_t`` is the share of the arrived readings that
  fell outside the interval issued for them.

The calibration (scores, scales, cutoff) is stored in model bundles; replaying the same
forecasts and readings in time order gives the same intervals at any level, which is how
``urbanflow forecast --levels`` repeats what ``urbanflow evaluate --levels`` scored.

Shapes: forecasts ``[s h n]`` (samples, steps, sensors), readings ``[t n]``, intervals
``[s K h n]`` for ``K`` levels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from urbanflow.errors import ConfigError, DataError

DEFAULT_LEVELS = (80.0, 95.0)
ACI_STEP = 0.005  # γ: Gibbs and Candès's suggested step size
SCALE_PRIOR = 10.0  # validation residuals a sensor needs before its own scale outweighs the pool
SPREADS = ("none", "poisson", "negative-binomial", "tweedie")
COUNT_VARIANCE_FLOOR = 0.25  # a count misses by whole units: (1/2)² keeps μ ≈ 0 from dividing by 0


def spread_of(
    calibration: Calibration, forecast: np.ndarray, sensors: np.ndarray | None = None
) -> np.ndarray:
    """:func:`distribution_sd` of ``forecast`` under the calibration's ``spread``.

    Parameters
    ----------
    calibration
        Says the family (``spread``) and, for the negative binomial, ``dispersion [n]``.
    forecast
        Forecast means, any shape ending in the sensors' axis.
    sensors
        Which sensors the last axis holds (an index or mask into ``n``); None: all ``n``.
    """
    dispersion = calibration.dispersion
    if dispersion is not None and sensors is not None:
        dispersion = dispersion[sensors]
    return distribution_sd(calibration.spread, forecast, dispersion)


def distribution_sd(
    spread: str, forecast: np.ndarray, dispersion: np.ndarray | None = None
) -> np.ndarray:
    """The standard deviation of the fitted distribution at each forecast mean (``forecast``'s
    shape), or ones for ``spread`` ``none``.

    ``poisson``: ``√(μ + ¼)``; ``negative-binomial``: ``√(μ + α μ² + ¼)``; ``tweedie`` (power
    1.5, its dispersion absorbed by the per-sensor scale): ``√(μ^1.5 + ¼)``. The ``¼`` keeps a
    mean near 0 from giving a width of 0 to data that move in whole units.

    Parameters
    ----------
    spread
        A name of :data:`SPREADS`.
    forecast
        Forecast means, any shape ending in the sensors' axis.
    dispersion
        Negative-binomial ``α`` per sensor of the last axis; required for that family.
    """
    if spread == "none":
        return np.ones_like(forecast, dtype=np.float64)
    mean = np.maximum(np.asarray(forecast, dtype=np.float64), 0.0)
    if spread == "poisson":
        variance = mean
    elif spread == "negative-binomial":
        if dispersion is None:
            raise ConfigError("a negative-binomial spread needs the dispersion per sensor")
        variance = mean + dispersion * mean**2
    elif spread == "tweedie":
        variance = mean**1.5
    else:
        raise ConfigError(f"spread {spread!r} is unknown; choose one of {', '.join(SPREADS)}")
    return np.sqrt(variance + COUNT_VARIANCE_FLOOR)


def parse_levels(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """Interval levels in percent, sorted: ``"80,95"`` or numbers; each in (0, 100).

    Parameters
    ----------
    text
        Comma-separated percentages, a sequence of numbers, or ``None`` / ``"none"`` for no
        intervals.
    """
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "none")):
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        levels = sorted({float(item) for item in items if str(item).strip()})
    except ValueError:
        raise ConfigError(
            f"interval levels {text!r} are not numbers; give percentages such as 80,95"
        ) from None
    if not levels or not all(0 < level < 100 for level in levels):
        raise ConfigError(
            f"interval levels {text!r} must be percentages between 0 and 100, e.g. 80,95"
        )
    return tuple(levels)


def interval_columns(levels: Sequence[float]) -> list[str]:
    """``lower_80, upper_80, …``: the column names of intervals at ``levels``.

    Parameters
    ----------
    levels
        Levels in percent.
    """
    names = []
    for level in levels:
        label = f"{level:g}".replace(".", "_")
        names += [f"lower_{label}", f"upper_{label}"]
    return names


@dataclass(frozen=True)
class Calibration:
    """What conformal intervals need from the validation part: the state at the cutoff.

    Parameters
    ----------
    scores
        ``[h m]`` sorted signed residuals divided by their sensor's scale, per step.
    scale
        ``[h n]`` each sensor's scale at each step (mean absolute residual, shrunk).
    cutoff
        The first sample time that gets intervals: every score's target lies before it.
    half_life_steps
        Half-life of the online scale update, in steps of the data.
    cutoff_time
        ISO time of step ``cutoff``, to find the cutoff in another copy of the data.
    counts
        Whether the data are whole non-negative numbers (counts, occupancies): bounds are
        then rounded to whole numbers, never below 0 (:func:`whole_number_bounds`; default
        False).
    spread
        How a forecast's own distribution widens its interval (:data:`SPREADS`): ``none``
        (default: residuals scaled per sensor only) or the family a distributional loss fitted
        (``poisson``, ``negative-binomial``, ``tweedie``), whose standard deviation at the
        forecast mean, :func:`spread_of`, also divides every residual.
    dispersion
        ``[n]`` negative-binomial ``α`` per sensor (variance ``μ + α μ²``), else None.
    validation_mae
        ``[h n]`` mean absolute validation residual per step and sensor, in the data's unit,
        when ``scale`` is not (a ``spread`` other than ``none``); None otherwise.
    """

    scores: np.ndarray
    scale: np.ndarray
    cutoff: int
    half_life_steps: float
    cutoff_time: str = ""
    counts: bool = False
    spread: str = "none"
    dispersion: np.ndarray | None = None
    validation_mae: np.ndarray | None = None

    @property
    def reference_mae(self) -> np.ndarray:
        """``[h n]`` validation MAE per step and sensor in the data's unit (drift alerts)."""
        return self.scale if self.validation_mae is None else self.validation_mae

    @property
    def horizon(self) -> int:
        """``h``, the steps the calibration covers."""
        return int(self.scale.shape[0])

    def replay_times(self, input_len: int, last: int) -> np.ndarray:
        """``[s]`` the consecutive sample times whose forecasts an online replay needs to issue
        intervals up to sample ``last``: from the first whose targets reach the cutoff.

        Parameters
        ----------
        input_len
            ``L``: no sample precedes step ``L``.
        last
            The last sample time that needs intervals.
        """
        first = max(input_len, self.cutoff - self.horizon + 1)
        return np.arange(first, int(last) + 1, dtype=np.int64)

    def rebased(self, timestamps: pd.DatetimeIndex) -> Calibration:
        """The same calibration with ``cutoff`` found by its time in ``timestamps``.

        Parameters
        ----------
        timestamps
            The grid of the data to replay on; it must contain the cutoff time.
        """
        position = timestamps.get_indexer([pd.Timestamp(self.cutoff_time)])[0]
        if not self.cutoff_time or position < 0:
            raise DataError(
                f"intervals replay their online update from the calibration cutoff "
                f"{self.cutoff_time or '(unknown)'}, which this dataset does not contain; "
                "forecast on data that includes it"
            )
        return replace(self, cutoff=int(position))


def residual_targets(
    forecasts: np.ndarray, times: np.ndarray, readings: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``([s h n], [s h])`` targets of each forecast (NaN where missing or beyond the end) and
    the step index each one targets.

    Parameters
    ----------
    forecasts
        ``[s h n]`` forecasts of the samples at ``times``.
    times
        ``[s]`` sample times: step ``k`` (1-based) targets ``t + k - 1``.
    readings
        ``[t n]`` readings of channel 0, NaN where missing.
    """
    target_step = np.asarray(times)[:, None] + np.arange(forecasts.shape[1])  # [s h]
    inside = target_step < readings.shape[0]
    targets = readings[np.minimum(target_step, readings.shape[0] - 1)]
    return np.where(inside[..., None], targets, np.nan), target_step


def can_calibrate(times: np.ndarray, readings: np.ndarray, horizon: int, cutoff: int) -> bool:
    """Whether validation samples at ``times`` leave a known residual at every step
    ``1 … horizon`` before ``cutoff`` (``calibrate`` needs one).

    Parameters
    ----------
    times
        ``[s]`` validation sample times.
    readings
        ``[t n]`` readings of channel 0, NaN where missing.
    horizon
        ``h``, steps to calibrate.
    cutoff
        The first sample time that will get intervals.
    """
    times = np.asarray(times, dtype=np.int64)
    end = min(cutoff, readings.shape[0])
    # one step at a time: never the [s h n] gather
    return all(_any_present(readings, times[times + k < end] + k) for k in range(horizon))


def _any_present(readings: np.ndarray, steps: np.ndarray, rows: int = 256) -> bool:
    return any(
        not np.isnan(readings[steps[start : start + rows]]).all()
        for start in range(0, steps.size, rows)
    )


def calibrate(
    forecasts: np.ndarray,
    times: np.ndarray,
    readings: np.ndarray,
    cutoff: int,
    cutoff_time: str = "",
    counts: bool = False,
    spread: str = "none",
    dispersion: np.ndarray | None = None,
) -> Calibration:
    """The split-conformal calibration from forecasts of the validation part.

    Parameters
    ----------
    forecasts
        ``[s h n]`` forecasts of the validation samples at ``times``.
    times
        ``[s]`` their sample times.
    readings
        ``[t n]`` readings of channel 0 (NaN where missing); only targets before ``cutoff``
        are read.
    cutoff
        The first sample time that will get intervals: its inputs end at ``cutoff - 1``, so
        only residuals whose target step is ``≤ cutoff - 1`` exist when it is issued.
    cutoff_time
        ISO time of step ``cutoff`` (default: unknown).
    counts
        Whether the data are whole non-negative numbers (:attr:`Calibration.counts`).
    spread
        The fitted distribution's family (:attr:`Calibration.spread`; default ``none``).
    dispersion
        ``[n]`` negative-binomial ``α`` per sensor, for that spread only.
    """
    return calibrate_batches(
        [(np.asarray(times), forecasts)],
        len(times),
        readings,
        cutoff,
        cutoff_time,
        counts,
        spread,
        dispersion,
    )


def calibrate_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    samples: int,
    readings: np.ndarray,
    cutoff: int,
    cutoff_time: str = "",
    counts: bool = False,
    spread: str = "none",
    dispersion: np.ndarray | None = None,
) -> Calibration:
    """:func:`calibrate` from the validation forecasts given a batch of samples at a time.

    Only the residuals are kept (``[h s n]`` float32), never the forecasts, and the float32
    scores are written over them step by step: a city of 10,000 sensors calibrates in little
    more than the memory of its residuals (387 MB).

    Parameters
    ----------
    batches
        ``(times [b], forecasts [b h n])`` of the validation samples, in any order.
    samples
        ``s``, the samples all batches hold together (at most).
    readings
        ``[t n]`` readings of channel 0 (NaN where missing); only targets before ``cutoff``
        are read.
    cutoff
        The first sample time that will get intervals (:func:`calibrate`).
    cutoff_time
        ISO time of step ``cutoff`` (default: unknown).
    counts
        Whether the data are whole non-negative numbers (:attr:`Calibration.counts`).
    spread
        The fitted distribution's family (:attr:`Calibration.spread`; default ``none``).
    dispersion
        ``[n]`` negative-binomial ``α`` per sensor, for that spread only.
    """
    if spread not in SPREADS:
        raise ConfigError(f"spread {spread!r} is unknown; choose one of {', '.join(SPREADS)}")
    sums: ResidualSums | None = None
    for times, forecasts in batches:
        if sums is None:
            sums = ResidualSums(forecasts.shape[1], forecasts.shape[2], samples)
        sums.add(forecasts, times, readings, cutoff, spread, dispersion)
    if sums is None or not (sums.count.sum(axis=1) > 0).all():
        raise ConfigError(
            "intervals need validation residuals at every horizon step before the test part; "
            "give a longer validation part (--split) or a shorter horizon"
        )
    pooled = sums.own.sum(axis=1) / sums.count.sum(axis=1)  # [h] mean absolute residual
    scale = (sums.own + SCALE_PRIOR * pooled[:, None]) / (sums.count + SCALE_PRIOR)
    scale = np.maximum(scale, 1e-6 * np.maximum(pooled[:, None], 1e-12))
    return Calibration(
        scores=sums.scores(scale),
        scale=scale,
        cutoff=int(cutoff),
        half_life_steps=float(sums.horizon),
        cutoff_time=cutoff_time,
        counts=counts,
        spread=spread,
        dispersion=None if dispersion is None else np.asarray(dispersion, dtype=np.float64),
        validation_mae=None
        if spread == "none"
        else np.divide(
            sums.abs_error, sums.count, out=np.zeros_like(sums.abs_error), where=sums.count > 0
        ),
    )


class ResidualSums:
    """Validation residuals of a calibration, added a batch of samples at a time: the sums
    per step and sensor that give the scales, and the residuals themselves (``[h s n]``
    float32, NaN where unknown), whose memory then holds the scores.

    Parameters
    ----------
    horizon
        ``h``, steps of each forecast.
    sensors
        ``n``, sensors of each forecast.
    samples
        ``s``, the samples all added batches hold together (at most).
    """

    def __init__(self, horizon: int, sensors: int, samples: int) -> None:
        self.horizon = horizon
        self.residuals = np.full((horizon, samples, sensors), np.nan, dtype=np.float32)
        self.filled = 0
        self.count = np.zeros((horizon, sensors))  # known residuals
        self.own = np.zeros((horizon, sensors))  # sum of |residual| (spread-scaled)
        self.abs_error = np.zeros((horizon, sensors))  # sum of |y - ŷ| in the data's unit

    def add(
        self,
        forecasts: np.ndarray,
        times: np.ndarray,
        readings: np.ndarray,
        cutoff: int,
        spread: str = "none",
        dispersion: np.ndarray | None = None,
    ) -> None:
        """Add the residuals of ``[b h n]`` forecasts at ``times`` whose targets lie before
        ``cutoff``.

        Parameters
        ----------
        forecasts
            ``[b h n]`` forecasts of the samples at ``times``.
        times
            ``[b]`` their sample times.
        readings
            ``[t n]`` readings of channel 0, NaN where missing.
        cutoff
            Only targets at steps before it count.
        spread
            The distribution family whose standard deviation divides each residual.
        dispersion
            ``[n]`` negative-binomial ``α`` per sensor, for that spread only.
        """
        targets, target_step = residual_targets(forecasts, times, readings)
        known = (target_step < cutoff)[..., None] & ~np.isnan(targets)  # [b h n]
        error = np.where(known, targets - forecasts, np.nan)
        residual = error
        if spread != "none":
            residual = error / distribution_sd(spread, forecasts, dispersion)
            self.abs_error += np.nansum(np.abs(error), axis=0, dtype=np.float64)
        self.count += known.sum(axis=0)
        self.own += np.nansum(np.abs(residual), axis=0, dtype=np.float64)
        rows = slice(self.filled, self.filled + forecasts.shape[0])
        if rows.stop > self.residuals.shape[1]:
            raise ValueError(f"more than the {self.residuals.shape[1]} samples announced")
        self.residuals[:, rows] = residual.transpose(1, 0, 2)
        self.filled = rows.stop

    def scores(self, scale: np.ndarray) -> np.ndarray:
        """``[h m]`` float32 sorted residuals divided by ``scale``, each step's resampled to
        the most known residuals of any step (``m``); written over the residuals, which are
        gone afterwards.

        Parameters
        ----------
        scale
            ``[h n]`` each sensor's scale at each step.
        """
        width = int(self.count.sum(axis=1).max())
        flat = self.residuals.reshape(-1)
        for k in range(self.horizon):
            normalised = np.divide(self.residuals[k], scale[k], dtype=np.float64)  # [s n]
            known = normalised[~np.isnan(normalised)]
            known.sort()
            # step k's scores end before step k+1's residuals start (m ≤ s·n): none is lost
            resample_sorted(known, width, out=flat[k * width : (k + 1) * width])
        return flat[: self.horizon * width].reshape(self.horizon, width)


def resample_sorted(
    values: np.ndarray, size: int, out: np.ndarray | None = None, chunk: int = 1 << 18
) -> np.ndarray:
    """``[size]`` evenly spaced quantiles of sorted ``values`` (themselves when they are
    ``size``), written into ``out`` when given.

    Parameters
    ----------
    values
        Sorted numbers, at least one.
    size
        How many to return.
    out
        ``[size]`` array to write them into (default: a new float64 array).
    chunk
        Quantiles computed at once: the temporaries stay small whatever ``size``.
    """
    if out is None:
        out = np.empty(size)
    if values.size == size or values.size == 1:
        out[:] = values
        return out
    # linear interpolation between order statistics, as np.quantile's default (and as
    # np.interp, whose index array would be a copy of the size of values), in O(size):
    # np.quantile partitions once per probability, hours at a million scores
    step = (values.size - 1) / (size - 1) if size > 1 else 0.0
    for start in range(0, size, chunk):
        position = np.arange(start, min(start + chunk, size)) * step
        low = np.minimum(position.astype(np.int64), values.size - 2)
        out[start : start + chunk] = values[low] + (values[low + 1] - values[low]) * (
            position - low
        )
    return out


def sorted_quantile(scores: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``[h]`` quantiles of each row of sorted ``scores [h m]`` at ``probabilities [h]``.

    Linear interpolation between order statistics; probabilities are clipped to [0, 1].

    Parameters
    ----------
    scores
        ``[h m]`` sorted rows.
    probabilities
        ``[h]`` one probability per row.
    """
    position = np.clip(probabilities, 0.0, 1.0) * (scores.shape[1] - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, scores.shape[1] - 1)
    rows = np.arange(scores.shape[0])
    fraction = position - low
    return scores[rows, low] * (1 - fraction) + scores[rows, high] * fraction


def probability_below(
    calibration: Calibration, scale: np.ndarray, forecast: np.ndarray, threshold: float
) -> np.ndarray:
    """``[h n]`` probability that each target falls below ``threshold``, from the conformal
    distribution ``ŷ + σ·score``.

    Parameters
    ----------
    calibration
        The calibration whose scores give the distribution's shape.
    scale
        ``[h n]`` the sensors' current scales.
    forecast
        ``[h n]`` point forecasts.
    threshold
        The value, in the data's unit.
    """
    needed = (threshold - forecast) / (scale * spread_of(calibration, forecast))  # [h n]: the
    # score at which y = threshold
    m = calibration.scores.shape[1]
    below = np.stack(
        [
            np.searchsorted(calibration.scores[k], needed[k], side="left")
            for k in range(needed.shape[0])
        ]
    )
    return below / m


class OnlineConformal:
    """Intervals issued in time order, updated as each reading arrives.

    Parameters
    ----------
    calibration
        The state at the cutoff.
    levels
        Interval levels in percent, e.g. ``(80, 95)``.
    step_size
        ``γ`` of adaptive conformal inference.
    """

    def __init__(
        self, calibration: Calibration, levels: Sequence[float], step_size: float = ACI_STEP
    ) -> None:
        self.calibration = calibration
        self.levels = tuple(float(level) for level in levels)
        self.step_size = step_size
        horizon = calibration.horizon
        self.target_miss = np.array([1 - level / 100 for level in self.levels])  # [K]
        self.miss = np.repeat(self.target_miss[:, None], horizon, axis=1)  # [K h] α_t
        self.scale = calibration.scale.copy()  # [h n]
        self.decay = 0.5 ** (1.0 / calibration.half_life_steps)
        self.issued: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def intervals(self, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``([K h n], [K h n])`` lower and upper bounds around ``forecast [h n]`` now.

        Parameters
        ----------
        forecast
            ``[h n]`` point forecasts of one sample.
        """
        scores = self.calibration.scores
        if not self.levels:
            empty = np.zeros((0, *forecast.shape))
            return empty, empty
        low = np.stack([sorted_quantile(scores, a / 2) for a in self.miss])  # [K h]
        high = np.stack([sorted_quantile(scores, 1 - a / 2) for a in self.miss])
        width = self.scale * spread_of(self.calibration, forecast)  # [h n]
        lower = forecast[None] + low[..., None] * width[None]
        upper = forecast[None] + high[..., None] * width[None]
        if self.calibration.counts:
            return whole_number_bounds(lower, upper)
        return lower, upper

    def issue(self, time: int, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Intervals for the sample at ``time``, remembered until its targets arrive.

        Parameters
        ----------
        time
            Sample time: step ``k`` targets ``time + k - 1``.
        forecast
            ``[h n]`` point forecasts of that sample.
        """
        lower, upper = self.intervals(forecast)
        self.issued[int(time)] = (forecast, lower, upper)
        horizon = self.calibration.horizon
        for old in [t for t in self.issued if t < time - horizon]:
            del self.issued[old]
        return lower, upper

    def observe(self, target_step: int, reading: np.ndarray) -> None:
        """Take in the readings ``[n]`` of step ``target_step`` (NaN where missing).

        Every issued forecast targeting that step updates the miscoverage of each level at
        its step. The scale of step ``k`` follows the freshest evidence of each sensor's
        error regime: the residuals of steps ``1 … k`` arriving now (forecasts issued
        ``k`` or fewer steps ago), each relative to its step's calibrated scale. Readings
        before the cutoff are calibration's, not news.

        Parameters
        ----------
        target_step
            The step index of the readings.
        reading
            ``[n]`` readings of that step.
        """
        if target_step < self.calibration.cutoff:
            return
        present = ~np.isnan(reading)
        if not present.any():
            return
        # all present, the usual case: views instead of copies of every sensor's arrays
        sensors: np.ndarray | slice = slice(None) if present.all() else present
        y = reading[sensors]
        base = self.calibration.scale[:, sensors]  # [h p]
        ratios = np.full(base.shape, np.nan)
        for k in range(self.calibration.horizon):
            issued = self.issued.get(target_step - k)
            if issued is None:
                continue
            forecast, lower, upper = issued
            outside = (y < lower[:, k, sensors]) | (y > upper[:, k, sensors])  # [K p]
            if outside.size:
                self.miss[:, k] += self.step_size * (self.target_miss - outside.mean(axis=1))
            own = forecast[k, sensors]
            spread = spread_of(self.calibration, own, sensors)
            ratios[k] = np.abs(y - own) / (base[k] * spread)
        seen = np.cumsum(~np.isnan(ratios), axis=0)  # [h p] residuals of steps 1 … k
        regime = np.cumsum(np.nan_to_num(ratios), axis=0) / np.maximum(seen, 1)
        update = seen > 0
        blended = self.decay * self.scale[:, sensors] + (1 - self.decay) * base * regime
        self.scale[:, sensors] = np.where(update, blended, self.scale[:, sensors])


def whole_number_bounds(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated bounds rounded to the nearest whole number, never below 0.

    Counts cannot meet a level exactly (with most readings 0, the interval ``[0, 0]`` already
    covers most of them). Of the three roundings measured on a generated bus city of sparse
    hourly counts (docs/models.md), the nearest scored best (lowest interval score): it
    covered 91 % at 80 % and 97 % at 95 %; rounding inwards (only the whole numbers inside the
    interval) covered 77 % and 91 %, outwards 96 % and 99 %.

    Parameters
    ----------
    lower, upper
        Calibrated bounds of the same shape, in the data's unit.
    """
    low = np.round(np.maximum(lower, 0.0))
    return low, np.maximum(np.round(upper), low)


def replay_intervals(
    calibration: Calibration,
    forecasts: np.ndarray,
    times: np.ndarray,
    readings: np.ndarray,
    levels: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """``([s K h n], [s K h n])`` intervals of consecutive samples, issued in time order.

    Before the sample at ``t`` is issued, the readings up to step ``t - 1`` have arrived and
    updated the state; none after.

    Parameters
    ----------
    calibration
        The state at the cutoff.
    forecasts
        ``[s h n]`` point forecasts of the samples at ``times``.
    times
        ``[s]`` consecutive increasing sample times; the first may precede the cutoff (those
        samples' forecasts feed the online update but get no intervals of their own: NaN).
    readings
        ``[t n]`` readings of channel 0, NaN where missing.
    levels
        Interval levels in percent.
    """
    return replay_batch(OnlineConformal(calibration, levels), forecasts, times, readings)


def replay_batch(
    state: OnlineConformal, forecasts: np.ndarray, times: np.ndarray, readings: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`replay_intervals` of one batch of samples, going on from ``state``: batch after
    batch of consecutive samples gives the intervals of all of them at once, in the memory of
    one batch.

    Parameters
    ----------
    state
        The online state, updated up to the sample before ``times[0]``; updated in place.
    forecasts
        ``[s h n]`` point forecasts of the samples at ``times``.
    times
        ``[s]`` consecutive increasing sample times, following the state's last sample.
    readings
        ``[t n]`` readings of channel 0, NaN where missing.
    """
    times = np.asarray(times, dtype=np.int64)
    if times.size and np.any(np.diff(times) != 1):
        raise ValueError("replay_intervals needs consecutive sample times")
    calibration = state.calibration
    shape = (len(times), len(state.levels), *forecasts.shape[1:])
    lower = np.full(shape, np.nan)
    upper = np.full(shape, np.nan)
    for i, t in enumerate(times):
        if t - 1 < readings.shape[0]:
            state.observe(int(t) - 1, readings[t - 1])
        if t >= calibration.cutoff:
            lower[i], upper[i] = state.issue(int(t), forecasts[i])
        else:
            state.issued[int(t)] = (forecasts[i], *state.intervals(forecasts[i]))
    return lower, upper
