"""`urbanflow rebalance`: move idle vehicles to cover the forecast departures of K steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from urbanflow.cli import common
from urbanflow.decisions.demand import DEFAULT_QUANTILE
from urbanflow.decisions.rebalancing import read_fleet, rebalance, write_plan


def register(app: typer.Typer) -> None:
    @app.command("rebalance")
    def rebalance_command(
        model_dir: Annotated[Path, typer.Option(help="A bundle trained on departure counts.")],
        fleet: Annotated[Path, typer.Option(help="CSV zone_id,vehicles of idle vehicles.")],
        output: Annotated[Path, typer.Option(help="The plan: a .csv file of moves.")],
        dataset: Annotated[
            str | None, typer.Option(help="Built-in name or path (default: the bundle's).")
        ] = None,
        at: Annotated[
            str | None, typer.Option(help="Issue time (default: the data's last step).")
        ] = None,
        steps: Annotated[int, typer.Option(help="K: steps of departures to cover.")] = 1,
        quantile: Annotated[
            float, typer.Option(help="Quantile of the K-step departures to cover.")
        ] = DEFAULT_QUANTILE,
        value_km: Annotated[
            float | None,
            typer.Option(help="Empty km one expected departure is worth (default: no limit)."),
        ] = None,
    ) -> None:
        """Write moves from_zone,to_zone,vehicles,distance_km that cover the quantile of each
        zone's forecast departures over the next K steps at the least empty distance."""
        model, _, data = common.load_bundle_and_data(model_dir, dataset)
        idle = read_fleet(fleet, data.sensors.ids)
        plan = rebalance(model, data, idle, at, steps, quantile, value_km=value_km)
        path = write_plan(plan, output)
        common.console.print(
            f"{plan.vehicles_moved:,} vehicles moved in {len(plan.vehicles):,} moves, "
            f"{plan.empty_km:,.1f} empty km; expected unmet departures over {steps} step(s): "
            f"{plan.total_expected_unmet:,.1f} (quantile {quantile:g} of each zone's forecast); "
            f"solver {plan.solver_seconds * 1000:,.0f} ms. Plan written to [bold]{path}[/]"
        )
