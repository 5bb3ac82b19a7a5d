"""What every command shares: the consoles and the progress bar."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.evaluation.evaluate import EvaluationResult, SampleProgress
from urbanflow.evaluation.report import describe_protocol, horizon_table, interval_table
from urbanflow.models.base import FitProgress

if TYPE_CHECKING:
    from urbanflow.models.neural import NeuralForecaster

# Tables need about 120 columns; a pipe or a CI log gets that width instead of Rich's 80.
console = Console(width=None if sys.stdout.isatty() else 120)
errors = Console(stderr=True)


def load_bundle_and_data(
    model_dir: Path, dataset: str | None
) -> tuple[NeuralForecaster, dict[str, object], CityDataset]:
    """A bundle's model and card, and ``dataset`` or, when None, the one the bundle names."""
    from urbanflow.models.bundle import load_bundle  # torch: imported when used

    model, card = load_bundle(model_dir)
    return model, card, load_dataset(dataset or str(card["dataset"]["name"]))


def training_options(
    max_epochs: int | None,
    time_budget: float | None,
    seed: int | None,
    loss: str | None = None,
    started: float | None = None,
) -> dict[str, object]:
    """Only the training options given, so that models without them are not offered them.

    ``started`` (``time.perf_counter()`` when the command began) makes ``--time-budget`` the
    command's: what it spent before training (reading the data) comes out of the budget, and
    training ends within the budget of the command's start. ``None``: the fit's alone.
    """
    if time_budget is not None and time_budget > 0 and started is not None:
        spent = (time.perf_counter() - started) / 60
        time_budget = max(time_budget - spent, 1e-9)  # spent already: one step is still taken
    given = {"max_epochs": max_epochs, "time_budget_min": time_budget, "seed": seed, "loss": loss}
    return {key: value for key, value in given.items() if value is not None}


LOSS_HELP = (
    "Training loss: mae, huber, poisson, negative-binomial or tweedie "
    "(default: by the data's kind; poisson for counts)."
)
TIME_BUDGET_HELP = (
    "Minutes from the command's start (reading the data included) to the end of training; "
    "scoring and writing come after."
)
LEVELS_HELP = "Interval levels in percent, e.g. 80,90,95 (none: point forecasts only)."
MAPE_THRESHOLD_HELP = (
    "mape_above counts targets at or above this value, in the data's unit (default 1)."
)


def print_result(
    result: EvaluationResult, dataset: CityDataset, levels: tuple[float, ...] = ()
) -> None:
    """The protocol in words, the metrics table and, when scored, the intervals table (or why
    the ``levels`` asked for could not be scored)."""
    console.print(describe_protocol(result.plan, dataset, result.mape_threshold), style="dim")
    console.print(horizon_table(result))
    if result.levels:
        console.print(interval_table(result))
    elif levels:
        console.print(
            "No intervals: the validation part leaves no residual at some horizon step before "
            "the test part; give a longer validation part (--split) to calibrate them.",
            style="yellow",
        )


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=True,
    )


def epoch_progress(bar: Progress, label: str) -> tuple[TaskID, FitProgress]:
    """A task on ``bar`` for training epochs and the callback that advances it."""
    task = bar.add_task(f"{label}: training", total=None, status="")

    def update(done: int, total: int, status: str) -> None:
        bar.update(task, completed=done, total=total, status=status)

    return task, update


def sample_progress(bar: Progress, label: str) -> tuple[TaskID, SampleProgress]:
    """A task on ``bar`` for forecast samples (shown once scoring starts) and its callback."""
    task = bar.add_task(f"{label}: forecasting", total=None, status="", visible=False)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, visible=True)

    return task, update
