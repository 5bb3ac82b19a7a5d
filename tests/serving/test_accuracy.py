"""Live accuracy: forecasts the service issued, scored when their target readings arrive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.serving.conftest import reading_rows

from urbanflow.serving.accuracy import AccuracyTracker

STEP = pd.Timedelta(minutes=5)
T0 = pd.Timestamp("2024-05-01 08:00", tz="UTC")


def batch(time: pd.Timestamp, values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor_id": list(values),
            "ts": [time.tz_localize(None)] * len(values),
            "value": list(values.values()),
        }
    )


@pytest.fixture
def tracker() -> AccuracyTracker:
    tracker = AccuracyTracker(("a", "b", "c"), horizon=2, step=STEP)
    tracker.remember(
        T0,
        values=np.array([[50.0, 40.0, 30.0], [45.0, 41.0, 31.0]]),  # [h n]
        available=np.array([True, True, False]),  # c had too few readings: no forecast
        latest=np.array([48.0, np.nan, 33.0]),  # b had no reading at the issue time
    )
    return tracker


def test_scores_the_model_and_the_last_value_on_the_same_readings(tracker):
    tracker.observe(batch(T0 + STEP, {"a": 47.0, "b": 10.0, "c": 30.0}))
    first, second = tracker.summary(T0 + STEP, 60)
    assert first.count == 1  # only a: b has no last value, c no forecast
    assert first.mae == pytest.approx(3.0) and first.last_value_mae == pytest.approx(1.0)
    assert second.count == 0 and second.mae is None
    tracker.observe(batch(T0 + 2 * STEP, {"a": 40.0}))
    second = tracker.summary(T0 + 2 * STEP, 60)[1]
    assert second.mae == pytest.approx(5.0) and second.last_value_mae == pytest.approx(8.0)


def test_a_corrected_reading_rescores_and_a_missing_one_does_not_count(tracker):
    tracker.observe(batch(T0 + STEP, {"a": 47.0}))
    tracker.observe(batch(T0 + STEP, {"a": 50.0}))
    assert tracker.summary(T0 + STEP, 60)[0].mae == pytest.approx(0.0)
    tracker.observe(batch(T0 + STEP, {"a": np.nan}))  # a null is no reading
    assert tracker.summary(T0 + STEP, 60)[0].count == 1


def test_only_target_times_in_the_window_are_scored_and_old_ones_are_forgotten(tracker):
    tracker.observe(batch(T0 + STEP, {"a": 47.0}))
    # the target time lies 15 minutes before T0 + 4 steps; the window is (until − minutes, until]
    assert tracker.summary(T0 + 4 * STEP, 15)[0].count == 0
    assert tracker.summary(T0 + 4 * STEP, 20)[0].count == 1
    tracker.observe(batch(T0 + pd.Timedelta(days=2), {"a": 1.0}))
    assert tracker.summary(T0 + STEP, 60)[0].count == 0


def test_the_api_scores_served_forecasts_against_arriving_readings(client, los_loop):
    steps = range(1990, 2004)
    served = {}
    for t in steps:
        client.post("/v1/readings", json=reading_rows(los_loop, slice(t, t + 1)))
        answer = client.get("/v1/forecasts", params={"horizon": 1})
        if answer.status_code == 200:
            served[t] = {p["sensor_id"]: p["value"] for p in answer.json()["data"]}
    # the forecast issued at t targets t + 1; score those whose target was posted
    ids = los_loop.sensors.ids
    model_errors, last_errors = [], []
    for t, forecast in served.items():
        if t + 1 in steps:
            for n, sensor in enumerate(ids):
                actual = los_loop.readings[t + 1, n, 0]
                model_errors.append(abs(forecast[sensor] - actual))
                last_errors.append(abs(los_loop.readings[t, n, 0] - actual))
    scores = client.get("/v1/accuracy", params={"minutes": 24 * 60}).json()
    first = scores["data"][0]
    assert first["count"] == len(model_errors) > 0
    assert first["mae"] == pytest.approx(np.mean(model_errors), rel=1e-5)
    assert first["last_value_mae"] == pytest.approx(np.mean(last_errors), rel=1e-5)
    assert scores["until"] == los_loop.timestamps[steps[-1]].isoformat()
    assert scores["model"]["name"] == "stid"
    assert client.get("/v1/accuracy", params={"minutes": 0}).status_code == 422
