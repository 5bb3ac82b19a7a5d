"""Benchmarks: several models × seeds under one protocol, resumable, summarised as a leaderboard.

Each finished run is one JSON file ``<out>/<model>/seed-<k>.json``; a later call skips the
runs whose file exists, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from urbanflow.data.dataset import CityDataset
from urbanflow.evaluation.evaluate import EvaluationResult, evaluate
from urbanflow.evaluation.metrics import METRIC_NAMES, level_label, metric_label
from urbanflow.evaluation.protocol import EvaluationPlan
from urbanflow.evaluation.report import duration_label, write_json
from urbanflow.models.base import FitProgress, Forecaster
from urbanflow.models.registry import make_model

INTERVAL_METRICS = ("coverage_", "width_", "interval_score_", "wis")
SEEDED = "seed"  # models taking this hyperparameter are run once per seed


@dataclass(frozen=True)
class BenchmarkRun:
    """One planned fit-and-score of a benchmark and the file its result goes to.

    Parameters
    ----------
    model
        Registry name of the model.
    seed
        Seed passed to the model; ``None`` for a model that takes no seed (run once).
    path
        The run's results file, ``<out>/<model>/seed-<k>.json`` or ``<out>/<model>/run.json``; the
        run is skipped when it exists.
    """

    model: str
    seed: int | None
    path: Path


def planned_runs(models: Sequence[str], seeds: int, out: Path) -> list[BenchmarkRun]:
    """One run per model, or one per seed for models that take a seed.

    Parameters
    ----------
    models
        Registry names of the models to benchmark.
    seeds
        Runs per seeded model, with seeds ``0 … seeds-1``.
    out
        The benchmark folder the results files go under.
    """
    runs = []
    for name in models:
        seeded = SEEDED in make_model(name).hyperparameters()
        for seed in range(seeds) if seeded else [None]:
            label = f"seed-{seed}" if seed is not None else "run"
            runs.append(BenchmarkRun(name, seed, out / name / f"{label}.json"))
    return runs


def inference_ms(
    model: Forecaster, dataset: CityDataset, plan: EvaluationPlan, batch: int = 64
) -> float:
    """Median milliseconds to forecast one batch of test samples (3 timed repeats).

    Parameters
    ----------
    model
        A fitted forecaster.
    dataset
        The dataset it was fitted on.
    plan
        The plan whose first test sample times make the batch.
    batch
        Samples per timed batch (default 64; fewer if the plan has fewer test samples).
    """
    times = plan.test_times[:batch]
    model.predict(dataset, times)  # warm up
    durations = []
    for _ in range(3):
        started = time.perf_counter()
        model.predict(dataset, times)
        durations.append((time.perf_counter() - started) * 1000)
    return statistics.median(durations)


def run_one(
    run: BenchmarkRun,
    dataset: CityDataset,
    plan: EvaluationPlan,
    time_budget_min: float | None,
    fit_progress: FitProgress | None = None,
    levels: Sequence[float] = (),
    mape_threshold: float | None = None,
) -> dict[str, object]:
    """Fit and score one run, add timings and training history, and write its results file.

    Returns what was written.

    Parameters
    ----------
    run
        The planned run (model, seed and results file).
    dataset
        The whole dataset.
    plan
        The protocol every run of the benchmark shares.
    time_budget_min
        Training time limit in minutes for seeded (neural) models; ``None``: none.
    fit_progress
        Called with (epoch, epochs, status) while training; ``None`` (default): silent.
    levels
        Interval levels in percent to score (default: none).
    mape_threshold
        ``mape_above`` threshold; ``None`` (default): the default for the dataset's kind.
    """
    options: dict[str, object] = {}
    if run.seed is not None:
        options["seed"] = run.seed
        if time_budget_min is not None:
            options["time_budget_min"] = time_budget_min
    model = make_model(run.model, input_len=plan.input_len, horizon=plan.horizon, **options)
    result: EvaluationResult = evaluate(
        model,
        dataset,
        plan,
        run.model,
        fit_progress=fit_progress,
        levels=levels,
        mape_threshold=mape_threshold,
    )
    payload = result.to_json()
    payload["seed"] = run.seed
    payload["inference_ms_per_batch"] = round(inference_ms(model, dataset, plan), 3)
    report = getattr(model, "training_report_", None)
    if report is not None:
        payload["training"] = {
            "best_epoch": report.best_epoch,
            "epochs_run": report.epochs_run,
            "stopped_by": report.stopped_by,
            "seconds_to_best": report.history[report.best_epoch - 1]["seconds"]
            if report.history
            else None,
            "history": report.history,
        }
    write_json(payload, run.path)
    return payload


def load_runs(out: Path) -> list[dict[str, object]]:
    """Every finished run in the folder, from this call or earlier ones.

    Parameters
    ----------
    out
        The benchmark folder (``<model>/*.json`` runs).
    """
    return [json.loads(path.read_text()) for path in sorted(out.glob("*/*.json"))]


def leaderboard(results: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Per model: mean and std over seeds of each metric at each horizon, sorted by avg MAE.

    Parameters
    ----------
    results
        Results files' contents, as ``load_runs`` returns them; runs of one model must score the
        same horizons.
    """
    by_model: dict[str, list[dict[str, object]]] = {}
    for result in results:
        by_model.setdefault(str(result["model"]), []).append(result)
    rows = []
    for name, runs in by_model.items():
        horizons = []
        for i, first in enumerate(runs[0]["horizons"]):
            entry = {"steps": first["steps"], "minutes": first["minutes"]}
            interval = [k for k in first if k.startswith(INTERVAL_METRICS)]
            for metric in (*METRIC_NAMES, *interval):
                values = [_number(r["horizons"][i].get(metric)) for r in runs]
                entry[metric] = float(np.mean(values))
                entry[f"{metric}_std"] = float(np.std(values))
            horizons.append(entry)
        averages = [float(r["average"]["mae"]) for r in runs]
        rows.append(
            {
                "model": name,
                "runs": len(runs),
                "levels": runs[0].get("levels", []),
                "horizons": horizons,
                "average_mae": float(np.mean(averages)),
                "average_mae_std": float(np.std(averages)),
                "average_mape_above": float(
                    np.mean([_number(r["average"].get("mape_above")) for r in runs])
                ),
                "mape_above_threshold": runs[0].get("mape_above_threshold"),
                "kind": runs[0].get("kind"),
                "kind_source": runs[0].get("kind_source"),
                "validation_mae": float(np.mean([float(r["validation"]["mae"]) for r in runs])),
                "parameters": runs[0]["parameters"],
                "train_seconds": float(np.mean([float(r["train_seconds"]) for r in runs])),
                "inference_ms_per_batch": float(
                    np.median([float(r["inference_ms_per_batch"]) for r in runs])
                ),
            }
        )
    return sorted(rows, key=lambda row: row["average_mae"])


def write_leaderboard(folder: Path, caption: str) -> str:
    """Summarise every finished run in ``folder`` into ``leaderboard.md`` and
    ``leaderboard.json``; returns the Markdown.

    Parameters
    ----------
    folder
        The benchmark folder (``<model>/seed-<k>.json`` runs).
    caption
        The protocol in words, written above the table and into the JSON.
    """
    rows = leaderboard(load_runs(folder))
    markdown = leaderboard_markdown(rows, caption)
    (folder / "leaderboard.md").write_text(markdown)
    write_json({"protocol": caption, "rows": rows}, folder / "leaderboard.json")
    return markdown


def _number(value: object) -> float:
    """A metric from a results file: null (no target counted) reads as NaN."""
    return float("nan") if value is None else float(value)


def leaderboard_markdown(rows: Sequence[dict[str, object]], caption: str) -> str:
    """A Markdown table: MAE / RMSE (± std over seeds) per horizon, parameters, timings.

    Parameters
    ----------
    rows
        Leaderboard rows, as ``leaderboard`` returns them (best first).
    caption
        The protocol in words, written above the table.
    """
    if not rows:
        return caption + "\n\n(no finished runs)\n"
    head = " | ".join(f"{duration_label(h['minutes'])} MAE / RMSE" for h in rows[0]["horizons"])
    threshold = rows[0].get("mape_above_threshold")
    mape_head = "avg " + (
        "mape_above" if threshold is None else metric_label("mape_above", float(threshold))
    )
    lines = [
        caption,
        "",
        f"| model | runs | {head} | avg MAE | {mape_head} | val MAE | parameters | train s "
        "| ms / batch |",
        "|---" * (len(rows[0]["horizons"]) + 8) + "|",
    ]
    for row in rows:
        cells = " | ".join(_cell(h, row["runs"]) for h in row["horizons"])
        lines.append(
            f"| {row['model']} | {row['runs']} | {cells} | {row['average_mae']:.3f} | "
            f"{row['average_mape_above']:.4f} | {row['validation_mae']:.3f} | "
            f"{row['parameters']:,} | {row['train_seconds']:.1f} | "
            f"{row['inference_ms_per_batch']:.1f} |"
        )
    levels = rows[0]["levels"]
    if levels:
        lines += ["", interval_markdown(rows, levels)]
    return "\n".join(lines) + "\n"


def interval_markdown(rows: Sequence[dict[str, object]], levels: Sequence[float]) -> str:
    """A Markdown table of the conformal intervals: coverage and interval score per level, and
    the weighted interval score, per horizon (means over seeds).

    Parameters
    ----------
    rows
        Leaderboard rows (``leaderboard``) whose runs scored ``levels``.
    levels
        Interval levels in percent.
    """
    head = []
    for h in rows[0]["horizons"]:
        label = duration_label(h["minutes"])
        head += [f"{label} {level:g} % cover / IS" for level in levels]
        head.append(f"{label} WIS")
    lines = [f"| model | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
    for row in rows:
        cells = []
        for h in row["horizons"]:
            for level in levels:
                label = level_label(level)
                cells.append(
                    f"{h.get(f'coverage_{label}', float('nan')):.3f} / "
                    f"{h.get(f'interval_score_{label}', float('nan')):.2f}"
                )
            cells.append(f"{h.get('wis', float('nan')):.3f}")
        lines.append(f"| {row['model']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _cell(horizon: dict[str, float], runs: int) -> str:
    if runs > 1:
        return (
            f"{horizon['mae']:.3f} ± {horizon['mae_std']:.3f} / "
            f"{horizon['rmse']:.3f} ± {horizon['rmse_std']:.3f}"
        )
    return f"{horizon['mae']:.3f} / {horizon['rmse']:.3f}"
