"""`urbanflow rebalance` end to end on a tiny count city, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.cli_run import run
from tests.decisions.city import ZONES, count_city_with_bundle

from urbanflow.data.catalog import load_dataset
from urbanflow.decisions.rebalancing import forecast_means, rebalance
from urbanflow.models.bundle import load_bundle

pytestmark = pytest.mark.slow  # trains a network for one epoch


@pytest.fixture(scope="module")
def count_city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return count_city_with_bundle(tmp_path_factory.mktemp("count-city"))


def test_rebalance_writes_a_plan(count_city, tmp_path, capsys):
    city, bundle = count_city
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("zone_id,vehicles\nZ4,30\n", encoding="utf-8")  # all in the centre
    plan_path = tmp_path / "plan.csv"
    args = ["rebalance", "--model-dir", str(bundle), "--dataset", str(city), "--fleet"]
    args += [str(fleet), "--at", "2024-03-24 06:00", "--steps", "3", "--output", str(plan_path)]
    code, out, err = run(args, capsys)
    assert code == 0, err
    plan = pd.read_csv(plan_path, dtype={"from_zone": str, "to_zone": str})
    assert plan.columns.tolist() == ["from_zone", "to_zone", "vehicles", "distance_km"]
    assert (plan.from_zone == "Z4").all() and plan.vehicles.sum() <= 30
    assert set(plan.to_zone) <= set(ZONES) - {"Z4"}
    assert "vehicles moved" in out and "empty km" in out and "solver" in out

    # the same plan from the library: forecasts issued at 06:00 cover 07:00-09:00
    model, _ = load_bundle(bundle)
    data = load_dataset(str(city))
    means = forecast_means(model, data, "2024-03-24 06:00", 3)
    assert means.shape == (3, 9) and (means >= 0).all()
    idle = np.zeros(9, np.int64)
    idle[4] = 30
    again = rebalance(model, data, idle, "2024-03-24 06:00", 3)
    assert again.vehicles_moved == plan.vehicles.sum()
    thrifty = rebalance(model, data, idle, "2024-03-24 06:00", 3, value_km=1.5)
    assert thrifty.vehicles_moved < again.vehicles_moved


@pytest.mark.parametrize(
    ("fleet_text", "options", "message"),
    [
        ("zone_id,vehicles\nZ99,3\n", [], "row 2: unknown zone 'Z99'"),
        ("zone_id,vehicles\nZ1,-3\n", [], "row 2: vehicles '-3' must be a whole number ≥ 0"),
        ("zone_id,vehicles\nZ1,2.5\n", [], "vehicles '2.5' must be a whole number"),
        ("zone_id,vehicles\nZ1,1\nZ1,2\n", [], "row 3: zone 'Z1' is listed twice"),
        ("zone,count\nZ1,1\n", [], "lacks the column(s) zone_id, vehicles"),
        ("zone_id,vehicles\n", ["--steps", "7"], "steps 7 must lie in 1…6"),
        ("zone_id,vehicles\n", ["--quantile", "1"], "quantile 1.0 must lie strictly between"),
        ("zone_id,vehicles\nZ4,3\n", ["--value-km", "0"], "value_km 0.0 must be > 0"),
        ("zone_id,vehicles\n", ["--at", "2030-01-01 00:00"], "is not a time step of grid-city"),
    ],
)
def test_rebalance_user_errors(count_city, tmp_path, capsys, fleet_text, options, message):
    city, bundle = count_city
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(fleet_text, encoding="utf-8")
    args = ["rebalance", "--model-dir", str(bundle), "--dataset", str(city), "--fleet"]
    args += [str(fleet), "--output", str(tmp_path / "plan.csv"), *options]
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "plan.csv").exists()


def test_rebalance_refuses_level_data(count_city, los_loop_bundle, tmp_path, capsys):
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("zone_id,vehicles\n", encoding="utf-8")
    args = ["rebalance", "--model-dir", str(los_loop_bundle), "--fleet", str(fleet)]
    args += ["--output", str(tmp_path / "plan.csv")]
    code, _, err = run(args, capsys)
    assert code == 2 and "holds level readings; rebalancing needs departures" in err
