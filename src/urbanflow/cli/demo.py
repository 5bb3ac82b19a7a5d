"""`urbanflow demo`: every baseline on the embedded Los-loop data, both protocols."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from urbanflow.cli.common import console, progress_bar
from urbanflow.cli.evaluate import evaluate_model
from urbanflow.data.catalog import load_dataset
from urbanflow.evaluation.evaluate import EvaluationResult
from urbanflow.evaluation.protocol import make_plan
from urbanflow.evaluation.report import describe_protocol, leaderboard_table, write_json
from urbanflow.models.registry import baseline_names


def register(app: typer.Typer) -> None:
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
                for name in baseline_names():
                    result, _ = evaluate_model(bar, dataset, name, plan)
                    write_json(result.to_json(), run / plan.protocol / f"{name}.json")
                    results[plan.protocol].append(result)
        for plan in plans:
            console.print()
            console.print(describe_protocol(plan, dataset), style="dim")
            title = f"Los-loop, protocol {plan.protocol} (mph)"
            console.print(leaderboard_table(results[plan.protocol], title))
        summary = {protocol: [r.to_json() for r in rs] for protocol, rs in results.items()}
        write_json(summary, run / "results.json")
        console.print(f"\nResults (one JSON per model and protocol) written to [bold]{run}[/]")
