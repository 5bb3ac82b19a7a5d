"""Live accuracy and coverage: stored forecasts scored when their target readings arrive."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import reading_rows

from urbanflow.serving.accuracy import summarise
from urbanflow.serving.app import create_app
from urbanflow.serving.issued import IssuedForecast
from urbanflow.serving.settings import ServeSettings
from urbanflow.serving.store import ReadingStore

STEP = pd.Timedelta(minutes=5)
T0 = pd.Timestamp("2024-05-01 08:00", tz="UTC")
IDS = ("a", "b", "c")


def batch(time: pd.Timestamp, values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor_id": list(values),
            "ts": [time.tz_localize(None)] * len(values),
            "value": list(values.values()),
        }
    )


def issued(at: pd.Timestamp = T0, version: str = "abc") -> IssuedForecast:
    values = np.array([[50.0, 40.0, np.nan], [45.0, 41.0, np.nan]])  # [h n]
    return IssuedForecast(
        issued_at=at,
        model="stid",
        model_version=version,
        data_fingerprint="fp",
        input_start=at - 11 * STEP,
        input_end=at,
        step=STEP,
        sensor_ids=IDS,
        levels=(80.0,),
        values=values,
        available=np.array([True, True, False]),  # c had too few readings: no forecast
        latest=np.array([48.0, np.nan, 33.0]),  # b had no reading at the issue time
        lower=values[None] - 2.0,
        upper=values[None] + 2.0,
    )


@pytest.fixture
def store(tmp_path: Path) -> ReadingStore:
    store = ReadingStore(tmp_path / "store.duckdb")
    store.register_sensors(
        pd.DataFrame({"sensor_id": IDS, "name": "", "latitude": np.nan, "longitude": np.nan})
    )
    store.store_forecast(issued())
    yield store
    store.close()


def scores(store: ReadingStore, until: pd.Timestamp, minutes: float, version: str = "abc"):
    errors, coverage = store.forecast_scores(version, until - pd.Timedelta(minutes=minutes), until)
    return summarise(2, (80.0,), errors, coverage)


def test_scores_the_model_and_the_last_value_on_the_same_readings(store):
    store.ingest(batch(T0 + STEP, {"a": 47.0, "b": 10.0, "c": 30.0}))
    first, second = scores(store, T0 + STEP, 60)
    assert first.count == 1  # only a: b has no last value, c no forecast
    assert first.mae == pytest.approx(3.0) and first.last_value_mae == pytest.approx(1.0)
    assert first.coverage == {"80": 0.0}  # 47 is outside 50 ± 2
    assert second.count == 0 and second.mae is None and second.coverage == {"80": None}
    store.ingest(batch(T0 + 2 * STEP, {"a": 44.0}))
    second = scores(store, T0 + 2 * STEP, 60)[1]
    assert second.mae == pytest.approx(1.0) and second.last_value_mae == pytest.approx(4.0)
    assert second.coverage == {"80": 1.0}
    assert scores(store, T0 + 2 * STEP, 60, version="other")[1].count == 0  # another model's


def test_a_corrected_reading_rescores_and_a_missing_one_does_not_count(store):
    store.ingest(batch(T0 + STEP, {"a": 47.0}))
    store.ingest(batch(T0 + STEP, {"a": 50.0}))
    assert scores(store, T0 + STEP, 60)[0].mae == pytest.approx(0.0)
    store.ingest(batch(T0 + STEP, {"a": np.nan}))  # a null is no reading
    assert scores(store, T0 + STEP, 60)[0].count == 1


def test_only_target_times_in_the_window_are_scored(store):
    store.ingest(batch(T0 + STEP, {"a": 47.0}))
    # the target time lies 15 minutes before T0 + 4 steps; the window is (until − minutes, until]
    assert scores(store, T0 + 4 * STEP, 15)[0].count == 0
    assert scores(store, T0 + 4 * STEP, 20)[0].count == 1


def test_a_stored_forecast_reads_back_as_issued_and_is_never_replaced(store):
    back = store.issued_forecast(IDS)
    sent = issued()
    assert back.issued_at == T0 and back.stored and back.stored_at is not None
    assert (back.model, back.model_version, back.data_fingerprint) == ("stid", "abc", "fp")
    assert (back.input_start, back.input_end, back.step) == (T0 - 11 * STEP, T0, STEP)
    assert back.levels == (80.0,) and list(back.available) == [True, True, False]
    np.testing.assert_array_equal(back.values, sent.values)
    np.testing.assert_array_equal(back.lower, np.where(sent.available, sent.lower, np.nan))
    np.testing.assert_array_equal(back.latest, [48.0, np.nan, np.nan])  # c: no forecast row
    changed = issued()
    changed.values[:] = 1.0
    with pytest.raises(duckdb.ConstraintException):
        store.store_forecast(changed)  # the same issue time again: refused whole
    np.testing.assert_array_equal(store.issued_forecast(IDS).values, sent.values)
    assert store.issued_span()[2] == 1


def test_forecasts_older_than_the_keep_period_are_deleted_when_one_is_issued(store):
    for k in range(1, 6):
        store.store_forecast(issued(T0 + k * STEP), keep=pd.Timedelta(minutes=10))
    first, last, count = store.issued_span()
    assert (first, last, count) == (T0 + 3 * STEP, T0 + 5 * STEP, 3)
    assert store.issued_forecast(IDS, T0) is None


def test_the_api_scores_issued_forecasts_and_the_scores_survive_a_restart(
    los_loop_bundle, los_loop, tmp_path
):
    settings = ServeSettings(los_loop_bundle, tmp_path / "store.duckdb")
    steps = range(1990, 2004)
    served = {}
    with TestClient(create_app(settings)) as client:
        for t in steps:
            client.post("/v1/readings", json=reading_rows(los_loop, slice(t, t + 1)))
            client.app.state.service.wait_idle(60)
            answer = client.get("/v1/forecasts", params={"horizon": 1})
            if answer.status_code == 200:
                assert answer.json()["stored"]
                served[t] = {p["sensor_id"]: p for p in answer.json()["data"]}
        scores = client.get("/v1/accuracy", params={"minutes": 24 * 60}).json()
    # the forecast issued at t targets t + 1; score those whose target was posted
    ids = los_loop.sensors.ids
    model_errors, last_errors, inside = [], [], {"80": [], "95": []}
    for t, forecast in served.items():
        if t + 1 in steps:
            for n, sensor in enumerate(ids):
                actual = los_loop.readings[t + 1, n, 0]
                model_errors.append(abs(forecast[sensor]["value"] - actual))
                last_errors.append(abs(los_loop.readings[t, n, 0] - actual))
                for level, hits in inside.items():
                    point = forecast[sensor]
                    hits.append(point[f"lower_{level}"] <= actual <= point[f"upper_{level}"])
    first = scores["data"][0]
    assert first["count"] == len(model_errors) > 0
    assert first["mae"] == pytest.approx(np.mean(model_errors), rel=1e-5)
    assert first["last_value_mae"] == pytest.approx(np.mean(last_errors), rel=1e-5)
    assert first["coverage"] == pytest.approx({k: np.mean(v) for k, v in inside.items()})
    assert scores["until"] == los_loop.timestamps[steps[-1]].isoformat()
    assert scores["model"]["name"] == "stid"
    with TestClient(create_app(settings)) as client:  # a restart: scored from the store
        assert client.get("/v1/accuracy", params={"minutes": 24 * 60}).json() == scores
        assert client.get("/v1/accuracy", params={"minutes": 0}).status_code == 422
