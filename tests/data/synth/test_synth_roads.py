"""`urbanflow datasets synth roads`: corridors, travelling rush hours, incidents, outages.

Checked on the generated speeds against what the generator drew (the network, the rush
profile, the incident and outage tables), on small cities (60 sensors, a few days).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tests.cli_run import run

from urbanflow.data.catalog import load_dataset
from urbanflow.data.synth import SYNTH_KINDS
from urbanflow.data.synth.roads import (
    RoadParameters,
    SyntheticRoads,
    generate_roads,
    plan_roads,
    write_roads,
)
from urbanflow.errors import ConfigError

SMALL = {"sensors": 60, "days": 3}
QUIET = {"incidents_per_sensor_day": 0.0, "outage_share": 0.0}


@pytest.fixture(scope="module")
def roads() -> SyntheticRoads:
    return generate_roads(RoadParameters(**SMALL))


@pytest.fixture(scope="module")
def friday_to_sunday() -> SyntheticRoads:
    """A weekday then a weekend, without incidents or outages."""
    return generate_roads(RoadParameters(**SMALL, **QUIET, start="2026-03-06"))


def test_the_same_seed_gives_the_same_speeds_and_another_seed_others(roads):
    again = generate_roads(RoadParameters(**SMALL))
    np.testing.assert_array_equal(again.readings, roads.readings)
    pd.testing.assert_frame_equal(again.network.edges, roads.network.edges)
    other = generate_roads(RoadParameters(**SMALL, seed=1))
    assert not np.array_equal(other.readings, roads.readings, equal_nan=True)
    assert roads.readings.dtype == np.float32
    assert roads.readings.shape == (3 * 288, 60)


def test_the_graph_follows_the_corridors_downstream_and_is_connected(roads):
    network = roads.network
    edges = network.edges
    along = edges[edges["link"] == "corridor"]
    # every sensor but the last of its corridor links to the next one, downstream
    last = np.r_[network.corridor[1:] != network.corridor[:-1], True]
    np.testing.assert_array_equal(np.sort(along["source"]), np.flatnonzero(~last))
    np.testing.assert_array_equal(along["target"], along["source"] + 1)
    source, target = along["source"].to_numpy(), along["target"].to_numpy()
    assert (network.to_downstream_km[source] > network.to_downstream_km[target]).all()
    assert (network.corridor[source] == network.corridor[target]).all()
    assert along["distance_m"].between(300, 700).all()  # about every 500 m
    junction = edges[edges["link"] == "junction"]
    assert len(junction) >= 2
    assert (network.corridor[junction["source"]] != network.corridor[junction["target"]]).all()
    n = len(network.sensor_ids)
    graph = coo_matrix((np.ones(len(edges)), (edges["source"], edges["target"])), shape=(n, n))
    assert connected_components(graph, directed=False)[0] == 1
    # a corridor is a straight-ish line of sensors, not a random cloud
    for corridor in np.unique(network.corridor):
        members = np.flatnonzero(network.corridor == corridor)
        x, y = network.x_km[members], network.y_km[members]
        travelled = np.hypot(np.diff(x), np.diff(y)).sum()
        assert np.hypot(x[-1] - x[0], y[-1] - y[0]) > 0.9 * travelled


def relative_speed(roads: SyntheticRoads) -> np.ndarray:
    return roads.readings / roads.network.free_kmh[None, :].astype(np.float32)


def test_weekday_rush_hours_dip_at_the_right_hours_and_weekends_less(friday_to_sunday):
    relative = relative_speed(friday_to_sunday)
    local = friday_to_sunday.timestamps.tz_localize(None)
    hour, weekday = local.hour, local.day_of_week < 5

    def mean(hours, on_weekday):
        return float(relative[np.isin(hour, hours) & (weekday == on_weekday)].mean())

    night = mean([1, 2, 3], True)
    morning, evening = mean([7, 8], True), mean([17, 18], True)
    assert night > 0.95
    assert night - morning > 0.15 and night - evening > 0.15
    assert mean([12], True) > morning + 0.1  # between the peaks speeds recover
    weekend_morning, weekend_evening = mean([7, 8], False), mean([17, 18], False)
    assert night - weekend_morning < 0.5 * (night - morning)
    assert night - weekend_evening < 0.5 * (night - evening)


def test_congestion_reaches_upstream_sensors_later():
    """The time of the morning minimum grows with the distance to the corridor's end."""
    parameters = RoadParameters(**SMALL, **QUIET, noise_kmh=0.0)
    roads = generate_roads(parameters)
    network = roads.network
    hours = roads.timestamps.tz_localize(None)
    morning = np.flatnonzero((hours.day == 2) & (hours.hour >= 5) & (hours.hour < 12))
    lowest = hours[morning[np.argmin(roads.readings[morning], axis=0)]]
    minimum_hour = np.asarray(lowest.hour + lowest.minute / 60.0)
    for corridor in np.unique(network.corridor):
        members = np.flatnonzero(network.corridor == corridor)
        downstream, upstream = members[-1], members[0]
        delay = network.to_downstream_km[upstream] / parameters.wave_kmh
        later = minimum_hour[upstream] - minimum_hour[downstream]
        assert later == pytest.approx(delay, abs=0.15)
        assert later > 0.25
        assert np.corrcoef(network.to_downstream_km[members], minimum_hour[members])[0, 1] > 0.9


def test_congestion_travels_upstream_with_noise_too(friday_to_sunday):
    """Averaged over a third of a corridor, upstream sensors bottom out later."""
    network = friday_to_sunday.network
    hours = friday_to_sunday.timestamps.tz_localize(None)
    morning = np.flatnonzero((hours.day == 6) & (hours.hour >= 5) & (hours.hour < 12))
    lowest = hours[morning[np.argmin(friday_to_sunday.readings[morning], axis=0)]]
    minimum_hour = np.asarray(lowest.hour + lowest.minute / 60.0)
    for corridor in np.unique(network.corridor):
        members = np.flatnonzero(network.corridor == corridor)
        third = max(1, len(members) // 3)
        assert minimum_hour[members[:third]].mean() > minimum_hour[members[-third:]].mean()


def test_incidents_lower_the_speed_at_the_sensor_then_upstream():
    base = generate_roads(RoadParameters(**SMALL, outage_share=0.0, incidents_per_sensor_day=0))
    hit = generate_roads(RoadParameters(**SMALL, outage_share=0.0, incidents_per_sensor_day=0.2))
    incidents = hit.incidents
    assert incidents["origin"].nunique() >= 10
    assert incidents["hop"].max() >= 1
    affected = np.zeros(hit.readings.shape, dtype=bool)
    for row in incidents.itertuples():
        affected[row.start_step : row.start_step + row.steps, row.sensor] = True
    np.testing.assert_array_equal(hit.readings[~affected], base.readings[~affected])
    upstream = hit.network.upstream
    steps = len(hit.timestamps)
    for _, group in incidents.groupby("origin"):
        first, *rest = group.itertuples()
        window = slice(first.start_step, first.start_step + first.steps)
        assert (
            hit.readings[window, first.sensor].mean() < base.readings[window, first.sensor].mean()
        )
        if rest and rest[0].start_step < steps:
            second = rest[0]
            assert second.sensor == upstream[first.sensor] and second.hop == 1
            assert second.start_step >= first.start_step
            assert second.severity < first.severity
            later = slice(second.start_step, second.start_step + second.steps)
            neighbour = second.sensor
            assert hit.readings[later, neighbour].mean() < base.readings[later, neighbour].mean()
    minutes = (incidents[incidents["hop"] == 0]["steps"] * 5).to_numpy()
    assert minutes.min() >= 15 and minutes.max() <= 95


def test_outages_blank_runs_of_one_to_six_hours():
    roads = generate_roads(RoadParameters(**SMALL, outage_share=0.05))
    outages = roads.outages
    assert len(outages) >= 3
    assert outages["steps"].between(12, 72).all()  # 1 to 6 hours of 5 minutes
    expected = np.zeros(roads.readings.shape, dtype=bool)
    for row in outages.itertuples():
        expected[row.start_step : row.start_step + row.steps, row.sensor] = True
    np.testing.assert_array_equal(np.isnan(roads.readings), expected)
    clean = generate_roads(RoadParameters(**SMALL, outage_share=0.0))
    assert not np.isnan(clean.readings).any()


def test_the_folder_loads_with_its_graph_and_labels(tmp_path, roads):
    result = SYNTH_KINDS["roads"](tmp_path / "city", RoadParameters(**SMALL))
    assert result.rows == 3 * 288
    dataset = load_dataset(tmp_path / "city")
    assert dataset.num_sensors == 60 and dataset.num_steps == 3 * 288
    assert dataset.kind == "level"
    meta = dataset.metadata
    assert (meta.quantity, meta.unit, meta.frequency) == ("speed", "km/h", "5min")
    assert meta.source.startswith("synthetic, generated by urbanflow datasets synth roads")
    np.testing.assert_array_equal(dataset.readings[..., 0], roads.readings)
    edges = pd.read_csv(tmp_path / "city" / "edges.csv")
    assert list(edges.columns) == ["source", "target", "distance_m"]
    assert dataset.graph.num_edges == len(edges)
    incidents = pd.read_csv(tmp_path / "city" / "incidents.csv")
    assert len(incidents) == len(roads.incidents)
    outages = pd.read_csv(tmp_path / "city" / "outages.csv")
    assert len(outages) == len(roads.outages)


def test_the_written_readings_are_the_same_bytes_for_the_same_seed(tmp_path):
    for name in ("a", "b"):
        write_roads(tmp_path / name, RoadParameters(sensors=20, days=2))
    for file in ("readings.parquet", "sensors.csv", "edges.csv", "dataset.toml"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_the_clock_change_day_keeps_local_rush_hours():
    """2026-03-29 has 23 hours in Berlin: 276 steps, the rush still at local 07:45."""
    plan = plan_roads(RoadParameters(sensors=4, days=1, start="2026-03-29", **QUIET))
    assert len(plan.timestamps) == 276
    assert plan.hour[-1] == pytest.approx(23 + 55 / 60)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sensors": 1}, "--sensors is 1"),
        ({"days": 0}, "--days is 0"),
        ({"frequency": "7min"}, "does not divide a day"),
        ({"frequency": "30s"}, "does not divide a day"),
        ({"outage_share": 2.0}, "outage_share"),
    ],
)
def test_bad_parameters_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        RoadParameters(**options)


def test_cli_writes_the_folder_and_refuses_bad_options(tmp_path, capsys):
    out = tmp_path / "roads"
    args = ["datasets", "synth", "roads", "--out", str(out), "--sensors", "30", "--days", "1"]
    code, printed, _ = run([*args, "--frequency", "15min", "--seed", "3"], capsys)
    assert code in (0, None)
    assert printed.strip().count("\n") == 0 and "30 sensors" in printed and "seed 3" in printed
    dataset = load_dataset(out)
    assert dataset.num_sensors == 30 and dataset.num_steps == 96
    code, _, err = run(args, capsys)
    assert code == 2 and "is not empty; pass --force" in err
    assert err.strip().count("\n") == 0
    for bad, message in (
        (["--sensors", "1"], "--sensors is 1"),
        (["--days", "0"], "--days is 0"),
        (["--frequency", "7min"], "does not divide a day"),
        (["--frequency", "often"], "not understood"),
    ):
        code, _, err = run([*args[:4], str(tmp_path / "new"), *bad], capsys)
        assert code == 2, bad
        assert message in err and err.strip().count("\n") == 0, err
        assert not (tmp_path / "new").exists()
