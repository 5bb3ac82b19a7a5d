"""`urbanflow demo`: Los-loop as a live city — train, serve, replay the last day, score."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from urbanflow.cli.common import console, epoch_progress, progress_bar, training_options
from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.errors import ConfigError
from urbanflow.evaluation.protocol import make_plan
from urbanflow.serving.settings import ServeSettings

if TYPE_CHECKING:  # uvicorn and FastAPI load only when a command serves
    from urbanflow.serving.server import BackgroundServer

HISTORY_STEPS = 36  # readings posted before the replay: three hours at five minutes


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        runs_dir: Annotated[Path, typer.Option(help="Folder for the model and store.")] = Path(
            "runs"
        ),
        model_dir: Annotated[
            Path | None, typer.Option(help="Use this bundle instead of training one.")
        ] = None,
        train_minutes: Annotated[
            float, typer.Option(help="Training budget of the quick model.")
        ] = 1.0,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        pace: Annotated[float, typer.Option(help="Replayed steps a second (0: no wait).")] = 3.0,
        steps: Annotated[
            int | None, typer.Option(help="Replay only this many steps (default: the last day).")
        ] = None,
        keep_serving: Annotated[
            bool, typer.Option(help="Keep serving after the replay until Ctrl-C.")
        ] = True,
        alerts: Annotated[
            Path | None, typer.Option(help="A TOML file of alert rules (as `serve --alerts`).")
        ] = None,
    ) -> None:
        """Train a quick model on Los-loop, serve it, replay its last day as a live feed."""
        from urbanflow.serving.server import check_port

        dataset = load_dataset("los-loop")
        day = dataset.steps_per_day
        first = dataset.num_steps - day
        count = day if steps is None else steps
        if not 1 <= count <= day:
            raise ConfigError(f"--steps {steps} is outside 1…{day} (one day of Los-loop)")
        bundle = model_dir or quick_model(dataset, runs_dir / "demo-model", train_minutes)
        run = runs_dir / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
        settings = ServeSettings(bundle, run / "readings.duckdb", alerts=alerts)
        check_port(host, port)
        url = f"http://{host}:{port}"
        try:
            with serving(settings, host, port):
                console.print(f"Dashboard: [bold]{url}/[/]   API docs: {url}/docs")
                accuracy = replay_last_day(url, dataset, range(first, first + count), pace)
                console.print(live_accuracy_table(accuracy, dataset))
                if keep_serving:
                    console.print(f"Replay done; still serving {url}/ — press Ctrl-C to stop.")
                    wait_for_interrupt()
        except KeyboardInterrupt:
            console.print("Interrupted.")
        console.print(f"Stopped. The readings stay in {settings.store_path}")


def replay_last_day(url: str, dataset: CityDataset, steps: range, pace: float) -> dict:
    """Post the readings just before ``steps`` at once, then replay ``steps`` at ``pace``;
    returns the service's live accuracy over the replayed target times."""
    import httpx

    from urbanflow.serving.replay import ReplayStep, replay

    minutes = len(steps) * dataset.step.total_seconds() / 60
    with httpx.Client(base_url=url, timeout=60) as client:
        replay(client, dataset, range(steps.start - HISTORY_STEPS, steps.start), 0.0)
        with progress_bar() as bar:
            task = bar.add_task("replaying the last day", total=len(steps), status="")

            def show(step: ReplayStep) -> None:
                scores = client.get("/v1/accuracy", params={"minutes": minutes}).json()
                at_15 = scores["data"][2] if len(scores["data"]) > 2 else scores["data"][-1]
                mae = "…" if at_15["mae"] is None else f"{at_15['mae']:.2f}"
                status = f"{step.timestamp}  live MAE at {at_15['horizon_steps']} steps {mae}"
                bar.update(task, advance=1, status=status)

            replay(client, dataset, steps, pace, show)
        return client.get("/v1/accuracy", params={"minutes": minutes}).json()


def quick_model(dataset: CityDataset, folder: Path, minutes: float) -> Path:
    """STID trained for ``minutes`` on Los-loop's default-protocol training part, or the
    bundle a previous demo left in ``folder``. The replayed last day lies in the test part."""
    from urbanflow.evaluation.bundles import train_bundle
    from urbanflow.models.bundle import read_card

    if (folder / "card.json").exists():
        card = read_card(folder)
        if card["dataset"]["fingerprint"] == dataset.fingerprint:
            console.print(
                f"Using the model trained by an earlier demo: {folder} (delete to retrain)"
            )
            return folder
    plan = make_plan("default", dataset.num_steps, 12)
    console.print(f"Training a quick STID model on Los-loop ({minutes:g} min budget)…")
    with progress_bar() as bar:
        _, on_epoch = epoch_progress(bar, "stid")
        result, _ = train_bundle(
            dataset,
            "stid",
            plan,
            folder,
            training_options(None, minutes, 0),
            fit_progress=on_epoch,
        )
    scores = ", ".join(f"{h.label} {h.metrics['mae']:.2f}" for h in result.horizons)
    console.print(f"Test MAE ({dataset.metadata.unit}): {scores}")
    return folder


def live_accuracy_table(accuracy: dict, dataset: CityDataset) -> Table:
    """The ``GET /v1/accuracy`` answer as a table, at 5, 15, 30 and 60 minutes (or the steps
    the model has)."""
    unit = dataset.metadata.unit
    table = Table(title=f"Live accuracy over the replay: MAE ({unit}) on the same readings")
    table.add_column("horizon")
    table.add_column("model", justify="right")
    table.add_column("last value", justify="right")
    table.add_column("readings scored", justify="right")
    minutes = dataset.step.total_seconds() / 60
    rows = {row["horizon_steps"]: row for row in accuracy["data"]}
    for step in (1, 3, 6, 12):
        if step not in rows:
            continue
        row = rows[step]
        table.add_row(
            f"{step * minutes:g} min",
            "–" if row["mae"] is None else f"{row['mae']:.3f}",
            "–" if row["last_value_mae"] is None else f"{row['last_value_mae']:.3f}",
            f"{row['count']:,}",
        )
    return table


def serving(settings: ServeSettings, host: str, port: int) -> BackgroundServer:
    from urbanflow.cli.serve import report_service
    from urbanflow.serving.app import create_app
    from urbanflow.serving.server import BackgroundServer
    from urbanflow.serving.service import open_service

    service = open_service(settings)
    report_service(service, settings)
    return BackgroundServer(create_app(settings, service), host, port)


def wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
