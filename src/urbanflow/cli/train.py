"""`urbanflow train` (write a model bundle) and `urbanflow forecast` (use one)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from urbanflow.cli import common
from urbanflow.data.catalog import load_dataset
from urbanflow.errors import ConfigError
from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.conformal import DEFAULT_LEVELS, parse_levels
from urbanflow.models.forecast import forecast_table, issue_indices, write_forecast


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        context: typer.Context,
        out: Annotated[Path, typer.Option(help="Folder that receives the model bundle.")],
        dataset: Annotated[str, typer.Option(help="Built-in name or path.")] = "los-loop",
        model: Annotated[str, typer.Option(help="A neural model (`urbanflow models`).")] = "stid",
        protocol: Annotated[str, typer.Option(help="default or tgcn.")] = "default",
        input_len: Annotated[int, typer.Option(help="Input window length in steps.")] = 12,
        max_epochs: Annotated[int | None, typer.Option(help="Epoch limit.")] = None,
        time_budget: Annotated[float | None, typer.Option(help=common.TIME_BUDGET_HELP)] = None,
        seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
        loss: Annotated[str | None, typer.Option(help=common.LOSS_HELP)] = None,
        levels: Annotated[str, typer.Option(help=common.LEVELS_HELP)] = ",".join(
            f"{level:g}" for level in DEFAULT_LEVELS
        ),
        nproc: Annotated[
            int, typer.Option(help="Training processes on this machine (torchrun, DDP).")
        ] = 1,
    ) -> None:
        """Train a neural model under a protocol and write a bundle with its test metrics."""
        started = time.perf_counter()
        interval_levels = parse_levels(levels)
        from urbanflow.training import distributed  # torch: imported when used

        if nproc < 1:
            raise ConfigError(f"--nproc must be at least 1, got {nproc}")
        if nproc > 1:
            if distributed.launched_by_torchrun():
                raise ConfigError(
                    "--nproc starts processes on this machine; under torchrun give "
                    "--nproc-per-node to torchrun instead"
                )
            distributed.launch(nproc, ["-m", "urbanflow", *rank_command(context)])
            return
        from urbanflow.evaluation.bundles import train_bundle

        data = load_dataset(dataset)
        plan = make_plan(protocol, data.num_steps, input_len, step=data.step)
        options = common.training_options(max_epochs, time_budget, seed, loss, started)
        ranks = distributed.start()  # a rank of torchrun joins its process group
        try:
            if not ranks.is_main:  # trains its share; rank 0 prints and writes the bundle
                train_bundle(data, model, plan, out, options, levels=interval_levels)
                return
            with common.progress_bar() as bar:
                label = f"{model} ({plan.protocol})"
                _, on_epoch = common.epoch_progress(bar, label)
                _, on_samples = common.sample_progress(bar, label)
                result, fitted = train_bundle(
                    data,
                    model,
                    plan,
                    out,
                    options,
                    progress=on_samples,
                    fit_progress=on_epoch,
                    levels=interval_levels,
                )
        finally:
            distributed.stop()
        common.print_result(result, data, interval_levels)
        reports = fitted.training_reports_
        epochs = ", ".join(f"{r.best_epoch} of {r.epochs_run}" for r in reports)
        seconds = sum(r.seconds for r in reports)
        targets = sum(r.targets for r in reports)
        common.console.print(
            f"Best validation epochs {epochs} ({len(reports)} network(s), "
            f"{seconds:.0f} s of training, {targets / max(seconds, 1e-9):,.0f} targets/s"
            f"{f' over {ranks.world_size} processes' if ranks.is_distributed else ''}). "
            f"Bundle written to [bold]{out}[/]"
        )

    @app.command("forecast")
    def forecast_command(
        model_dir: Annotated[Path, typer.Option(help="A bundle from `urbanflow train`.")],
        output: Annotated[Path, typer.Option(help="A .csv or .parquet file.")],
        dataset: Annotated[
            str | None, typer.Option(help="Built-in name or path (default: the bundle's).")
        ] = None,
        at: Annotated[
            str | None, typer.Option(help="Issue time: inputs end with the reading at it.")
        ] = None,
        start: Annotated[str | None, typer.Option(help="First issue time of a hindcast.")] = None,
        end: Annotated[str | None, typer.Option(help="Last issue time of a hindcast.")] = None,
        levels: Annotated[
            str, typer.Option(help="Interval levels in percent, e.g. 80,95 (default: none).")
        ] = "none",
    ) -> None:
        """Write forecasts: sensor_id, issued_at, target_time, horizon_steps, value, and
        lower_L, upper_L for each interval level L."""
        from urbanflow.models.base import require_same_sensors

        model, _, data = common.load_bundle_and_data(model_dir, dataset)
        require_same_sensors(model.sensor_ids_, data, str(model_dir))
        issues = issue_indices(data, model.input_len, at, start, end)
        with common.progress_bar() as bar:
            bar.add_task(f"forecasting {issues.size} issue time(s)", total=None, status="")
            table = forecast_table(model, data, issues, parse_levels(levels), model.calibration_)
        path = write_forecast(table, output)
        common.console.print(
            f"{len(table):,} forecasts ({issues.size} issue times × {model.horizon} steps × "
            f"{data.num_sensors} sensors) written to [bold]{path}[/]"
        )


def rank_command(context: typer.Context) -> list[str]:
    """The ``urbanflow train`` command line each rank runs: the options as parsed, without
    ``--nproc``, and ``--debug`` when given."""
    args = ["--debug"] if context.parent and context.parent.params.get("debug") else []
    args.append("train")
    for param in context.command.params:
        value = context.params.get(param.name)
        if param.name == "nproc" or value is None:
            continue
        if isinstance(value, bool):
            args.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args
