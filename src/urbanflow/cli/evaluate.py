"""`urbanflow evaluate` and `urbanflow models`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from urbanflow.cli.common import console, epoch_progress, progress_bar
from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.errors import DataError
from urbanflow.evaluation.evaluate import EvaluationResult, evaluate, score
from urbanflow.evaluation.protocol import EvaluationPlan, make_plan, parse_horizons, parse_split
from urbanflow.evaluation.report import describe_protocol, horizon_table, write_json
from urbanflow.models.registry import make_model, model_names


def training_options(
    max_epochs: int | None, time_budget: float | None, seed: int | None
) -> dict[str, object]:
    """Only the options given, so that models without them are not offered them."""
    given = {"max_epochs": max_epochs, "time_budget_min": time_budget, "seed": seed}
    return {key: value for key, value in given.items() if value is not None}


def evaluate_model(
    bar: Progress,
    dataset: CityDataset,
    model_name: str,
    plan: EvaluationPlan,
    options: dict[str, object] | None = None,
) -> tuple[EvaluationResult, object]:
    """Fit and score one registry model, drawing its progress on ``bar``."""
    model = make_model(
        model_name, input_len=plan.input_len, horizon=plan.horizon, **(options or {})
    )
    label = f"{model_name} ({plan.protocol})"
    training, on_epoch = epoch_progress(bar, label)
    scoring = bar.add_task(f"{label}: forecasting", total=None, status="", visible=False)

    def on_samples(done: int, total: int) -> None:
        bar.update(scoring, completed=done, total=total, visible=True)

    result = evaluate(model, dataset, plan, model_name, progress=on_samples, fit_progress=on_epoch)
    bar.remove_task(training)
    bar.remove_task(scoring)
    return result, model


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
            float | None, typer.Option(help="Neural models: training minutes at most.")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Neural models: random seed.")] = None,
        output: Annotated[Path | None, typer.Option(help="Write the JSON results here.")] = None,
    ) -> None:
        """Fit a model on the training part and score it on the test part."""
        if model_dir is not None:
            result, data = rescore_bundle(model_dir, dataset, protocol, horizons, split)
        else:
            data = load_dataset(dataset or "los-loop")
            plan = make_plan(
                protocol,
                data.num_steps,
                input_len,
                parse_horizons(horizons) if horizons else None,
                parse_split(split) if split else None,
            )
            with progress_bar() as bar:
                result, _ = evaluate_model(
                    bar, data, model, plan, training_options(max_epochs, time_budget, seed)
                )
        console.print(describe_protocol(result.plan, data), style="dim")
        console.print(horizon_table(result))
        if output:
            console.print(f"Results written to {write_json(result.to_json(), output)}")

    @app.command("models")
    def models_command() -> None:
        """List the forecasters in the registry."""
        for name in model_names():
            console.print(name)


def rescore_bundle(
    model_dir: Path,
    dataset_ref: str | None,
    protocol: str,
    horizons: str | None,
    split: str | None,
) -> tuple[EvaluationResult, CityDataset]:
    """Score a bundle again; refuse test samples whose inputs it was fitted on."""
    from urbanflow.training.bundle import load_bundle  # imports torch: only when needed

    model, card = load_bundle(model_dir)
    data = load_dataset(dataset_ref or str(card["dataset"]["name"]))
    if data.sensors.ids != model.sensor_ids_:
        raise DataError(
            f"{model_dir}: the model was trained on {len(model.sensor_ids_)} other sensors than "
            f"{data.metadata.name}'s {data.num_sensors}; give the dataset it was trained on"
        )
    plan = make_plan(
        protocol,
        data.num_steps,
        model.input_len,
        parse_horizons(horizons) if horizons else None,
        parse_split(split) if split else None,
    )
    if plan.horizon > model.horizon:
        raise DataError(f"{model_dir}: the model forecasts {model.horizon} steps, fewer than asked")
    same_data = data.fingerprint == card["dataset"]["fingerprint"]
    fit_stop = int(card["dataset"]["fit_stop"])
    if same_data and int(plan.test_times.min()) - plan.input_len < fit_stop:
        raise DataError(
            f"{model_dir}: this protocol's test windows start inside the steps the model was "
            f"fitted on (0-{fit_stop - 1}); evaluate with the protocol it was trained under "
            f"({card['protocol']})"
        )
    with progress_bar() as bar:
        task = bar.add_task("forecasting", total=None, status="")
        result = score(
            model,
            data,
            plan,
            str(card["model"]),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    return result, data
