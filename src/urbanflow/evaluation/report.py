"""Human-readable reports: the protocol in words and tables of results (Rich)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from urbanflow.data.dataset import CityDataset
from urbanflow.evaluation.evaluate import EvaluationResult
from urbanflow.evaluation.metrics import (
    METRIC_NAMES,
    default_mape_threshold,
    level_label,
    metric_label,
)
from urbanflow.evaluation.protocol import EvaluationPlan


def describe_protocol(
    plan: EvaluationPlan, dataset: CityDataset, mape_threshold: float | None = None
) -> str:
    """The choices behind the numbers, stated beside them.

    Parameters
    ----------
    plan
        The evaluation plan the numbers come from.
    dataset
        The dataset it was applied to (name, size, time span, unit, kind, null value).
    mape_threshold
        The threshold of ``mape_above``; ``None`` (default): the default for the dataset's kind.
    """
    meta = dataset.metadata
    null = "none" if meta.null_value is None else repr(meta.null_value)
    if mape_threshold is None:
        mape_threshold = default_mape_threshold(dataset.kind)
    head = (
        f"Dataset {meta.name}: {dataset.num_sensors} sensors, {dataset.num_steps} steps of "
        f"{meta.frequency}, {dataset.timestamps[0]:%Y-%m-%d %H:%M} to "
        f"{dataset.timestamps[-1]:%Y-%m-%d %H:%M} {meta.timezone}; unit {meta.unit or 'as given'}; "
        f"kind {dataset.kind} ({dataset.kind_source})."
    )
    common = (
        f"Input {plan.input_len} steps; fitted on steps 0-{plan.fit_stop - 1} only; "
        f"{plan.validation_times.size} validation samples. Metrics masked: NaN and null value "
        f"({null}) targets left out; errors in the original unit; "
        f"'{metric_label('mape_above', mape_threshold)}' = MAPE over targets ≥ {mape_threshold:g}."
    )
    if plan.protocol == "tgcn":
        return (
            f"Protocol tgcn (T-GCN paper's Los-loop protocol). {head} {common} "
            f"Test rows from step {int(plan.test_groups[0].times[0]) - plan.input_len} "
            f"(cut at 80 %); per horizon h, windows over the test rows only, "
            f"metrics pooled over steps 1…h (T-GCN's '15 minutes' = mean of 5, 10, 15). "
            f"'tgcn acc' = 1 - ‖Y-Ŷ‖F/‖Y‖F."
        )
    train, val, test = plan.split
    return (
        f"Protocol default. {head} {common} Split {train:g}/{val:g}/{test:g} by sample order, "
        f"no shuffling; {plan.test_samples} test samples; each horizon is that step alone, "
        f"'avg' pools steps 1…{plan.horizon}."
    )


def horizon_table(result: EvaluationResult) -> Table:
    """One model: every metric at each horizon and on average.

    Parameters
    ----------
    result
        The evaluation of one model on one dataset.
    """
    chosen = ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.chosen.items()
    )
    table = Table(
        title=f"{result.model} on {result.dataset} ({result.unit or 'original unit'})",
        caption=f"chosen by validation MAE: {chosen}" if chosen else None,
    )
    table.add_column("horizon", style="cyan")
    table.add_column("samples", justify="right")
    names = list(METRIC_NAMES)
    if result.plan.protocol == "tgcn":
        names.append("tgcn_accuracy")
    for name in names:
        table.add_column(metric_label(name, result.mape_threshold), justify="right")
    rows = [
        (f"{duration_label(s.minutes)} ({s.steps} steps)", s.samples, s.metrics)
        for s in result.horizons
    ]
    rows.append(("average", result.plan.test_samples, result.average))
    for label, samples, metrics in rows:
        table.add_row(label, str(samples), *(f"{metrics[n]:.4f}" for n in names))
    return table


def duration_label(minutes: float) -> str:
    """``"15 min"``, ``"3 h"`` or ``"7 d"``: a horizon in the largest whole unit.

    Parameters
    ----------
    minutes
        The duration in minutes.
    """
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes >= size and minutes % size == 0:
            return f"{minutes / size:g} {unit}"
    return f"{minutes:g} min"


def interval_table(result: EvaluationResult) -> Table:
    """One model's conformal intervals: coverage, mean width and interval score per level,
    and the weighted interval score, at each horizon and on average.

    Parameters
    ----------
    result
        An evaluation scored with interval levels (``result.levels``).
    """
    unit = result.unit or "original unit"
    table = Table(title=f"{result.model}: conformal intervals (width and scores in {unit})")
    table.add_column("horizon", style="cyan")
    names = []
    for level in result.levels:
        label = level_label(level)
        for name, title in (("coverage", "cover"), ("width", "width"), ("interval_score", "IS")):
            names.append(f"{name}_{label}")
            table.add_column(f"{level:g} %\n{title}", justify="right")
    names.append("wis")
    table.add_column("WIS", justify="right")
    rows = [(duration_label(s.minutes), s.metrics) for s in result.horizons]
    rows.append(("average", result.average))
    for label, metrics in rows:
        table.add_row(label, *(f"{metrics[n]:.3f}" for n in names))
    return table


def write_json(payload: object, path: Path) -> Path:
    """Write ``payload`` as indented JSON (creating the folder); returns ``path``.

    Parameters
    ----------
    payload
        Anything ``json.dumps`` takes, e.g. ``EvaluationResult.to_json()``.
    path
        The file to write; replaced if it exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path
