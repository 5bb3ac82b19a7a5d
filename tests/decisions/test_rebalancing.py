"""Fleet rebalancing: the LP on cases solvable by hand, the K-step demand quantile, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from urbanflow.decisions.demand import check_quantile, k_step_demand
from urbanflow.decisions.rebalancing import (
    PENALTY_PER_KM,
    RebalancingProblem,
    check_steps,
    idle_vehicles,
    plan_from_forecast,
    plan_moves,
    read_fleet,
)
from urbanflow.errors import ConfigError, DataError
from urbanflow.graph.builders import haversine_m

KM_PER_0_01_DEG = haversine_m(0.0, 0.0, 0.0, 0.01) / 1000  # ~1.112 km on the equator

ZONES = ("a", "b", "c")
LAT = np.zeros(3)
LON = np.array([0.0, 0.01, 0.02])  # a, b, c on the equator, ~1.112 km apart


def problem(idle, demand, **options) -> RebalancingProblem:
    return RebalancingProblem(ZONES, LAT, LON, np.array(idle), np.array(demand), **options)


def moves(plan) -> dict[tuple[str, str], int]:
    table = plan.table()
    rows = zip(table.from_zone, table.to_zone, table.vehicles, strict=True)
    return {(f, t): int(v) for f, t, v in rows}


def test_three_zones_by_hand():
    # b holds 2 idle vehicles; a wants 1 and c wants 2: b sends one each way (1.112 km each),
    # c stays 1 short.
    plan = plan_moves(problem([0, 2, 0], [1, 0, 2]))
    assert moves(plan) == {("b", "a"): 1, ("b", "c"): 1}
    assert plan.shortfall.tolist() == [0, 0, 1]
    assert plan.expected_unmet.tolist() == [0.0, 0.0, 1.0]  # no distribution: the shortfall
    assert plan.empty_km == pytest.approx(2 * KM_PER_0_01_DEG)
    assert plan.vehicles_moved == 2
    assert plan.after.tolist() == [1, 0, 1]
    assert plan.solver_seconds >= 0


def test_nearest_spare_vehicle_is_sent():
    # both a and b could cover c; b is nearer (1.112 km against 2.224 km)
    plan = plan_moves(problem([1, 1, 0], [0, 0, 1]))
    assert moves(plan) == {("b", "c"): 1}
    assert plan.empty_km == pytest.approx(KM_PER_0_01_DEG)


def test_a_zone_keeps_what_it_needs():
    # a needs its own vehicle: moving it to c would only move the shortfall
    plan = plan_moves(problem([1, 0, 0], [1, 0, 1]))
    assert moves(plan) == {}
    assert plan.shortfall.tolist() == [0, 0, 1]


def test_no_moves_when_idle_covers_demand():
    plan = plan_moves(problem([3, 2, 5], [3, 1, 0]))
    assert moves(plan) == {}
    assert plan.empty_km == 0.0
    assert plan.shortfall.tolist() == [0, 0, 0]
    assert plan.table().columns.tolist() == ["from_zone", "to_zone", "vehicles", "distance_km"]


def test_covering_demand_beats_any_distance():
    # a vehicle 2.2 km away still goes: the penalty is 10 × the longest move + 1
    plan = plan_moves(problem([4, 0, 0], [0, 0, 3]))
    assert moves(plan) == {("a", "c"): 3}
    assert PENALTY_PER_KM * (2 * KM_PER_0_01_DEG + 1) > 2 * KM_PER_0_01_DEG


def test_moves_only_to_the_nearest_zones():
    # 12 zones on a line; zone 0 has the only vehicles, zone 11 (11th nearest) wants one
    n = 12
    ids = tuple(f"z{i}" for i in range(n))
    lon = np.arange(n) * 0.01
    idle = np.zeros(n, np.int64)
    idle[0] = 5
    demand = np.zeros(n, np.int64)
    demand[11] = 1
    demand[10] = 1
    plan = plan_moves(RebalancingProblem(ids, np.zeros(n), lon, idle, demand))
    assert moves(plan) == {("z0", "z10"): 1}  # z10 is the 10th nearest, z11 out of reach
    assert plan.shortfall[11] == 1
    wider = plan_moves(RebalancingProblem(ids, np.zeros(n), lon, idle, demand, neighbours=11))
    assert moves(wider) == {("z0", "z10"): 1, ("z0", "z11"): 1}


def test_relay_through_a_balanced_zone():
    # with one neighbour each, a reaches only b and b only c: b sends its vehicle on to c and
    # a refills b
    lon = np.array([0.0, 0.01, 0.019])  # b is nearer c than a
    plan = plan_moves(RebalancingProblem(ZONES, LAT, lon, [1, 1, 0], [0, 1, 1], neighbours=1))
    assert moves(plan) == {("a", "b"): 1, ("b", "c"): 1}
    assert plan.shortfall.tolist() == [0, 0, 0]


def test_vehicles_on_their_way_count_but_do_not_move():
    # c wants 2 and one vehicle is on its way there: a sends one, not two
    plan = plan_moves(problem([3, 0, 0], [0, 0, 2], incoming=np.array([0, 0, 1])))
    assert moves(plan) == {("a", "c"): 1}
    assert plan.shortfall.tolist() == [0, 0, 0]
    # b's target is covered by its incoming vehicle, so both of its idle ones are spare
    plan = plan_moves(problem([0, 2, 0], [0, 1, 2], incoming=np.array([0, 1, 0])))
    assert moves(plan) == {("b", "c"): 2}
    with pytest.raises(DataError, match="incoming vehicles must be whole numbers"):
        problem([0, 0, 0], [0, 0, 0], incoming=np.array([0, -1, 0]))


def test_value_of_a_departure_limits_the_kilometres():
    # c (2.224 km from a) wants 2 vehicles, its K-step departures Poisson(1):
    # P(D ≥ 1) = 0.632, P(D ≥ 2) = 0.264. Worth 5 km a departure, the first vehicle is worth
    # 3.16 km and goes, the second 1.32 km and stays.
    demand = k_step_demand(np.array([[0.0, 0.0, 1.0]]))
    assert demand.at_least(np.array([[1, 1, 1], [2, 2, 2]]))[:, 2].tolist() == pytest.approx(
        [1 - np.exp(-1), 1 - 2 * np.exp(-1)]
    )
    plan = plan_moves(problem([4, 0, 0], [0, 0, 2]), demand, value_km=5.0)
    assert moves(plan) == {("a", "c"): 1}
    assert plan.shortfall.tolist() == [0, 0, 1]
    assert moves(plan_moves(problem([4, 0, 0], [0, 0, 2]), demand, value_km=20.0)) == {
        ("a", "c"): 2
    }
    assert moves(plan_moves(problem([4, 0, 0], [0, 0, 2]), demand, value_km=3.0)) == {}
    # a zone gives up a vehicle only where it is worth more elsewhere: a's second vehicle
    # (P(D_a ≥ 2) = 0.264 of 2 wanted) goes to c, whose first is worth 0.632
    both = k_step_demand(np.array([[1.0, 0.0, 1.0]]))
    plan = plan_moves(problem([2, 0, 0], [2, 0, 2]), both, value_km=10.0)
    assert moves(plan) == {("a", "c"): 1}
    with pytest.raises(ConfigError, match="value_km needs the demand distribution"):
        plan_moves(problem([4, 0, 0], [0, 0, 2]), value_km=5.0)
    with pytest.raises(ConfigError, match=r"value_km -1\.0 must be > 0"):
        plan_moves(problem([4, 0, 0], [0, 0, 2]), demand, value_km=-1.0)


def test_single_zone_and_nothing_idle():
    alone = plan_moves(RebalancingProblem(("a",), [0.0], [0.0], [0], [2]))
    assert alone.shortfall.tolist() == [2]
    assert plan_moves(problem([0, 0, 0], [1, 1, 1])).shortfall.tolist() == [1, 1, 1]


def test_quantile_of_k_step_poisson_sum():
    means = np.array([[1.0, 0.0, 4.0], [2.0, 0.0, 0.5], [0.5, 0.0, -0.2]])  # [K=3, n=3]
    demand = k_step_demand(means)
    assert demand.mean.tolist() == pytest.approx([3.5, 0.0, 4.5])  # a negative mean counts 0
    target = demand.quantile(0.7)
    assert target.tolist() == [stats.poisson.ppf(0.7, 3.5), 0, stats.poisson.ppf(0.7, 4.5)]
    assert target.tolist() == [4, 0, 5]
    # by hand: P(D ≤ 3) = 0.537 < 0.7 ≤ P(D ≤ 4) = 0.725 for D ~ Poisson(3.5)
    cdf = np.cumsum([np.exp(-3.5) * 3.5**d / np.prod(range(1, d + 1)) for d in range(6)])
    assert cdf[3] < 0.7 <= cdf[4]


def test_expected_unmet_poisson():
    demand = k_step_demand(np.array([[2.0, 3.0]]))
    unmet = demand.expected_unmet(np.array([0, 2]))
    d = np.arange(200)
    by_sum = (np.maximum(d - 2, 0) * stats.poisson.pmf(d, 3.0)).sum()
    assert unmet.tolist() == pytest.approx([2.0, by_sum])


def test_negative_binomial_moment_matching():
    # equal steps: size K·r, variance M + M²/(K r)
    demand = k_step_demand(np.array([[2.0], [2.0]]), size=3.0)
    assert demand.size.tolist() == pytest.approx([6.0])
    q = demand.quantile(0.9)[0]
    assert q == stats.nbinom.ppf(0.9, 6.0, 6.0 / 10.0)
    assert q >= k_step_demand(np.array([[2.0], [2.0]])).quantile(0.9)[0]  # wider than Poisson


def test_plan_from_forecast_covers_the_quantile():
    means = np.array([[0.0, 0.0, 1.5], [0.0, 0.0, 1.5]])  # c: Poisson(3), 0.7 quantile 4
    plan = plan_from_forecast(ZONES, LAT, LON, np.array([2, 3, 0]), means, quantile=0.7)
    assert moves(plan) == {("b", "c"): 3, ("a", "c"): 1}
    assert plan.shortfall.tolist() == [0, 0, 0]
    expected = k_step_demand(means).expected_unmet(np.array([1, 0, 4]))
    assert plan.expected_unmet.tolist() == pytest.approx(expected.tolist())


# --- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle", "demand", "message"),
    [
        ([1, -1, 0], [0, 0, 0], "idle vehicles must be whole numbers ≥ 0; zone 1"),
        ([1, 0.5, 0], [0, 0, 0], "idle vehicles must be whole numbers"),
        ([1, np.nan, 0], [0, 0, 0], "idle vehicles must be whole numbers"),
        ([1, 0], [0, 0, 0], "idle vehicles must give one count per zone (3)"),
        ([1, 0, 0], [0, -2, 0], "demand targets must be whole numbers"),
    ],
)
def test_bad_counts(idle, demand, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RebalancingProblem(ZONES, LAT, LON, np.array(idle), np.array(demand))


def test_bad_zones_and_options():
    with pytest.raises(DataError, match="at least one zone"):
        RebalancingProblem((), [], [], [], [])
    with pytest.raises(DataError, match="unique"):
        RebalancingProblem(("a", "a", "c"), LAT, LON, [0, 0, 0], [0, 0, 0])
    with pytest.raises(DataError, match="finite centroid latitude"):
        RebalancingProblem(ZONES, [0, np.nan, 0], LON, [0, 0, 0], [0, 0, 0])
    with pytest.raises(DataError, match="finite centroid longitude"):
        RebalancingProblem(ZONES, LAT, [0, 1], [0, 0, 0], [0, 0, 0])
    with pytest.raises(ConfigError, match="neighbours 0 must be ≥ 1"):
        problem([0, 0, 0], [0, 0, 0], neighbours=0)
    for q in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="strictly between 0 and 1"):
            check_quantile(q)
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        k_step_demand(np.ones((2, 3))).quantile(1.0)
    with pytest.raises(ConfigError, match=r"steps 13 must lie in 1…12"):
        check_steps(13, 12)
    with pytest.raises(ConfigError, match=r"steps 0 must lie in 1…12"):
        check_steps(0, 12)
    with pytest.raises(DataError, match=r"\[K n\]"):
        k_step_demand(np.ones(3))
    with pytest.raises(DataError, match="finite"):
        k_step_demand(np.array([[1.0, np.nan]]))
    with pytest.raises(ConfigError, match="size 0"):
        k_step_demand(np.ones((1, 2)), size=0.0)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_fleet(tmp_path: Path):
    idle = read_fleet(write(tmp_path / "f.csv", "zone_id,vehicles\nc,4\na, 2\n"), ZONES)
    assert idle.tolist() == [2, 0, 4]  # b not listed: 0
    assert read_fleet(write(tmp_path / "e.csv", "zone_id,vehicles\n"), ZONES).tolist() == [0] * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone_id,vehicles\na,1\nx,2\n", "row 3: unknown zone 'x'; use one of the model's zones"),
        ("zone_id,vehicles\na,-1\n", r"row 2: vehicles '-1' must be a whole number ≥ 0"),
        ("zone_id,vehicles\na,1.5\n", r"row 2: vehicles '1.5' must be a whole number"),
        ("zone_id,vehicles\na,two\n", r"row 2: vehicles 'two' must be a whole number"),
        ("zone_id,vehicles\na,\n", r"row 2: vehicles '' must be a whole number"),
        ("zone_id,vehicles\na,1\na,2\n", r"row 3: zone 'a' is listed twice \(also in .* row 2\)"),
        ("zone,vehicles\na,1\n", "lacks the column\\(s\\) zone_id; its header must be"),
        ("zone_id\na\n", "lacks the column\\(s\\) vehicles"),
        ("", "is not a CSV file zone_id,vehicles"),
    ],
)
def test_bad_fleet_files(tmp_path: Path, text: str, message: str):
    with pytest.raises(DataError, match=message):
        read_fleet(write(tmp_path / "fleet.csv", text), ZONES)


def test_missing_fleet_file(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_fleet(tmp_path / "none.csv", ZONES)


def test_idle_vehicles_from_pairs():
    assert idle_vehicles({"a": 1, "c": 2}.items(), ZONES).tolist() == [1, 0, 2]
    for pairs, message in [
        ({"q": 1}, "zone 'q': unknown zone"),
        ({"a": -1}, "must be a whole number"),
        ({"a": 1.5}, "must be a whole number"),
        ({"a": True}, "must be a whole number"),
        ({"a": float("inf")}, "must be a whole number"),
    ]:
        with pytest.raises(DataError, match=message):
            idle_vehicles(pairs.items(), ZONES)


def test_plan_table_sorted_and_rounded():
    table = plan_moves(problem([0, 2, 0], [1, 0, 2])).table()
    assert isinstance(table, pd.DataFrame)
    assert table.distance_km.tolist() == [round(KM_PER_0_01_DEG, 3)] * 2
