"""The `urbanflow` command: parse options, call the library, print with Rich. No logic here."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from urbanflow.data.catalog import dataset_names, load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.data.download import CATALOGUE, download, is_downloaded
from urbanflow.errors import UrbanflowError
from urbanflow.evaluation.evaluate import EvaluationResult, evaluate
from urbanflow.evaluation.protocol import EvaluationPlan, make_plan, parse_horizons, parse_split
from urbanflow.evaluation.report import (
    describe_protocol,
    horizon_table,
    leaderboard_table,
    write_json,
)
from urbanflow.models.registry import make_model, model_names

app = typer.Typer(
    help="Forecasts for the flows a city's sensors measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="List, inspect and download datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

# Tables need about 120 columns; a pipe or a CI log gets that width instead of Rich's 80.
console = Console(width=None if sys.stdout.isatty() else 120)
errors = Console(stderr=True)


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")] = False,
) -> None:
    """urbanflow: datasets, honest evaluation, baselines."""


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def evaluate_model(
    bar: Progress, dataset: CityDataset, model_name: str, plan: EvaluationPlan
) -> EvaluationResult:
    """Fit and score one registry model, drawing its progress on ``bar``."""
    model = make_model(model_name, input_len=plan.input_len, horizon=plan.horizon)
    task = bar.add_task(f"{model_name} ({plan.protocol})", total=None)
    result = evaluate(
        model,
        dataset,
        plan,
        model_name=model_name,
        progress=lambda done, total: bar.update(task, completed=done, total=total),
    )
    bar.remove_task(task)
    return result


@app.command("evaluate")
def evaluate_command(
    dataset: Annotated[str, typer.Option(help="Built-in name or path of a dataset.")] = "los-loop",
    model: Annotated[str, typer.Option(help="Model name (see `urbanflow models`).")] = "last-value",
    split: Annotated[
        str | None, typer.Option(help="train,validation,test fractions (default 0.7,0.1,0.2).")
    ] = None,
    input_len: Annotated[int, typer.Option(help="Input window length in steps.")] = 12,
    horizons: Annotated[
        str | None, typer.Option(help="Horizon steps to report (default protocol's).")
    ] = None,
    protocol: Annotated[str, typer.Option(help="default or tgcn.")] = "default",
    output: Annotated[Path | None, typer.Option(help="Write the JSON results here.")] = None,
) -> None:
    """Fit a model on the training part and score it on the test part."""
    data = load_dataset(dataset)
    plan = make_plan(
        protocol,
        data.num_steps,
        input_len,
        parse_horizons(horizons) if horizons else None,
        parse_split(split) if split else None,
    )
    with progress_bar() as bar:
        result = evaluate_model(bar, data, model, plan)
    console.print(describe_protocol(result.plan, data), style="dim")
    console.print(horizon_table(result))
    if output:
        console.print(f"Results written to {write_json(result.to_json(), output)}")


@app.command("models")
def models_command() -> None:
    """List the forecasters in the registry."""
    for name in model_names():
        console.print(name)


@app.command("demo")
def demo_command(
    runs_dir: Annotated[Path, typer.Option(help="Folder that receives the run folder.")] = Path(
        "runs"
    ),
) -> None:
    """Evaluate every baseline on the embedded Los-loop data under both protocols."""
    dataset = load_dataset("los-loop")
    run = runs_dir / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    plans = [make_plan(protocol, dataset.num_steps) for protocol in ("default", "tgcn")]
    results: dict[str, list[EvaluationResult]] = {plan.protocol: [] for plan in plans}
    with progress_bar() as bar:
        for plan in plans:
            for name in model_names():
                result = evaluate_model(bar, dataset, name, plan)
                write_json(result.to_json(), run / plan.protocol / f"{name}.json")
                results[plan.protocol].append(result)
    for plan in plans:
        console.print()
        console.print(describe_protocol(plan, dataset), style="dim")
        console.print(
            leaderboard_table(results[plan.protocol], f"Los-loop, protocol {plan.protocol} (mph)")
        )
    summary = {protocol: [r.to_json() for r in rs] for protocol, rs in results.items()}
    write_json(summary, run / "results.json")
    console.print(f"\nResults (one JSON per model and protocol) written to [bold]{run}[/]")


@datasets_app.command("list")
def datasets_list() -> None:
    """Built-in and downloadable datasets, and whether each is ready to use."""
    table = Table(header_style="bold")
    for column in ("name", "status", "description"):
        table.add_column(column)
    for name in dataset_names():
        if name in CATALOGUE:
            ready = is_downloaded(name)
            status = "downloaded" if ready else f"urbanflow datasets download {name}"
            table.add_row(name, status, CATALOGUE[name].description)
        else:
            table.add_row(name, "embedded", "Los Angeles freeway speed, 207 sensors, 1 week")
    console.print(table)


@datasets_app.command("download")
def datasets_download(
    name: Annotated[str, typer.Argument(help="metr-la, pems-bay, pems04 or pems08.")],
) -> None:
    """Fetch a standard dataset into the user cache and verify its checksums."""
    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def show(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                tasks[filename] = bar.add_task(filename, total=total)
            bar.update(tasks[filename], completed=done, total=total)

        folder = download(name, progress=show)
    console.print(f"{name} is ready in {folder}; use it as --dataset {name}")


@datasets_app.command("info")
def datasets_info(name: Annotated[str, typer.Argument(help="Built-in name or path.")]) -> None:
    """Sensors, steps, frequency, span, missing share and edges of a dataset."""
    dataset = load_dataset(name)
    meta = dataset.metadata
    rows = {
        "name": meta.name,
        "quantity": f"{meta.quantity} ({meta.unit or 'no unit'})",
        "sensors": dataset.num_sensors,
        "steps": dataset.num_steps,
        "frequency": meta.frequency,
        "span": f"{dataset.timestamps[0]} to {dataset.timestamps[-1]}",
        "missing": f"{100 * dataset.missing_fraction():.2f} %",
        "edges": dataset.graph.num_edges,
        "channels": ", ".join(meta.channels),
        "null value": meta.null_value,
        "source": meta.source,
        "licence": meta.licence,
    }
    for key, value in rows.items():
        console.print(f"[bold]{key:>10}[/]  {value}")


def main(args: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit 2; ``--debug`` shows the traceback."""
    args = sys.argv[1:] if args is None else args
    try:
        app(args=args, prog_name="urbanflow")
    except UrbanflowError as error:
        if "--debug" in args:
            raise
        errors.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
