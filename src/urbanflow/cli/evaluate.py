"""`urbanflow evaluate` and `urbanflow models`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from urbanflow.cli.common import (
    LEVELS_HELP,
    LOSS_HELP,
    MAPE_THRESHOLD_HELP,
    TIME_BUDGET_HELP,
    console,
    epoch_progress,
    load_bundle_and_data,
    print_result,
    progress_bar,
    sample_progress,
    training_options,
)
from urbanflow.data.catalog import load_dataset
from urbanflow.evaluation.evaluate import evaluate_by_name
from urbanflow.evaluation.protocol import make_plan, parse_horizons, parse_split
from urbanflow.evaluation.report import write_json
from urbanflow.models.conformal import DEFAULT_LEVELS, parse_levels
from urbanflow.models.registry import RECOMMENDED, model_names


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_command(
        dataset: Annotated[
            str | None, typer.Option(help="Built-in name or path (default: los-loop).")
        ] = None,
        model: Annotated[str, typer.Option(help="Model name (`urbanflow models`).")] = "last-value",
        model_dir: Annotated[
            Path | None, typer.Option(help="Re-evaluate a trained bundle instead of --model.")
        ] = None,
        split: Annotated[
            str | None, typer.Option(help="train,validation,test fractions (default 0.7,0.1,0.2).")
        ] = None,
        input_len: Annotated[int, typer.Option(help="Input window length in steps.")] = 12,
        horizons: Annotated[
            str | None, typer.Option(help="Horizon steps to report (default: the protocol's).")
        ] = None,
        protocol: Annotated[str, typer.Option(help="default or tgcn.")] = "default",
        max_epochs: Annotated[int | None, typer.Option(help="Neural models: epoch limit.")] = None,
        time_budget: Annotated[
            float | None, typer.Option(help=f"Neural models: {TIME_BUDGET_HELP}")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Neural models: random seed.")] = None,
        loss: Annotated[str | None, typer.Option(help=f"Neural models: {LOSS_HELP}")] = None,
        output: Annotated[Path | None, typer.Option(help="Write the JSON results here.")] = None,
        levels: Annotated[str, typer.Option(help=LEVELS_HELP)] = ",".join(
            f"{level:g}" for level in DEFAULT_LEVELS
        ),
        mape_threshold: Annotated[float | None, typer.Option(help=MAPE_THRESHOLD_HELP)] = None,
    ) -> None:
        """Fit a model on the training part and score it on the test part."""
        started = time.perf_counter()
        interval_levels = parse_levels(levels)
        if model_dir is not None:
            from urbanflow.evaluation.bundles import rescore_bundle  # torch: only when needed

            fitted, card, data = load_bundle_and_data(model_dir, dataset)
            input_len = fitted.input_len
        else:
            data = load_dataset(dataset or "los-loop")
        plan = make_plan(
            protocol,
            data.num_steps,
            input_len,
            parse_horizons(horizons) if horizons else None,
            parse_split(split) if split else None,
            step=data.step,
        )
        with progress_bar() as bar:
            if model_dir is not None:
                _, on_samples = sample_progress(bar, str(model_dir))
                result = rescore_bundle(
                    fitted,
                    card,
                    data,
                    plan,
                    str(model_dir),
                    on_samples,
                    interval_levels,
                    mape_threshold,
                )
            else:
                label = f"{model} ({plan.protocol})"
                _, on_epoch = epoch_progress(bar, label)
                _, on_samples = sample_progress(bar, label)
                result, _ = evaluate_by_name(
                    data,
                    model,
                    plan,
                    training_options(max_epochs, time_budget, seed, loss, started),
                    progress=on_samples,
                    fit_progress=on_epoch,
                    levels=interval_levels,
                    mape_threshold=mape_threshold,
                )
        print_result(result, data, interval_levels)
        if output:
            console.print(f"Results written to {write_json(result.to_json(), output)}")

    @app.command("models")
    def models_command() -> None:
        """List the forecasters in the registry (the recommended one marked)."""
        for name in model_names():
            console.print(f"{name}  [bold](recommended)[/]" if name == RECOMMENDED else name)
