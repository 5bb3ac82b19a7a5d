import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.catalog import (
    EMBEDDED,
    dataset_names,
    describe,
    describe_embedded,
    embedded_folder,
    load_dataset,
)
from urbanflow.data.dataset import DatasetMetadata
from urbanflow.errors import DataError, UnknownNameError

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def los_loop():
    return load_dataset("los-loop")


def test_names_list_embedded_and_downloadable():
    assert dataset_names()[:2] == ["los-loop", "synthetic-demand"]
    assert {"metr-la", "pems-bay", "pems04", "pems08"} <= set(dataset_names())


def test_tgcn_release_folder_reads_like_the_embedded_copy(los_loop, tmp_path):
    # write Los-loop back out in the T-GCN release layout and read it by path
    speeds = pd.DataFrame(los_loop.readings[..., 0], columns=list(los_loop.sensors.ids))
    speeds.to_csv(tmp_path / "los_speed.csv", index=False)
    pd.DataFrame(los_loop.graph.to_dense()).to_csv(
        tmp_path / "los_adj.csv", index=False, header=False
    )
    copy = load_dataset(tmp_path)
    np.testing.assert_array_equal(copy.readings, los_loop.readings)
    assert (copy.timestamps == los_loop.timestamps).all()
    np.testing.assert_allclose(copy.graph.to_dense(), los_loop.graph.to_dense(), rtol=1e-6)


def test_downloaded_pems08_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("URBANFLOW_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="urbanflow datasets download pems08"):
        load_dataset("pems08")
    folder = tmp_path / "datasets" / "pems08"
    folder.mkdir(parents=True)
    data = np.random.default_rng(0).uniform(0, 300, size=(40, 4, 3)).astype(np.float32)
    np.savez(folder / "PEMS08.npz", data=data)
    (folder / "PEMS08.csv").write_text("from,to,cost\n0,1,500.0\n1,2,800.0\n2,3,650.0\n")
    dataset = load_dataset("pems08")
    assert dataset.readings.shape == (40, 4, 3)
    assert dataset.metadata.channels == ("flow", "occupancy", "speed")
    assert str(dataset.timestamps[0].date()) == "2016-07-01"
    assert dataset.graph.num_edges > 0


def test_downloaded_metr_la_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("URBANFLOW_CACHE", str(tmp_path))
    folder = tmp_path / "datasets" / "metr-la"
    folder.mkdir(parents=True)
    ids = (FIXTURES / "metr-la-graph" / "graph_sensor_ids.txt").read_text().strip().split(",")
    frame = pd.DataFrame(
        np.full((24, len(ids)), 55.0),
        columns=[int(i) for i in ids],
        index=pd.date_range("2012-03-01", periods=24, freq="5min"),
    )
    frame.iloc[3, 5] = 0.0  # 0 = detector failed
    frame.to_hdf(folder / "metr-la.h5", key="df")
    shutil.copy(FIXTURES / "metr-la-graph" / "adj_mx.pkl", folder / "adj_mx.pkl")
    shutil.copy(
        FIXTURES / "metr-la-graph" / "graph_sensor_locations.csv",
        folder / "graph_sensor_locations.csv",
    )
    dataset = load_dataset("metr-la")
    assert dataset.readings.shape == (24, 207, 1)
    assert np.isnan(dataset.readings[3, 5, 0])
    assert dataset.metadata.null_value == 0.0
    assert dataset.sensors.has_coordinates
    assert dataset.graph.num_edges == 1722


def test_unknown_names_and_layouts(tmp_path):
    with pytest.raises(UnknownNameError, match="los-loop"):
        load_dataset("no-such-dataset")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a layout"):
        load_dataset(tmp_path)
    np.savez(tmp_path / "mine.npz", data=np.zeros((5, 2, 1)))
    with pytest.raises(DataError, match="start time"):
        load_dataset(tmp_path / "mine.npz")


@pytest.fixture(scope="module")
def demand_city():
    return load_dataset("synthetic-demand")


def test_synthetic_demand_city_is_a_count_city_of_many_zeros(demand_city):
    assert demand_city.metadata.name == "synthetic-demand"
    assert demand_city.kind == "count" and demand_city.kind_source == "declared"
    assert demand_city.metadata.frequency == "15min"
    assert "synthetic" in demand_city.metadata.source
    assert "synthetic" in demand_city.metadata.licence
    values = demand_city.readings[..., 0]
    assert not np.isnan(values).any()  # from-trips writes every step of every zone
    assert (values >= 0).all() and (values == np.round(values)).all()
    assert 40 <= demand_city.num_sensors <= 80
    assert demand_city.num_steps == 28 * 96 - 4  # four weeks of quarter hours, less the DST hour
    assert 0.5 < (values == 0).mean() < 0.85  # sparse, as taxi or bike-share demand is
    assert demand_city.graph.num_edges > 0


def test_synthetic_demand_city_ships_its_od_table(demand_city):
    od = pd.read_parquet(embedded_folder("synthetic-demand") / "od.parquet")
    assert list(od.columns) == ["origin_zone", "destination_zone", "hour_of_week", "trips"]
    zones = set(demand_city.sensors.ids)
    assert set(od["origin_zone"]) <= zones and set(od["destination_zone"]) <= zones
    assert od["hour_of_week"].between(0, 167).all() and (od["trips"] > 0).all()
    # every trip departs once: the OD table adds up to the departures counted
    assert od["trips"].sum() == demand_city.readings.sum()


def test_embedded_sets_are_small_and_described_by_their_own_toml():
    total = sum(f.stat().st_size for f in embedded_folder("synthetic-demand").iterdir())
    assert total < 1_000_000
    assert describe_embedded("los-loop") == (
        "speed (mph), level, 207 sensors, every 5min, 2012-03-01 to 2012-03-07 (7 days)"
    )
    assert describe_embedded("synthetic-demand").startswith("synthetic departures (trips), count")
    assert all(describe_embedded(name) for name in EMBEDDED)


def test_description_counts_calendar_days_across_a_clock_change():
    metadata = DatasetMetadata(name="x", quantity="trips", frequency="15min", source="mine")
    berlin = "Europe/Berlin"
    first = pd.Timestamp("2026-03-02 00:00", tz=berlin)
    last = pd.Timestamp("2026-03-30 00:30", tz=berlin)  # after the spring clock change
    text = describe(replace(metadata, timezone=berlin), "count", 3, first, last)
    assert text == "trips, count, 3 sensors, every 15min, 2026-03-02 to 2026-03-30 (29 days)"
    synthetic = replace(metadata, timezone=berlin, source="Synthetic, seed 1")
    assert describe(synthetic, "count", 3, first, last).startswith("synthetic trips, count")
