import json

import numpy as np
import pandas as pd
import pytest
import torch

from urbanflow import CityDataset, DatasetMetadata, SensorGraph, Sensors
from urbanflow.errors import DataError
from urbanflow.evaluation.evaluate import evaluate
from urbanflow.evaluation.intervals import calibrate_on_validation
from urbanflow.evaluation.protocol import default_plan
from urbanflow.models import forecast
from urbanflow.models.bundle import CARD, WEIGHTS, load_bundle, save_bundle
from urbanflow.models.conformal import replay_intervals
from urbanflow.models.forecast import forecast_table, issue_index
from urbanflow.models.registry import make_model
from urbanflow.training.tensors import SeriesTensors


def small_city(steps: int = 400, sensors: int = 5) -> CityDataset:
    rng = np.random.default_rng(1)
    hours = np.arange(steps)[:, None]
    values = (
        40
        + 10 * np.sin(2 * np.pi * hours / 24 + np.arange(sensors))
        + rng.normal(0, 1, (steps, sensors))
    )
    values[50:60, 2] = np.nan
    ring = np.roll(np.eye(sensors, dtype=np.float32), 1, axis=1) + np.eye(sensors, dtype=np.float32)
    return CityDataset(
        readings=values[..., None].astype(np.float32),
        timestamps=pd.date_range("2024-03-01", periods=steps, freq="1h", tz="Europe/Paris"),
        sensors=Sensors(
            tuple(f"s{i}" for i in range(sensors)),
            np.full(sensors, 48.8),
            np.linspace(2.3, 2.4, sensors),
        ),
        graph=SensorGraph.from_dense(ring),
        metadata=DatasetMetadata(
            name="small", quantity="speed", unit="km/h", frequency="1h", timezone="Europe/Paris"
        ),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    city = small_city()
    plan = default_plan(city.num_steps, 12, (1, 6))
    model = make_model("stid", input_len=12, horizon=6, max_epochs=3, batch_size=64)
    result = evaluate(model, city, plan, "stid")
    folder = save_bundle(model, "stid", city, result, tmp_path_factory.mktemp("bundle"))
    return city, model, result, folder


def test_bundle_round_trip_gives_identical_forecasts(trained):
    city, model, _, folder = trained
    loaded, card = load_bundle(folder)
    times = np.arange(12, city.num_steps + 1)
    np.testing.assert_array_equal(loaded.predict(city, times), model.predict(city, times))
    assert card["model"] == "stid"
    assert card["sensor_ids"] == list(city.sensors.ids)
    assert card["dataset"]["fingerprint"] == city.fingerprint
    assert card["protocol"] == "default"
    assert card["metrics"]["test_samples"] > 0 and card["metrics"]["validation"]["mae"] is not None
    assert card["hyperparameters"]["max_epochs"] == 3
    assert card["training"]["members"][0]["epochs_run"] <= 3
    assert not any(p.suffix == ".pkl" for p in folder.iterdir())


def test_bad_bundles_are_clear_errors(trained, tmp_path):
    _, _, _, folder = trained
    with pytest.raises(DataError, match="no such model folder"):
        load_bundle(tmp_path / "nowhere")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / CARD).write_text((folder / CARD).read_text())
    with pytest.raises(DataError, match=r"weights\.safetensors: missing"):
        load_bundle(copy)
    (copy / WEIGHTS).write_bytes(b"not safetensors at all")
    with pytest.raises(DataError, match="corrupt weights"):
        load_bundle(copy)
    (copy / CARD).write_text("{broken")
    with pytest.raises(DataError, match="not valid JSON"):
        load_bundle(copy)
    card = json.loads((folder / CARD).read_text())
    card["hyperparameters"]["network_options"] = {"embed_dim": 8}
    (copy / CARD).write_text(json.dumps(card))
    (copy / WEIGHTS).write_bytes((folder / WEIGHTS).read_bytes())
    with pytest.raises(DataError, match="do not fit"):
        load_bundle(copy)


def test_forecast_table_is_long_and_as_of_the_issue_time(trained):
    city, model, _, _ = trained
    at = issue_index(city, "2024-03-10 08:00", model.input_len)
    table = forecast_table(model, city, np.array([at, at + 1]))
    assert list(table.columns) == [
        "sensor_id",
        "issued_at",
        "target_time",
        "horizon_steps",
        "value",
    ]
    assert len(table) == 2 * 6 * 5
    first = table[table["issued_at"] == city.timestamps[at]]
    assert (
        first["target_time"] - first["issued_at"] == first["horizon_steps"] * pd.Timedelta("1h")
    ).all()
    direct = model.predict(city, np.array([at + 1]))[0]  # inputs end with the reading at `at`
    one = first[(first["sensor_id"] == "s3") & (first["horizon_steps"] == 2)]["value"].item()
    assert one == pytest.approx(direct[1, 3])
    assert str(first["issued_at"].dt.tz) == "Europe/Paris"


def test_issue_time_errors(trained):
    city = trained[0]
    with pytest.raises(DataError, match="not a time step"):
        issue_index(city, "2030-01-01 00:00", 12)
    with pytest.raises(DataError, match="fewer than 12 readings"):
        issue_index(city, "2024-03-01 03:00", 12)
    with pytest.raises(DataError, match="cannot be parsed"):
        issue_index(city, "yesterday-ish", 12)


def test_an_ensemble_averages_its_members_and_round_trips(tmp_path):
    city = small_city()
    plan = default_plan(city.num_steps, 12, (1, 6))
    model = make_model("stid", input_len=12, horizon=6, max_epochs=2, batch_size=64, ensemble=2)
    result = evaluate(model, city, plan, "stid")
    assert len(model.training_reports_) == 2
    times = np.arange(12, 40)
    single = [
        model.scaler_.inverse(
            m(
                *SeriesTensors.build(city, model.scaler_, 6, model.device_).inputs(
                    torch.as_tensor(times), 12
                )
            )
        )
        .detach()
        .numpy()
        for m in model.network_.members
    ]
    np.testing.assert_allclose(
        model.predict(city, times), np.mean(single, axis=0), rtol=1e-5, atol=1e-4
    )
    folder = save_bundle(model, "stid", city, result, tmp_path / "ens")
    loaded, card = load_bundle(folder)
    np.testing.assert_array_equal(loaded.predict(city, times), model.predict(city, times))
    assert len(card["training"]["members"]) == 2


def test_intervals_replayed_batch_by_batch_equal_one_replay_of_the_span(trained, monkeypatch):
    city, model, _, _ = trained
    plan = default_plan(city.num_steps, 12, (1, 6))
    calibration = calibrate_on_validation(model, city, plan)
    samples = np.array([city.num_steps, calibration.cutoff + 3, city.num_steps - 40])
    times = calibration.replay_times(model.input_len, city.num_steps)
    forecasts = model.predict(city, times)
    lower, upper = replay_intervals(calibration, forecasts, times, city.readings[..., 0], (80, 95))
    rows = samples - times[0]
    monkeypatch.setattr(forecast, "REPLAY_BATCH_ELEMENTS", 7 * model.horizon * city.num_sensors * 5)
    assert forecast.replay_batch_size(model.horizon, city.num_sensors, 2) == 7  # many batches
    got = forecast.replayed_intervals(model, city, samples, (80, 95), calibration)
    for part, expected in zip(got, (forecasts[rows], lower[rows], upper[rows]), strict=True):
        np.testing.assert_array_equal(part, expected)
    assert np.isfinite(got[1]).all()
