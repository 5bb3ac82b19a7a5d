"""`urbanflow benchmark`: models × seeds, resumable, Markdown and JSON leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from urbanflow.cli.common import (
    LEVELS_HELP,
    MAPE_THRESHOLD_HELP,
    console,
    epoch_progress,
    progress_bar,
)
from urbanflow.data.catalog import load_dataset
from urbanflow.errors import ConfigError
from urbanflow.evaluation.benchmark import planned_runs, run_one, write_leaderboard
from urbanflow.evaluation.protocol import make_plan
from urbanflow.evaluation.report import describe_protocol
from urbanflow.models.conformal import DEFAULT_LEVELS, parse_levels


def register(app: typer.Typer) -> None:
    @app.command("benchmark")
    def benchmark_command(
        models: Annotated[str, typer.Option(help="Comma-separated model names.")],
        dataset: Annotated[str, typer.Option(help="Built-in name or path.")] = "los-loop",
        protocol: Annotated[str, typer.Option(help="default or tgcn.")] = "default",
        seeds: Annotated[int, typer.Option(help="Seeds per neural model.")] = 1,
        time_budget: Annotated[
            float | None, typer.Option(help="Training minutes at most per run.")
        ] = None,
        out: Annotated[
            Path | None, typer.Option(help="Folder (default runs/benchmark-DATASET-PROTOCOL).")
        ] = None,
        levels: Annotated[str, typer.Option(help=LEVELS_HELP)] = ",".join(
            f"{level:g}" for level in DEFAULT_LEVELS
        ),
        mape_threshold: Annotated[float | None, typer.Option(help=MAPE_THRESHOLD_HELP)] = None,
    ) -> None:
        """Train and evaluate each model (and seed); finished runs are kept and skipped."""
        if seeds < 1:
            raise ConfigError("--seeds must be at least 1")
        names = [m.strip() for m in models.split(",") if m.strip()]
        data = load_dataset(dataset)
        plan = make_plan(protocol, data.num_steps, step=data.step)
        folder = out or Path("runs") / f"benchmark-{data.metadata.name}-{protocol}"
        runs = planned_runs(names, seeds, folder)
        todo = [r for r in runs if not r.path.exists()]
        console.print(
            f"{len(runs)} runs planned, {len(runs) - len(todo)} already finished in {folder}"
        )
        with progress_bar() as bar:
            overall = bar.add_task("benchmark", total=len(runs), status="")
            bar.update(overall, completed=len(runs) - len(todo))
            for run in todo:
                label = run.model + ("" if run.seed is None else f" seed {run.seed}")
                task, on_epoch = epoch_progress(bar, label)
                run_one(
                    run, data, plan, time_budget, on_epoch, parse_levels(levels), mape_threshold
                )
                bar.remove_task(task)
                bar.advance(overall)
        markdown = write_leaderboard(folder, describe_protocol(plan, data, mape_threshold))
        console.print(markdown)
        console.print(f"Leaderboard written to [bold]{folder / 'leaderboard.md'}[/] and .json")
