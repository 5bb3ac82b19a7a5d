"""The fleet simulator on cities small enough to follow by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from urbanflow.decisions.simulation import (
    FleetCity,
    destination_table,
    hours_of_week,
    k_step_targets,
    place_fleet,
    simulate,
    smallest_fleet,
)
from urbanflow.errors import DataError
from urbanflow.graph.builders import haversine_m

KM = haversine_m(0.0, 0.0, 0.0, 0.01) / 1000  # a to b
SWAP = np.broadcast_to(np.array([[0.0, 1.0], [1.0, 0.0]]), (168, 2, 2))  # a -> b, b -> a


def two_zones(requests, destinations=SWAP, step_minutes=30.0) -> FleetCity:
    requests = np.asarray(requests, dtype=np.int64)
    return FleetCity(
        zone_ids=("a", "b"),
        latitude=np.zeros(2),
        longitude=np.array([0.0, 0.01]),
        requests=requests,
        hour_of_week=np.zeros(len(requests), np.int64),
        destinations=destinations,
        step_minutes=step_minutes,
    )


def test_a_vehicle_follows_its_trips():
    # a -> b takes one step at 25 km/h (1.1 km in 30 min, rounded up): one vehicle serves all
    city = two_zones([[1, 0], [0, 1], [1, 0]])
    result = simulate(city, np.array([1, 0]), None, seed=0)
    assert (result.requests, result.unmet, result.empty_km) == (3, 0, 0.0)
    # starting in b, the first request is lost; the vehicle serves b at step 1, then a at step 2
    assert simulate(city, np.array([0, 1]), None, seed=0).unmet == 1


def test_travel_steps_round_up_and_take_at_least_one_step():
    city = two_zones([[0, 0]], step_minutes=1.0)  # 1.1 km at 25 km/h: 2.7 min
    assert city.travel_steps().tolist() == [[1, 3], [3, 1]]
    assert city.travel_steps(speed_kmh=1000).tolist() == [[1, 1], [1, 1]]


def test_rebalancing_moves_vehicles_before_the_demand():
    city = two_zones([[0, 0], [2, 0]])
    targets = np.array([[2, 0], [0, 0]])  # at step 0 the policy wants 2 vehicles in a
    moved = simulate(city, np.array([0, 2]), targets, seed=0)
    assert (moved.unmet, moved.vehicles_moved) == (0, 2)
    assert moved.empty_km == pytest.approx(2 * KM)
    assert moved.solver_seconds.shape == (2,)
    assert simulate(city, np.array([0, 2]), None, seed=0).unmet == 2
    # moved vehicles are on the road for a step: they cannot serve the step they leave in
    late = simulate(two_zones([[2, 0]]), np.array([0, 2]), np.array([[2, 0]]), seed=0)
    assert late.unmet == 2 and late.vehicles_moved == 2


def test_vehicles_arriving_soon_count_towards_the_target():
    # steps of a minute: a -> b takes 3 steps. The vehicle leaving a at step 0 reaches b at
    # step 3, in time for b's target set at step 1 over the next 3 steps
    city = two_zones([[1, 0], [0, 0], [0, 0], [0, 1]], step_minutes=1.0)
    targets = np.array([[0, 0], [0, 1], [0, 0], [0, 0]])
    counted = simulate(city, np.array([2, 0]), targets, seed=0, incoming_steps=2)
    assert counted.vehicles_moved == 0 and counted.unmet == 0
    # without counting it, the spare vehicle of a drives to b too
    assert simulate(city, np.array([2, 0]), targets, seed=0).vehicles_moved == 1


def test_destinations_are_drawn_from_the_od_row():
    split = np.broadcast_to(np.array([[0.5, 0.5], [0.5, 0.5]]), (168, 2, 2))
    city = two_zones([[100, 0], [0, 0], [0, 100]], destinations=split)
    result = simulate(city, np.array([100, 0]), None, seed=3)
    # about half of the 100 vehicles end in b, where the 100 requests of step 2 wait
    expected_in_b = np.random.default_rng(3).multinomial(100, [0.5, 0.5])[1]
    assert result.unmet == 100 - expected_in_b


def test_destination_table_fallbacks():
    od = pd.DataFrame(
        {
            "origin_zone": ["a", "a", "a", "x"],
            "destination_zone": ["b", "a", "b", "a"],
            "hour_of_week": [8, 8, 9, 8],
            "trips": [3, 1, 2, 5],
        }
    )
    table = destination_table(od, ("a", "b"))
    assert table.shape == (168, 2, 2)
    assert table[8, 0].tolist() == [0.25, 0.75]
    assert table[9, 0].tolist() == [0.0, 1.0]
    assert table[0, 0].tolist() == pytest.approx([1 / 6, 5 / 6])  # a's trips of every hour
    assert table[8, 1].tolist() == [0.0, 1.0]  # b has no trip: vehicles stay
    with pytest.raises(DataError, match="lacks the column"):
        destination_table(od.drop(columns="trips"), ("a", "b"))


def test_place_fleet_and_smallest_fleet():
    assert place_fleet(10, np.array([1.0, 1.0, 2.0])).tolist() == [3, 2, 5]
    assert place_fleet(0, np.array([1.0, 2.0])).tolist() == [0, 0]
    # 4 requests in a at every step; trips to b never come back in time
    stay = np.broadcast_to(np.eye(2), (168, 2, 2))
    city = two_zones([[4, 0]] * 5, destinations=stay)
    # vehicles return to a after one step: a fleet of 4 in a serves everything
    assert smallest_fleet(city, np.array([1.0, 0.0]), 0.0, seed=0) == 4
    assert smallest_fleet(city, np.array([1.0, 0.0]), 0.5, seed=0) == 2


def test_k_step_targets_and_hours_of_week():
    forecasts = np.array([[[1.0, 0.0], [2.0, 0.5]], [[0.2, 0.2], [0.2, 0.2]]])  # [T=2 H=2 n=2]
    targets = k_step_targets(forecasts, 2, 0.7)
    assert targets[0].tolist() == [stats.poisson.ppf(0.7, 3.0), stats.poisson.ppf(0.7, 0.5)]
    assert targets[1].tolist() == [stats.poisson.ppf(0.7, 0.4)] * 2
    assert k_step_targets(forecasts, 1, 0.7)[0, 1] == 0
    stamps = pd.DatetimeIndex(["2026-03-02 00:30", "2026-03-08 23:00"], tz="Europe/Berlin")
    assert hours_of_week(stamps).tolist() == [0, 167]
