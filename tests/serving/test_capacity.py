"""Occupancy data with capacities in the service: the bundle keeps the capacities, the forecasts
answer carries utilisation and the probability of reaching capacity, and an ``above_capacity``
alert rule is accepted on such a bundle and refused on one without capacities."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from urbanflow.cli import main
from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.errors import ConfigError
from urbanflow.serving.alerting import load_service_rules
from urbanflow.serving.app import create_app
from urbanflow.serving.capacity import probability_above_capacity
from urbanflow.serving.live import LiveModel
from urbanflow.serving.settings import ServeSettings

CAPACITY = [20.0, 30.0, 40.0, 50.0, 60.0, np.nan]  # the last ward gives none


def write_occupancy_city(folder: Path, days: int = 21) -> Path:
    """Six wards, hourly bed occupancy (whole numbers within capacity) over ``days`` days."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    hours = pd.date_range("2026-01-05", periods=days * 24, freq="1h")
    capacity = np.array([c if np.isfinite(c) else 45.0 for c in CAPACITY])
    daily = np.sin(2 * np.pi * np.arange(hours.size)[:, None] / 24 + np.arange(6))
    share = np.clip(0.8 + 0.15 * daily + 0.05 * rng.standard_normal((hours.size, 6)), 0, 1)
    occupancy = np.round(share * capacity)
    wide = pd.DataFrame(occupancy, columns=[f"w{i}" for i in range(6)])
    wide.insert(0, "timestamp", hours.strftime("%Y-%m-%d %H:%M"))
    wide.to_csv(folder / "readings.csv", index=False)
    sensors = pd.DataFrame(
        {
            "sensor_id": [f"w{i}" for i in range(6)],
            "latitude": 52.50 + 0.01 * np.arange(6),
            "longitude": 13.40 + 0.01 * np.arange(6),
            "capacity": CAPACITY,
        }
    )
    sensors.to_csv(folder / "sensors.csv", index=False)
    (folder / "dataset.toml").write_text(
        'name = "wards"\nquantity = "occupied beds"\nunit = "beds"\nfrequency = "1h"\n'
        'timezone = "Europe/Berlin"\nkind = "occupancy"\n',
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module")
def wards(tmp_path_factory: pytest.TempPathFactory) -> tuple[CityDataset, Path]:
    """The occupancy city and an STID bundle trained on it for one epoch."""
    folder = write_occupancy_city(tmp_path_factory.mktemp("wards") / "wards")
    bundle = folder.parent / "bundle"
    args = ["train", "--dataset", str(folder), "--model", "stid", "--max-epochs", "1"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as exit_info:
        main([*args, "--seed", "0", "--out", str(bundle)])
    assert exit_info.value.code in (0, None), printed.getvalue()
    return load_dataset(str(folder)), bundle


@pytest.fixture
def wards_client(wards: tuple[CityDataset, Path], tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(ServeSettings(wards[1], tmp_path / "store.duckdb"))
    with TestClient(app) as test_client:
        yield test_client


def post_rows(client: TestClient | httpx.Client, dataset: CityDataset, steps: slice) -> None:
    values = dataset.readings[steps, :, 0]
    rows = [
        {"sensor_id": sensor, "timestamp": stamp.isoformat(), "value": float(values[t, n])}
        for t, stamp in enumerate(dataset.timestamps[steps])
        for n, sensor in enumerate(dataset.sensors.ids)
    ]
    response = client.post("/v1/readings", json=rows)
    assert response.status_code == 200, response.text


def test_the_bundle_card_keeps_each_sensors_capacity(wards: tuple[CityDataset, Path]) -> None:
    card = json.loads((wards[1] / "card.json").read_text())
    assert [row.get("capacity") for row in card["sensors"]] == [20, 30, 40, 50, 60, None]
    assert card["dataset"]["kind"] == "occupancy"
    model = LiveModel.load(wards[1])
    np.testing.assert_array_equal(model.capacity, CAPACITY)


def test_forecasts_carry_utilisation_and_the_probability_of_a_full_unit(
    wards: tuple[CityDataset, Path], wards_client: TestClient
) -> None:
    dataset, bundle = wards
    post_rows(wards_client, dataset, slice(400, 424))
    body = wards_client.get("/v1/forecasts").json()
    model = LiveModel.load(bundle)
    rows = {(r["sensor_id"], r["horizon_steps"]): r for r in body["data"]}
    assert len(rows) == 6 * model.horizon
    for (sensor, _), row in rows.items():
        capacity = CAPACITY[int(sensor[1:])]
        if np.isnan(capacity):  # no capacity: the fields are there, null
            assert row["capacity"] is None and row["utilisation"] is None
            assert row["p_above_capacity"] is None
            continue
        assert row["capacity"] == capacity
        assert row["utilisation"] == pytest.approx(row["value"] / capacity, abs=1e-4)
        assert 0.0 <= row["p_above_capacity"] <= 1.0
    # the probability is 1 − P(below capacity) of the conformal distribution the issue's
    # intervals were computed with (the service's online scale at the issue)
    issued = wards_client.app.state.service.forecast()
    assert issued.scale is not None
    expected = probability_above_capacity(
        model.calibration, issued.scale, issued.values, np.array(CAPACITY)
    )
    for n in range(5):
        for h in (1, model.horizon):
            got = rows[(f"w{n}", h)]["p_above_capacity"]
            assert got == pytest.approx(expected[h - 1, n], abs=1e-4)
    assert set(body) == {"issued_at", "model", "stored", "levels", "data", "missing"}


def test_probability_above_capacity_by_hand() -> None:
    from urbanflow.models.conformal import Calibration

    # residual scores -2, -1, 0, 1, 2 (sorted) at one step; scale 1 for both sensors
    calibration = Calibration(
        scores=np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]]),
        scale=np.ones((1, 2)),
        cutoff=0,
        half_life_steps=1.0,
    )
    values = np.array([[9.5, np.nan]])
    capacity = np.array([10.0, 10.0])
    # y reaches 10 when the score is ≥ 0.5: scores 1 and 2, so 2 of 5
    above = probability_above_capacity(calibration, np.ones((1, 2)), values, capacity)
    assert above[0, 0] == pytest.approx(2 / 5)
    assert np.isnan(above[0, 1])  # no forecast
    unknown = probability_above_capacity(
        calibration, np.ones((1, 2)), np.array([[9.5, 9.5]]), np.array([10.0, np.nan])
    )
    assert np.isnan(unknown[0, 1]) and unknown[0, 0] == pytest.approx(2 / 5)


RULE = """
[[rule]]
name = "beds-full"
sensors = "all"
condition = "above_capacity"
within_minutes = 180
probability = 0.5
"""


def test_an_above_capacity_rule_loads_on_occupancy_data(
    wards: tuple[CityDataset, Path], tmp_path: Path
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULE, encoding="utf-8")
    (rule,) = load_service_rules(path, LiveModel.load(wards[1]))
    assert rule.condition.kind == "above_capacity" and rule.condition.steps == 3
    assert rule.describe()["within_minutes"] == 180


def test_an_above_capacity_rule_is_refused_without_capacities(
    los_loop_bundle: Path, tmp_path: Path
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULE.replace("180", "30"), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_service_rules(path, LiveModel.load(los_loop_bundle))
    message = str(refused.value)
    assert "\n" not in message and "beds-full" in message
    assert "capacit" in message and 'kind = "occupancy"' in message


def test_the_service_fires_an_above_capacity_alert(
    wards: tuple[CityDataset, Path], tmp_path: Path
) -> None:
    dataset, bundle = wards
    path = tmp_path / "rules.toml"
    path.write_text(RULE.replace("0.5", "0.01"), encoding="utf-8")  # any chance of a full ward
    app = create_app(ServeSettings(bundle, tmp_path / "store.duckdb", alerts=path))
    with TestClient(app) as client:
        post_rows(client, dataset, slice(400, 430))
        app.state.service.wait_idle()
        alerts = client.get("/v1/alerts").json()["data"]
    assert alerts, "no alert although every ward is near capacity"
    assert {a["condition"] for a in alerts} == {"above_capacity"}
    assert "w5" not in {a["sensor_id"] for a in alerts}  # no capacity: never judged
    assert all(a["threshold"] is None and a["within_minutes"] == 180 for a in alerts)


@pytest.mark.slow  # headless Chromium
def test_the_dashboard_colours_wards_by_utilisation(
    wards: tuple[CityDataset, Path], tmp_path: Path
) -> None:
    from tests.serving.conftest import running_server
    from tests.serving.test_dashboard import (
        CHROMIUM,
        COLOURED,
        MISSING_CHROMIUM,
        WAIT_MS,
        Problems,
        headless_chromium,
        hover_sensor,
        map_looks,
        wait_for_drawn,
    )

    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    dataset, bundle = wards
    app = create_app(ServeSettings(bundle, tmp_path / "store.duckdb"))
    with running_server(app) as base_url, headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        problems = Problems(page)
        page.goto(f"{base_url}/")
        wait_for_drawn(page, 6)
        with httpx.Client(base_url=base_url, timeout=60) as poster:
            post_rows(poster, dataset, slice(400, 424))
        page.wait_for_function(f"{COLOURED} === 6", timeout=WAIT_MS)
        legend = page.text_content("#legend") or ""
        assert "utilisation 0–100 %+" in legend and "≥ 100 % (full)" in legend
        # five wards with a capacity are coloured; the one without stays grey
        fills = {i: look["fill"] for i, look in map_looks(page).items() if look["forecast"]}
        assert sorted(fills) == [f"w{i}" for i in range(6)]
        assert fills.pop("w5") == "#a7adb5"
        assert all(fill.startswith("rgb(") or fill == "#7f0000" for fill in fills.values())
        tip = hover_sensor(page, "w4")
        assert "of 60" in tip and "P(full)" in tip
        assert problems.unexpected() == []
