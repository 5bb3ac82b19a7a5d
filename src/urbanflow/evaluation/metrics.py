"""Masked error metrics per horizon step, computed from running totals.

A target is missing when it is NaN or equals the dataset's null value; missing targets are
left out of every sum and count. Totals are kept per step so that metrics can be reported
per step, pooled over several steps, and accumulated batch by batch in O(h) memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

METRIC_NAMES = ("mae", "rmse", "mape", "mape_above", "wmape", "accuracy")
"""The metrics every report and leaderboard shows, in order (``tgcn_accuracy`` is added
under the tgcn protocol)."""

MAPE_THRESHOLDS = {"level": 1.0, "count": 1.0, "occupancy": 1.0}
"""Default threshold of ``mape_above`` per kind of data, in the data's unit: one unit for
every kind. Count and occupancy data are full of zeros and ones, whose percentage errors
swamp any mean; for level data (speeds) one unit leaves out only standstill readings."""


def default_mape_threshold(kind: str) -> float:
    """The ``mape_above`` threshold used for data of ``kind`` when none is given.

    Parameters
    ----------
    kind
        ``level``, ``count`` or ``occupancy`` (``CityDataset.kind``).
    """
    return MAPE_THRESHOLDS.get(kind, 1.0)


def metric_label(name: str, mape_threshold: float) -> str:
    """A metric's column header: its name, ``mape≥1`` for ``mape_above`` at threshold 1.

    Parameters
    ----------
    name
        A name of :data:`METRIC_NAMES` (or ``tgcn_accuracy``).
    mape_threshold
        The threshold ``mape_above`` was computed with.
    """
    if name == "mape_above":
        return f"mape≥{mape_threshold:g}"
    return name.replace("_accuracy", " acc")


CHUNK_ELEMENTS = 1 << 18
"""Most numbers in one temporary array of the metric sums (2 MB in float64, about a CPU
cache): the totals add large ``[b h n]`` arrays a few samples at a time, so that their memory
does not grow with the number of sensors and each pass over a chunk stays in cache."""


def row_chunks(rows: int, per_row: int, budget: int | None = None) -> list[slice]:
    """Consecutive slices of ``range(rows)``, each of at most ``budget`` numbers (one row at
    least).

    Parameters
    ----------
    rows
        Rows (samples) to cover.
    per_row
        Numbers in one row, e.g. ``h·n`` of a ``[b h n]`` array.
    budget
        Most numbers in one slice; ``None`` (default): :data:`CHUNK_ELEMENTS`.
    """
    size = max(1, (budget or CHUNK_ELEMENTS) // max(per_row, 1))
    return [slice(start, start + size) for start in range(0, rows, size)]


def present(targets: np.ndarray, null_value: float | None = None) -> np.ndarray:
    """Boolean mask of targets that count: not NaN and not the null value.

    Parameters
    ----------
    targets
        Observed values, any shape, NaN where missing.
    null_value
        The dataset's declared null value: targets equal to it are missing too; ``None`` (default):
        only NaN is missing.
    """
    mask = ~np.isnan(targets)
    if null_value is not None:
        mask &= targets != null_value
    return mask


@dataclass
class ErrorTotals:
    """Sums over samples and sensors, one entry per horizon step: ``[h]`` float64 arrays.

    Parameters
    ----------
    steps
        ``h``, horizon steps tracked; ``add`` takes forecasts of exactly this many steps.
    mape_threshold
        ``θ``: ``mape_above`` is the MAPE over present targets ``y ≥ θ`` (and ``y ≠ 0``)
        (default 1.0, one unit).

    Attributes
    ----------
    count
        Present targets.
    abs_error
        Sum of ``|y - ŷ|`` over present targets.
    sq_error
        Sum of ``(y - ŷ)²`` over present targets.
    abs_target
        Sum of ``|y|`` over present targets (the wMAPE denominator).
    sq_target
        Sum of ``y²`` over present targets (T-GCN's accuracy denominator).
    ape
        Sum of ``|y - ŷ| / |y|`` over present non-zero targets.
    ape_count
        Present non-zero targets (the MAPE denominator).
    ape_above
        Sum of ``|y - ŷ| / |y|`` over present targets ``y ≥ θ``, ``y ≠ 0``.
    ape_above_count
        Those targets (the ``mape_above`` denominator).
    """

    steps: int
    mape_threshold: float = 1.0
    count: np.ndarray = field(init=False)
    abs_error: np.ndarray = field(init=False)
    sq_error: np.ndarray = field(init=False)
    abs_target: np.ndarray = field(init=False)
    sq_target: np.ndarray = field(init=False)
    ape: np.ndarray = field(init=False)
    ape_count: np.ndarray = field(init=False)
    ape_above: np.ndarray = field(init=False)
    ape_above_count: np.ndarray = field(init=False)

    SUMS: ClassVar[tuple[str, ...]] = (
        "count",
        "abs_error",
        "sq_error",
        "abs_target",
        "sq_target",
        "ape",
        "ape_count",
        "ape_above",
        "ape_above_count",
    )

    def __post_init__(self) -> None:
        for name in self.SUMS:
            setattr(self, name, np.zeros(self.steps, dtype=np.float64))

    def add(
        self, targets: np.ndarray, forecasts: np.ndarray, null_value: float | None = None
    ) -> None:
        """Add ``[b h n]`` targets and forecasts (``h == self.steps``).

        Parameters
        ----------
        targets
            ``[b h n]`` observed values, NaN (or ``null_value``) where missing.
        forecasts
            ``[b h n]`` forecasts in the same unit, finite.
        null_value
            The dataset's declared null value: targets equal to it are missing too; ``None``
            (default): only NaN is missing.
        """
        for rows in row_chunks(targets.shape[0], targets[0].size):
            self._add_chunk(targets[rows], forecasts[rows], null_value)

    def _add_chunk(
        self, targets: np.ndarray, forecasts: np.ndarray, null_value: float | None
    ) -> None:
        mask = present(targets, null_value)
        y = np.zeros(targets.shape, dtype=np.float64)
        np.copyto(y, targets, where=mask)
        error = np.subtract(y, forecasts, dtype=np.float64)
        np.copyto(error, 0.0, where=~mask)
        nonzero = mask & (y != 0)
        work = np.abs(error)  # |y - ŷ|; reused below for the other sums
        self.count += mask.sum(axis=(0, 2))
        self.abs_error += work.sum(axis=(0, 2))
        self.ape += np.divide(work, np.abs(y), out=np.zeros_like(y), where=nonzero).sum(axis=(0, 2))
        above = nonzero & (y >= self.mape_threshold)
        np.divide(work, np.abs(y), out=work, where=above)
        np.copyto(work, 0.0, where=~above)
        self.ape_above += work.sum(axis=(0, 2))
        self.ape_count += nonzero.sum(axis=(0, 2))
        self.ape_above_count += above.sum(axis=(0, 2))
        self.sq_error += np.square(error, out=error).sum(axis=(0, 2))
        self.abs_target += np.abs(y, out=error).sum(axis=(0, 2))
        self.sq_target += np.square(y, out=y).sum(axis=(0, 2))

    def pooled(self, steps: list[int] | range) -> dict[str, float]:
        """Metrics over the 1-based ``steps`` taken together.

        Parameters
        ----------
        steps
            1-based horizon steps to pool, e.g. ``[3]`` or ``range(1, 13)``.
        """
        index = np.asarray(list(steps)) - 1
        sums = {name: float(getattr(self, name)[index].sum()) for name in self.SUMS}
        return metrics_from_sums(sums)


def metrics_from_sums(sums: dict[str, float]) -> dict[str, float]:
    """mae, rmse, mape, mape_above, wmape, accuracy (= 1 - wmape) and T-GCN's Frobenius
    accuracy.

    Parameters
    ----------
    sums
        Totals pooled over the steps wanted, keyed like ``ErrorTotals.SUMS`` (``count``,
        ``abs_error``, ``sq_error``, ``abs_target``, ``sq_target``, ``ape``, ``ape_count``,
        ``ape_above``, ``ape_above_count``).
    """
    count = sums["count"]
    if count == 0:
        nan = float("nan")
        return {
            "mae": nan,
            "rmse": nan,
            "mape": nan,
            "mape_above": nan,
            "wmape": nan,
            "accuracy": nan,
            "tgcn_accuracy": nan,
            "count": 0,
        }
    wmape = sums["abs_error"] / sums["abs_target"] if sums["abs_target"] else float("nan")
    frobenius = (
        np.sqrt(sums["sq_error"]) / np.sqrt(sums["sq_target"])
        if sums["sq_target"]
        else float("nan")
    )
    return {
        "mae": sums["abs_error"] / count,
        "rmse": float(np.sqrt(sums["sq_error"] / count)),
        "mape": sums["ape"] / sums["ape_count"] if sums["ape_count"] else float("nan"),
        "mape_above": (
            sums["ape_above"] / sums["ape_above_count"] if sums["ape_above_count"] else float("nan")
        ),
        "wmape": wmape,
        "accuracy": 1.0 - wmape,
        "tgcn_accuracy": float(1.0 - frobenius),
        "count": int(count),
    }


def forecast_metrics(
    targets: np.ndarray,
    forecasts: np.ndarray,
    null_value: float | None = None,
    mape_threshold: float = 1.0,
) -> dict[str, float]:
    """All metrics over every step of ``[b h n]`` arrays at once.

    Parameters
    ----------
    targets
        ``[b h n]`` observed values, NaN (or ``null_value``) where missing.
    forecasts
        ``[b h n]`` forecasts in the same unit, finite.
    null_value
        The dataset's declared null value: targets equal to it are missing too; ``None`` (default):
        only NaN is missing.
    mape_threshold
        ``mape_above`` counts targets at or above it (default 1.0).
    """
    totals = ErrorTotals(targets.shape[1], mape_threshold)
    totals.add(targets, forecasts, null_value)
    return totals.pooled(range(1, targets.shape[1] + 1))


def level_label(level: float) -> str:
    """``"90"`` for 90.0, ``"97_5"`` for 97.5: the suffix of interval metric names.

    Parameters
    ----------
    level
        An interval level in percent.
    """
    return f"{level:g}".replace(".", "_")


@dataclass
class IntervalTotals:
    """Sums for interval metrics per level and horizon step: ``[K h]`` (``[h]`` for WIS).

    Coverage is the share of present targets inside ``[lower, upper]``; width the mean of
    ``upper - lower``; the interval (Winkler) score at level ``1-α`` is
    ``(u - l) + (2/α)(l - y)·1[y < l] + (2/α)(y - u)·1[y > u]``; the weighted interval score
    over all ``K`` levels is ``(½|y - ŷ| + Σ_k (α_k/2)·IS_k) / (K + ½)`` (Bracher et al.,
    2021), with the point forecast ``ŷ`` in the median's place.

    Parameters
    ----------
    levels
        Interval levels in percent, e.g. ``(80, 95)``.
    steps
        ``h``, horizon steps kept.
    """

    levels: tuple[float, ...]
    steps: int
    count: np.ndarray = field(init=False)
    covered: np.ndarray = field(init=False)
    width: np.ndarray = field(init=False)
    interval_score: np.ndarray = field(init=False)
    weighted: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        shape = (len(self.levels), self.steps)
        self.count = np.zeros(self.steps)
        self.covered = np.zeros(shape)
        self.width = np.zeros(shape)
        self.interval_score = np.zeros(shape)
        self.weighted = np.zeros(self.steps)

    def add(
        self,
        targets: np.ndarray,
        forecasts: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        null_value: float | None = None,
    ) -> None:
        """Add ``[b h n]`` targets and forecasts with their ``[b K h n]`` bounds.

        Parameters
        ----------
        targets
            ``[b h n]`` observed values, NaN where missing.
        forecasts
            ``[b h n]`` point forecasts.
        lower
            ``[b K h n]`` lower bounds, one per level.
        upper
            ``[b K h n]`` upper bounds.
        null_value
            The dataset's null value: targets equal to it are missing too.
        """
        for rows in row_chunks(lower.shape[0], lower[0].size):
            self._add_chunk(targets[rows], forecasts[rows], lower[rows], upper[rows], null_value)

    def _add_chunk(
        self,
        targets: np.ndarray,
        forecasts: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        null_value: float | None,
    ) -> None:
        mask = present(targets, null_value)
        y = np.where(mask, targets, 0.0)[:, None]  # [b 1 h n]
        m = mask[:, None]
        alpha = 1 - np.asarray(self.levels)[None, :, None, None] / 100
        below = np.maximum(lower - y, 0)
        above = np.maximum(y - upper, 0)
        score = (upper - lower) + 2 / alpha * (below + above)  # [b K h n]
        self.count += mask.sum(axis=(0, 2))
        self.covered += (m & (below == 0) & (above == 0)).sum(axis=(0, 3))
        self.width += np.where(m, upper - lower, 0).sum(axis=(0, 3))
        self.interval_score += np.where(m, score, 0).sum(axis=(0, 3))
        median_term = 0.5 * np.abs(y[:, 0] - forecasts)  # [b h n]
        wis = (median_term + (alpha / 2 * score).sum(axis=1)) / (len(self.levels) + 0.5)
        self.weighted += np.where(mask, wis, 0).sum(axis=(0, 2))

    def pooled(self, steps: list[int] | range | tuple[int, ...]) -> dict[str, float]:
        """``coverage_L``, ``width_L``, ``interval_score_L`` per level ``L`` and ``wis`` over
        the 1-based ``steps`` taken together (NaN when no target counted).

        Parameters
        ----------
        steps
            1-based horizon steps to pool.
        """
        index = np.asarray(list(steps)) - 1
        count = float(self.count[index].sum())
        metrics: dict[str, float] = {}
        for k, level in enumerate(self.levels):
            label = level_label(level)
            for name, sums in (
                ("coverage", self.covered),
                ("width", self.width),
                ("interval_score", self.interval_score),
            ):
                metrics[f"{name}_{label}"] = (
                    float(sums[k, index].sum()) / count if count else float("nan")
                )
        metrics["wis"] = float(self.weighted[index].sum()) / count if count else float("nan")
        return metrics
