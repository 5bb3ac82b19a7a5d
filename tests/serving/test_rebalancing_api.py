"""``POST /v1/rebalancing`` on a served count model, and its one-line refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.decisions.city import ZONES, count_city_with_bundle
from tests.serving.conftest import post_los_loop_readings

from urbanflow.data.catalog import load_dataset
from urbanflow.decisions.rebalancing import forecast_means, plan_from_forecast
from urbanflow.models.bundle import load_bundle
from urbanflow.serving.app import create_app
from urbanflow.serving.settings import ServeSettings

pytestmark = pytest.mark.slow  # trains a network for one epoch


@pytest.fixture(scope="module")
def count_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return count_city_with_bundle(tmp_path_factory.mktemp("count-city"))


@pytest.fixture
def count_client(count_bundle, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(ServeSettings(count_bundle[1], tmp_path / "store.duckdb"))
    with TestClient(app) as client:
        yield client


def test_rebalancing_from_the_newest_forecast(count_bundle, count_client):
    city, bundle = count_bundle
    data = load_dataset(str(city))
    last = 24 * 20 + 6  # readings up to 06:00 on day 21: the morning peak comes in the west
    post_los_loop_readings(count_client, slice(last - 24, last + 1), dataset=data)
    body = {"idle": {"Z4": 20, "Z2": 1}, "steps": 3, "quantile": 0.8}
    response = count_client.post("/v1/rebalancing", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["issued_at"] == "2024-03-24T06:00:00+00:00"
    assert answer["steps"] == 3 and answer["quantile"] == 0.8
    assert [zone["zone_id"] for zone in answer["zones"]] == list(ZONES)
    assert answer["vehicles_moved"] == sum(move["vehicles"] for move in answer["moves"])
    assert answer["missing"] == []

    # the same plan as the library computes from the bundle's forecast at 06:00
    model, _ = load_bundle(bundle)
    means = forecast_means(model, data, "2024-03-24 06:00", 3)
    idle = np.zeros(9, np.int64)
    idle[4], idle[2] = 20, 1
    plan = plan_from_forecast(
        ZONES, data.sensors.latitude, data.sensors.longitude, idle, means, 0.8
    )
    expected = plan.table().to_dict(orient="records")
    assert answer["moves"] == expected
    assert [zone["target"] for zone in answer["zones"]] == plan.target.tolist()
    assert answer["expected_unmet"] == pytest.approx(plan.total_expected_unmet, abs=1e-2)
    assert answer["empty_km"] == pytest.approx(plan.empty_km, rel=1e-3)

    # a departure worth 1 km pays for no move of 1.1 km
    thrifty = count_client.post("/v1/rebalancing", json={**body, "value_km": 1.0}).json()
    assert thrifty["moves"] == [] and thrifty["zones"][4]["after"] == 20


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"idle": {"Z99": 1}}, "zone 'Z99': unknown zone 'Z99'; use one of the model's zones"),
        ({"idle": {"Z1": -2}}, "zone 'Z1': vehicles -2 must be a whole number ≥ 0"),
        ({"idle": {"Z1": 1.5}}, "body idle.Z1: Input should be a valid integer"),
        ({"idle": {}, "steps": 7}, "steps 7 must lie in 1…6, the model's horizon"),
        ({"idle": {}, "steps": 0}, "body steps: Input should be greater than or equal to 1"),
        ({"idle": {}, "quantile": 1}, "body quantile: Input should be less than 1"),
        ({"idle": {}, "fleet": 3}, "body fleet: Extra inputs are not permitted"),
        ({"idle": {}, "value_km": 0}, "body value_km: Input should be greater than 0"),
        ({}, "body idle: Field required"),
    ],
)
def test_bad_requests_are_one_line_422(count_client, body, message):
    response = count_client.post("/v1/rebalancing", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith(message) and "\n" not in detail, detail


def test_no_readings_yet_is_409(count_client):
    response = count_client.post("/v1/rebalancing", json={"idle": {"Z1": 1}})
    assert response.status_code == 409
    assert "POST" in response.json()["detail"]


def test_a_level_model_is_refused(client):
    response = client.post("/v1/rebalancing", json={"idle": {}})
    assert response.status_code == 422
    assert (
        "trained on level readings; rebalancing needs a model of departures"
        in (response.json()["detail"])
    )


def test_a_token_guards_rebalancing(count_bundle, tmp_path):
    app = create_app(ServeSettings(count_bundle[1], tmp_path / "store.duckdb", token="t"))
    with TestClient(app) as client:
        refused = client.post("/v1/rebalancing", json={"idle": {"Z1": 1}})
        assert refused.status_code == 401 and "token" in refused.json()["detail"]
        allowed = client.post(
            "/v1/rebalancing", json={"idle": {"Z1": 1}}, headers={"Authorization": "Bearer t"}
        )
        assert allowed.status_code == 409  # past the guard: no readings stored yet
