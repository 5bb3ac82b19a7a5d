"""Neural forecasters and the data's kind: the default loss, non-negative forecasts, the
negative-binomial dispersion through a bundle, and the weekday rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from tests.models.conftest import ring_graph

from urbanflow import CityDataset, DatasetMetadata, SensorGraph, Sensors
from urbanflow.errors import ConfigError
from urbanflow.evaluation.evaluate import evaluate
from urbanflow.evaluation.protocol import default_plan
from urbanflow.models.bundle import load_bundle, save_bundle
from urbanflow.models.neural import DEFAULT_LOSSES, NeuralForecaster
from urbanflow.models.registry import make_model
from urbanflow.training.engine import predict_batches

SENSORS = 4


def count_city(days: int = 21, kind: str = "count") -> CityDataset:
    """Hourly Poisson counts of ``SENSORS`` stops with a daily cycle and many zeros."""
    rng = np.random.default_rng(0)
    hours = np.arange(days * 24)[:, None]
    rate = 1.5 + 1.5 * np.sin(2 * np.pi * hours / 24 + np.arange(SENSORS))
    return CityDataset(
        readings=rng.poisson(rate)[..., None].astype(np.float32),
        timestamps=pd.date_range("2024-01-01", periods=days * 24, freq="1h", tz="UTC"),
        sensors=Sensors(tuple(f"stop{i}" for i in range(SENSORS)), np.zeros(SENSORS), np.zeros(4)),
        graph=SensorGraph.empty(SENSORS),
        metadata=DatasetMetadata(name="bus", quantity="boardings", frequency="1h", kind=kind),
    )


def stid(**options: object) -> NeuralForecaster:
    settings = {"input_len": 12, "horizon": 3, "max_epochs": 1, "batch_size": 64, **options}
    model = make_model("stid", **settings)
    assert isinstance(model, NeuralForecaster)
    return model


@pytest.fixture(scope="module")
def counts() -> CityDataset:
    return count_city()


@pytest.fixture(scope="module")
def count_model(counts: CityDataset) -> NeuralForecaster:
    return stid().fit(counts)


def test_default_losses_by_kind() -> None:
    assert DEFAULT_LOSSES == {"level": "mae", "count": "poisson", "occupancy": "mae"}


def test_counts_train_with_poisson_and_never_forecast_below_zero(
    counts: CityDataset, count_model: NeuralForecaster
) -> None:
    assert count_model.loss_ == "poisson"
    assert count_model.non_negative_
    forecast = count_model.predict(counts, np.arange(12, counts.num_steps + 1, 5))
    assert np.isfinite(forecast).all() and (forecast >= 0).all()


def test_levels_train_with_mae_and_may_forecast_below_zero(city: CityDataset) -> None:
    lowered = replace(city, readings=city.readings - 60.0)  # a level around 0: some negatives
    model = stid().fit(lowered)
    assert lowered.kind == "level" and model.loss_ == "mae" and not model.non_negative_
    assert (model.predict(lowered, np.arange(12, lowered.num_steps + 1, 5)) < 0).any()


def test_an_occupancy_trains_with_mae_floored_at_zero(counts: CityDataset) -> None:
    occupancy = replace(counts, metadata=replace(counts.metadata, kind="occupancy"))
    model = stid().fit(occupancy)
    assert (model.loss_, model.non_negative_) == ("mae", True)
    assert (model.predict(occupancy, np.arange(12, occupancy.num_steps + 1, 5)) >= 0).all()


@pytest.mark.parametrize("loss", ["poisson", "negative-binomial", "tweedie"])
def test_a_distributional_loss_on_levels_is_refused(city: CityDataset, loss: str) -> None:
    lowered = replace(city, readings=city.readings - 60.0)
    with pytest.raises(ConfigError, match=rf"the {loss} loss fits counts.*level readings"):
        stid(loss=loss).fit(lowered)


def test_an_unknown_loss_is_refused(counts: CityDataset) -> None:
    with pytest.raises(ConfigError, match="loss 'mse' is unknown"):
        stid(loss="mse").fit(counts)


def test_negative_binomial_dispersion_survives_a_bundle(counts: CityDataset, tmp_path) -> None:
    model = stid(loss="negative-binomial", ensemble=2, max_epochs=2)
    plan = default_plan(counts.num_steps, 12, (1, 3))
    result = evaluate(model, counts, plan, "stid", levels=(80.0,))
    family, dispersion = model.forecast_distribution()
    assert family == "negative-binomial" and dispersion.shape == (SENSORS,)
    assert result.calibration.spread == "negative-binomial"
    np.testing.assert_allclose(result.calibration.dispersion, dispersion)
    for member in model.network_.members:
        assert member.log_dispersion.shape == (SENSORS,)
        assert member.log_dispersion.requires_grad
    assert model.network_.members[0].log_dispersion.detach().abs().sum() > 0  # it was trained
    folder = save_bundle(model, "stid", counts, result, tmp_path / "nb")
    loaded, card = load_bundle(folder)
    assert (card["loss"], card["dataset"]["kind"]) == ("negative-binomial", "count")
    assert card["training"]["members"][0]["validation_criterion"] == "negative-binomial loss"
    assert card["calibration"]["spread"] == "negative-binomial"
    np.testing.assert_allclose(loaded.calibration_.dispersion, dispersion)
    np.testing.assert_allclose(loaded.calibration_.reference_mae, result.calibration.reference_mae)
    for original, copy in zip(model.network_.members, loaded.network_.members, strict=True):
        np.testing.assert_array_equal(
            copy.log_dispersion.detach().cpu().numpy(),
            original.log_dispersion.detach().cpu().numpy(),
        )
    times = np.arange(12, counts.num_steps + 1, 7)
    forecast = loaded.predict(counts, times)
    np.testing.assert_array_equal(forecast, model.predict(counts, times))
    assert (forecast >= 0).all()


@pytest.mark.parametrize(("days", "weekdays"), [(7, False), (21, True)])
def test_the_weekday_rule_decides_the_dow_embedding(days: int, weekdays: bool) -> None:
    data = count_city(days)
    model = stid().fit(data)
    assert model.spec_.weekdays is weekdays
    assert all((member.dow is not None) is weekdays for member in model.network_.members)
    dow = model.series(data).dow
    assert (dow.max().item() == 6) is weekdays  # 0 throughout without weekdays


def test_a_tight_budget_trains_one_network_rather_than_three(counts: CityDataset, tmp_path):
    model = stid(ensemble=3, time_budget_min=1e-4, max_epochs=5)
    plan = default_plan(counts.num_steps, 12, (1, 3))
    result = evaluate(model, counts, plan, levels=())
    # the first network took longer than what was left: no second one was started
    assert model.ensemble == 1 and len(model.network_.members) == 1
    assert len(model.training_reports_) == 1
    save_bundle(model, "stid", counts, result, tmp_path / "b")
    loaded, card = load_bundle(tmp_path / "b")
    assert card["hyperparameters"]["ensemble"] == 1
    times = plan.test_groups[0].times[:5]
    np.testing.assert_allclose(loaded.predict(counts, times), model.predict(counts, times))


def test_the_budget_pays_for_building_the_training_tensors(counts: CityDataset, monkeypatch):
    """The budget is the whole fit's: time spent building tensors is not given to training."""
    import time

    import urbanflow.models.neural as neural

    building = NeuralForecaster.series
    given: list[float] = []
    train = neural.train

    def slow_series(self: NeuralForecaster, data: CityDataset):
        time.sleep(0.3)
        return building(self, data)

    def timed_train(*args: object):
        given.append(args[-2].time_budget_min * 60)
        return train(*args)

    monkeypatch.setattr(NeuralForecaster, "series", slow_series)
    monkeypatch.setattr(neural, "train", timed_train)
    stid(time_budget_min=2 / 60, max_epochs=1).fit(counts)
    assert given and given[0] <= 2 - 0.3


def test_an_untimed_ensemble_trains_every_network(counts: CityDataset) -> None:
    model = stid(ensemble=2).fit(counts)
    assert model.ensemble == 2 and len(model.training_reports_) == 2


@pytest.mark.parametrize("options", [{}, {"network_options": {"neighbours": True}, "ensemble": 2}])
def test_a_forecast_reads_only_its_input_windows_and_matches_the_full_series(
    counts: CityDataset, options: dict[str, object]
) -> None:
    data = replace(counts, graph=ring_graph(SENSORS))
    model = stid(**options).fit(data)
    times = np.array([data.num_steps, 40, 41, 42, 200, 13])
    full = model.series(data)  # every step, as training builds it
    expected = torch.stack(
        [
            predict_batches(
                member,
                full,
                times,
                model.input_len,
                model.scaler_,
                loss=model.loss_,
                non_negative=model.non_negative_,
            )
            for member in model.network_.members
        ]
    ).mean(dim=0)
    series, _ = model.input_series(data, times)
    assert series.readings.shape[0] == 12 * 4 + 2  # four windows, one of them a run of three
    np.testing.assert_allclose(model.predict(data, times), expected.numpy(), rtol=1e-6, atol=1e-6)
