"""Does forecasting demand place a fleet better? A generated trip city replayed with rebalancing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rebalancing.py [--model stid-graph,stid]
        [--time-budget 3] [--seeds 0,1,2] [--steps K --quantile Q --value-km V]
        [--km-budget 1.2] [--output benchmarks/results] [--name rebalancing]

``--model`` takes one forecasting network or several, comma-separated, replayed on the same
cities; the targets' ratios are computed for each, the first being the one the run is about.

For each seed, the synthetic trip generator (``urbanflow.data.synth.trips``, frozen parameters
below, its ``seed`` set) draws 28 days of trips; ``trips_to_flows`` counts them into departures
per zone and 30-minute step and an origin–destination table, the zones being the generator's
own (``stops:`` its zone centres). The default protocol splits the steps (70/10/20 %, horizons
of 1, 2 and 4 steps: up to two hours ahead); forecasters are fitted on the fitting part only
(the network early-stops on the validation part) and the test part (the last 20 % of steps) is
replayed by ``urbanflow.decisions.simulation``: requests are the
departures, served by an idle vehicle of the zone or lost, trips go where the OD table's row
for the origin and hour of the week sends them (draws seeded by the seed), vehicles and moves
travel at 25 km/h, rebalancing runs every step before the requests.

Policies: ``none`` (no moves); ``reactive`` (each zone's target is the requests of the last
observed step); ``last-value``, ``historical-average`` and the model (each zone's target is the
quantile Q of the Poisson sum of its forecast departures over the next K steps, forecast from
the readings up to the last observed step; vehicles arriving within the K steps count towards
it; a vehicle of a target is moved only where the departures it is expected to serve, worth V
empty km each, pay for its distance: ``plan_moves(value_km=V)``). K, Q and V are chosen per
policy on the validation part, replayed the same way: the setting with the fewest unmet
requests among those whose empty kilometres stay within 1.2 × reactive's on that replay (the
lowest kilometres if none does), from K in 1…3, Q in {0.8, 0.9}, V in {4, 6, 8, 12} km;
``--steps K --quantile Q --value-km V`` fixes them instead. The fleet is the smallest with
which ``none`` leaves at most 20 % of the requests of the test part unmet, placed at the start
in proportion to each zone's departures in the fitting part.

Also measured: the rebalancing program's solve time for 1,000 zones (random centroids over a
disc of 15 km, idle vehicles and targets Poisson(3)), median of 20 solves.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import cpu_name, git_commit

from urbanflow.data.catalog import load_dataset
from urbanflow.data.synth.base import plane_to_degrees
from urbanflow.data.synth.trips import TripCityParameters, generate_trips, write_trips
from urbanflow.data.trips import trips_to_flows
from urbanflow.decisions.rebalancing import RebalancingProblem, plan_moves
from urbanflow.decisions.simulation import (
    DEFAULT_SPEED_KMH,
    FleetCity,
    destination_table,
    hours_of_week,
    k_step_targets,
    place_fleet,
    simulate,
    smallest_fleet,
)
from urbanflow.evaluation.evaluate import validation_part
from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.forecast import predict_samples
from urbanflow.models.registry import MODELS, make_model

GENERATOR = TripCityParameters()  # frozen: only the seed changes from run to run
FREQUENCY = "30min"
INPUT_LEN = 12
HORIZONS = (1, 2, 4)  # 30 min, 1 h, 2 h
STEPS_GRID = (1, 2, 3)
QUANTILE_GRID = (0.8, 0.9)
VALUE_GRID = (4.0, 6.0, 8.0, 12.0)  # empty km one expected departure served is worth
KM_BUDGET = 1.2  # × reactive's empty km: the target, and the default choice rule
UNMET_WITHOUT_REBALANCING = 0.2
BASELINES = ("last-value", "historical-average")
SOLVER_ZONES = 1000
SOLVER_REPEATS = 20


def build_city(seed: int, work: Path):
    """``(departures dataset, od table)`` of the generator's city drawn with ``seed``."""
    parameters = replace(GENERATOR, seed=seed)
    trips = work / f"trips-{seed}.parquet"
    write_trips(trips, parameters, force=True)
    city = generate_trips(parameters).city
    latitude, longitude = plane_to_degrees(city.x_km, city.y_km, parameters.centre)
    stops = work / f"zones-{seed}.csv"
    pd.DataFrame(
        {
            "stop_id": [f"Z{i:02d}" for i in range(parameters.zones)],
            "latitude": latitude,
            "longitude": longitude,
        }
    ).to_csv(stops, index=False)
    out = work / f"city-{seed}"
    trips_to_flows(
        trips,
        f"stops:{stops}",
        FREQUENCY,
        out,
        timezone=parameters.timezone,
        max_stop_distance_m=50_000,  # every trip starts near a zone centre: none is dropped
        force=True,
    )
    return load_dataset(str(out / "departures")), pd.read_parquet(out / "od.parquet")


def forecasts_of(name: str, dataset, plan, times, seed: int, budget: float | None):
    """``([[T H n] per times], fit seconds)``: forecasts issued before each replayed step of
    each array of ``times``."""
    options: dict[str, object] = {}
    if MODELS[name].is_neural:
        options = {"seed": seed}
        if budget is not None:
            options["time_budget_min"] = budget
    model = make_model(name, input_len=plan.input_len, horizon=plan.horizon, **options)
    started = time.perf_counter()
    model.fit(dataset.slice_steps(0, plan.fit_stop), validation=validation_part(dataset, plan))
    fit_seconds = time.perf_counter() - started
    return [predict_samples(model, dataset, t).astype(np.float64) for t in times], fit_seconds


def fleet_city(dataset, od: pd.DataFrame, requests: np.ndarray, times: np.ndarray) -> FleetCity:
    return FleetCity(
        zone_ids=dataset.sensors.ids,
        latitude=dataset.sensors.latitude,
        longitude=dataset.sensors.longitude,
        requests=requests[times],
        hour_of_week=hours_of_week(dataset.timestamps[times]),
        destinations=destination_table(od, dataset.sensors.ids),
        step_minutes=dataset.step.total_seconds() / 60,
    )


def replay(
    city: FleetCity,
    initial: np.ndarray,
    forecasts: np.ndarray,
    setting: dict[str, float],
    seed: int,
):
    """The replay of a forecasting policy with ``setting`` (steps K, quantile Q, value_km)."""
    steps = int(setting["steps"])
    return simulate(
        city,
        initial,
        k_step_targets(forecasts, steps, setting["quantile"]),
        seed,
        incoming_steps=steps - 1,
        means=np.maximum(forecasts[:, :steps], 0).sum(axis=1),
        value_km=setting["value_km"],
    )


def choose_setting(
    city: FleetCity, initial: np.ndarray, forecasts: np.ndarray, km_limit: float, seed: int
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """``(setting, tried)``: the fewest unmet requests within ``km_limit`` empty km."""
    tried = []
    for steps in STEPS_GRID:
        for quantile in QUANTILE_GRID:
            for value_km in VALUE_GRID:
                setting = {"steps": steps, "quantile": quantile, "value_km": value_km}
                result = replay(city, initial, forecasts, setting, seed)
                tried.append({**setting, "unmet": result.unmet, "empty_km": result.empty_km})
    within = [row for row in tried if row["empty_km"] <= km_limit]
    best = (
        min(within, key=lambda row: (row["unmet"], row["empty_km"]))
        if within
        else min(tried, key=lambda row: row["empty_km"])
    )
    return {key: best[key] for key in ("steps", "quantile", "value_km")}, tried


def run_seed(seed: int, args: argparse.Namespace, work: Path) -> dict[str, object]:
    dataset, od = build_city(seed, work)
    plan = make_plan("default", dataset.num_steps, INPUT_LEN, horizons=HORIZONS)
    requests = np.nan_to_num(dataset.readings[:, :, 0]).astype(np.int64)
    test = np.arange(int(plan.test_times.min()), dataset.num_steps)  # the replayed steps
    validation = np.arange(int(plan.validation_times.min()), int(plan.validation_times.max()) + 1)
    city = fleet_city(dataset, od, requests, test)
    city_validation = fleet_city(dataset, od, requests, validation)
    weights = requests[: plan.fit_stop].sum(axis=0) + 1e-9
    fleet = smallest_fleet(city, weights, UNMET_WITHOUT_REBALANCING, seed)
    initial = place_fleet(fleet, weights)
    reactive_validation = simulate(city_validation, initial, requests[validation - 1], seed)
    km_limit = args.km_budget * reactive_validation.empty_km

    results = {
        "none": simulate(city, initial, None, seed),
        "reactive": simulate(city, initial, requests[test - 1], seed),
    }
    chosen: dict[str, dict[str, object]] = {}
    for name in (*BASELINES, *args.models):
        (on_validation, on_test), fit_seconds = forecasts_of(
            name, dataset, plan, (validation, test), seed, args.time_budget
        )
        if args.steps is not None:
            setting = {"steps": args.steps, "quantile": args.quantile, "value_km": args.value_km}
            tried = []
        else:
            setting, tried = choose_setting(city_validation, initial, on_validation, km_limit, seed)
        chosen[name] = {**setting, "fit_seconds": round(fit_seconds, 1), "validation": tried}
        results[name] = replay(city, initial, on_test, setting, seed)
    rows = {}
    for name, result in results.items():
        rows[name] = {
            "unmet": result.unmet,
            "unmet_share": round(result.unmet_share, 4),
            "empty_km": round(result.empty_km, 1),
            "vehicles_moved": result.vehicles_moved,
            "solver_ms_median": round(float(np.median(result.solver_seconds)) * 1000, 2)
            if result.solver_seconds.size
            else None,
            **{k: v for k, v in chosen.get(name, {}).items() if k != "validation"},
        }
        print(
            f"  seed {seed} {name:>20}: unmet {result.unmet:6d} ({result.unmet_share:6.1%}), "
            f"empty km {result.empty_km:9.1f}, moved {result.vehicles_moved}"
            + (
                f", K {rows[name]['steps']} Q {rows[name]['quantile']} "
                f"value {rows[name]['value_km']} km"
                if name in chosen
                else ""
            ),
            flush=True,
        )
    return {
        "seed": seed,
        "zones": dataset.num_sensors,
        "steps_replayed": int(test.size),
        "first_replayed_step": dataset.timestamps[test[0]].isoformat(),
        "requests": int(city.requests.sum()),
        "fleet": fleet,
        "reactive_validation_empty_km": round(reactive_validation.empty_km, 1),
        "policies": rows,
        "validation_grid": {name: chosen[name]["validation"] for name in chosen},
    }


def solver_time(seed: int = 0) -> dict[str, float]:
    """Median and spread of the program's solve time for 1,000 zones."""
    rng = np.random.default_rng(seed)
    radius = 15.0 * np.sqrt(rng.uniform(size=SOLVER_ZONES))
    angle = rng.uniform(0, 2 * np.pi, SOLVER_ZONES)
    latitude, longitude = plane_to_degrees(
        radius * np.cos(angle), radius * np.sin(angle), GENERATOR.centre
    )
    ids = tuple(f"Z{i:04d}" for i in range(SOLVER_ZONES))
    seconds, moved = [], []
    for _ in range(SOLVER_REPEATS):
        problem = RebalancingProblem(
            ids, latitude, longitude, rng.poisson(3, SOLVER_ZONES), rng.poisson(3, SOLVER_ZONES)
        )
        plan = plan_moves(problem)
        seconds.append(plan.solver_seconds)
        moved.append(plan.vehicles_moved)
    return {
        "zones": SOLVER_ZONES,
        "repeats": SOLVER_REPEATS,
        "median_s": round(float(np.median(seconds)), 4),
        "max_s": round(float(np.max(seconds)), 4),
        "median_vehicles_moved": float(np.median(moved)),
    }


def summary(runs: list[dict[str, object]], model: str) -> dict[str, object]:
    """Per policy: unmet and empty km summed over seeds, and the targets' ratios."""
    names = list(runs[0]["policies"])
    total = {
        name: {
            key: float(sum(run["policies"][name][key] for run in runs))
            for key in ("unmet", "empty_km")
        }
        for name in names
    }
    none, reactive, ours = total["none"], total["reactive"], total[model]
    return {
        "totals": total,
        "unmet_reduction_vs_none": round(1 - ours["unmet"] / none["unmet"], 4),
        "unmet_reduction_vs_reactive": round(1 - ours["unmet"] / reactive["unmet"], 4),
        "empty_km_vs_reactive": round(ours["empty_km"] / max(reactive["empty_km"], 1e-9), 4),
    }


def markdown(runs: list[dict[str, object]]) -> str:
    names = list(runs[0]["policies"])
    seeds = [run["seed"] for run in runs]
    head = " | ".join(f"seed {s} unmet | seed {s} empty km" for s in seeds)
    lines = [f"| policy | {head} |", "|---" * (1 + 2 * len(seeds)) + "|"]
    for name in names:
        cells = []
        for run in runs:
            row = run["policies"][name]
            cells += [f"{row['unmet']:,} ({row['unmet_share']:.1%})", f"{row['empty_km']:,.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="stid", help="the forecasting network(s) compared, comma-separated"
    )
    parser.add_argument("--time-budget", type=float, default=3.0, help="training minutes")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=None, help="fix K (else chosen)")
    parser.add_argument("--quantile", type=float, default=0.9, help="Q, with --steps")
    parser.add_argument("--value-km", type=float, default=None, help="with --steps")
    parser.add_argument(
        "--km-budget",
        type=float,
        default=KM_BUDGET,
        help="settings are chosen within this many times reactive's empty km on validation",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default=None, help="the JSON's file name, without .json")
    args = parser.parse_args()
    args.models = [m.strip() for m in args.model.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]

    solver = solver_time()
    print(f"solver, {SOLVER_ZONES} zones: median {solver['median_s'] * 1000:.0f} ms", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in seeds:
            runs.append(run_seed(seed, args, Path(folder)))
    summaries = {model: summary(runs, model) for model in args.models}
    totals = summaries[args.models[0]]
    table = markdown(runs)
    print(table)
    for model, each in summaries.items():
        print(model, json.dumps({k: v for k, v in each.items() if k != "totals"}))
    args.output.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "rebalancing",
        "commit": git_commit(),
        "cpu": cpu_name(),
        "generator": {**asdict(GENERATOR), "seed": seeds},
        "frequency": FREQUENCY,
        "speed_kmh": DEFAULT_SPEED_KMH,
        "unmet_without_rebalancing": UNMET_WITHOUT_REBALANCING,
        "model": args.models[0],
        "models": args.models,
        "time_budget_min": args.time_budget,
        "horizons": HORIZONS,
        "steps_grid": STEPS_GRID if args.steps is None else [args.steps],
        "quantile_grid": QUANTILE_GRID if args.steps is None else [args.quantile],
        "value_km_grid": VALUE_GRID if args.steps is None else [args.value_km],
        "km_budget_vs_reactive": args.km_budget,
        "solver": solver,
        "runs": runs,
        "summary": totals,
        "summaries": summaries,
        "table": table,
    }
    name = args.name or (
        "rebalancing" if args.km_budget == KM_BUDGET else f"rebalancing_km{args.km_budget:g}"
    )
    (args.output / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
