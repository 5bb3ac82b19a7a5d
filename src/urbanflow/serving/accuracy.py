"""Live accuracy and coverage: the stored forecasts, scored against the readings that came.

Every forecast the service issues is stored with the readings at its issue time (the
last-value forecast a control room has without a model). The store joins them with the
readings at their target times (``ReadingStore.forecast_scores``): per horizon step, the
errors ``|forecast − reading|`` and ``|last value − reading|`` on the same readings (sensors
with a forecast and a reading at the issue time), and the share of those readings inside each
level's interval. A correction of a reading re-scores its target time; the scores survive a
restart because they are computed from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from urbanflow.models.conformal import interval_columns


@dataclass(frozen=True)
class HorizonAccuracy:
    """MAE of the model and of the last value at one horizon step, over ``count`` readings,
    and the share of them inside the interval at each level (``"80"`` → 0.81; None before any
    score)."""

    horizon_steps: int
    mae: float | None
    last_value_mae: float | None
    count: int
    coverage: dict[str, float | None] = field(default_factory=dict)


def level_label(level: float) -> str:
    """``"80"``, ``"97_5"``: a level as it appears in ``lower_80`` and in coverage keys."""
    return interval_columns([level])[0].removeprefix("lower_")


def summarise(
    horizon: int,
    levels: tuple[float, ...],
    errors: pd.DataFrame | None,
    coverage: pd.DataFrame | None,
) -> list[HorizonAccuracy]:
    """One :class:`HorizonAccuracy` per step ``1 … horizon`` from the sums of
    ``ReadingStore.forecast_scores`` (None: nothing scored)."""
    sums = {} if errors is None else {int(r.horizon_steps): r for r in errors.itertuples()}
    covered = {}
    if coverage is not None:
        for r in coverage.itertuples():
            covered[int(r.horizon_steps), float(r.level)] = int(r.covered) / int(r.count)
    out = []
    for h in range(1, horizon + 1):
        row = sums.get(h)
        count = 0 if row is None else int(row.count)
        out.append(
            HorizonAccuracy(
                horizon_steps=h,
                mae=float(row.model_error) / count if count else None,
                last_value_mae=float(row.last_error) / count if count else None,
                count=count,
                coverage={level_label(v): covered.get((h, v)) for v in levels},
            )
        )
    return out
