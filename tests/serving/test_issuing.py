"""Issuing (issue 9): the service issues a forecast when a step is complete, stores it whole with
its provenance and intervals, never changes it, and answers GET /v1/forecasts from it."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import reading_rows

from urbanflow.cli import main
from urbanflow.cli.serve import parse_keep
from urbanflow.data.dataset import CityDataset
from urbanflow.errors import ConfigError
from urbanflow.models.bundle import WEIGHTS, load_bundle
from urbanflow.models.conformal import replay_intervals
from urbanflow.serving.app import create_app
from urbanflow.serving.issued import IssuedForecast
from urbanflow.serving.routes import forecasts
from urbanflow.serving.routes.forecasts import forecast_answer
from urbanflow.serving.settings import ServeSettings
from urbanflow.serving.store import ReadingStore

HOUR = slice(1990, 2002)  # 12 steps: the first full input window ends at step 2001


def app_client(bundle: Path, store: Path, **options: object) -> TestClient:
    return TestClient(create_app(ServeSettings(bundle, store, **options)))


def post(client: TestClient, rows: list[dict[str, object]]) -> None:
    answer = client.post("/v1/readings", json=rows)
    assert answer.status_code == 200, answer.text


def caught_up(client: TestClient) -> None:
    assert client.app.state.service.wait_idle(60), "the issuing worker did not catch up"


def local(dataset: CityDataset, step: int) -> str:
    return dataset.timestamps[step].isoformat()


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding (one batch through the model against another)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


def last_issued(client: TestClient) -> str | None:
    return client.get("/health").json()["last_issued_at"]


def test_a_step_is_issued_once_a_share_of_sensors_reported_or_a_later_step_arrived(
    los_loop_bundle, los_loop, tmp_path
):
    with app_client(los_loop_bundle, tmp_path / "s.duckdb", issue_share=0.5) as client:
        post(client, reading_rows(los_loop, HOUR))
        caught_up(client)
        assert last_issued(client) == local(los_loop, 2001)
        rows = reading_rows(los_loop, slice(2002, 2003))
        post(client, rows[:100])  # 100 of 207 sensors: below half, not complete
        caught_up(client)
        assert last_issued(client) == local(los_loop, 2001)
        answer = client.get("/v1/forecasts").json()  # the newest step, computed on request
        assert answer["issued_at"] == local(los_loop, 2002) and not answer["stored"]
        post(client, rows[100:110])  # 110 of 207: more than half
        caught_up(client)
        assert last_issued(client) == local(los_loop, 2002)
        answer = client.get("/v1/forecasts").json()
        assert answer["issued_at"] == local(los_loop, 2002) and answer["stored"]
        # A reading of a later step completes every step before it, however few reported.
        post(client, reading_rows(los_loop, slice(2003, 2004))[:3])
        post(client, reading_rows(los_loop, slice(2004, 2005))[:1])
        caught_up(client)
        assert last_issued(client) == local(los_loop, 2003)
    with ReadingStore(tmp_path / "s.duckdb") as store:
        first, last, count = store.issued_span()
    # 1995 is the first step where sensors have half their window; one issue per step from it
    assert count == 2003 - 1995 + 1
    assert first == los_loop.timestamps[1995] and last == los_loop.timestamps[2003]


def test_issuing_never_delays_the_post_and_hooks_get_each_stored_forecast_in_order(
    los_loop_bundle, los_loop, tmp_path
):
    entered, release = threading.Event(), threading.Event()
    seen: list[tuple[IssuedForecast, bool]] = []
    with app_client(los_loop_bundle, tmp_path / "s.duckdb") as client:
        service = client.app.state.service

        def hook(forecast: IssuedForecast) -> None:  # on the worker, after the commit
            stored = service.store.issued_forecast(forecast.sensor_ids, forecast.issued_at)
            seen.append((forecast, stored is not None))
            entered.set()
            assert release.wait(60)

        def failing(forecast: IssuedForecast) -> None:
            raise RuntimeError("a broken hook is logged and skipped")

        service.issue_hooks.extend([hook, failing])
        post(client, reading_rows(los_loop, HOUR))
        assert entered.wait(60)  # the worker is now held inside the hook
        started = time.monotonic()
        post(client, reading_rows(los_loop, slice(2002, 2004)))
        assert time.monotonic() - started < 10  # answered while the worker is held
        assert client.get("/v1/forecasts").json()["stored"] is False  # not issued yet
        release.set()
        caught_up(client)
        assert last_issued(client) == local(los_loop, 2003)
    times = [forecast.issued_at for forecast, _ in seen]
    assert times == list(los_loop.timestamps[1995:2004].tz_convert("UTC"))
    assert all(stored for _, stored in seen) and all(f.stored for f, _ in seen)


def test_a_get_while_the_worker_issues_the_step_waits_for_it_instead_of_computing_it(
    los_loop_bundle, los_loop, tmp_path
):
    entered, release = threading.Event(), threading.Event()
    with app_client(los_loop_bundle, tmp_path / "s.duckdb") as client:
        service = client.app.state.service
        post(client, reading_rows(los_loop, HOUR))
        caught_up(client)

        def hold(forecast: IssuedForecast) -> None:  # holds the worker after this issue
            entered.set()
            assert release.wait(60)

        for step, wait, stored in ((2002, 2.0, True), (2004, 0.0, False)):
            entered.clear()
            release.clear()
            service.issue_wait = wait
            service.issue_hooks.append(hold)
            post(client, reading_rows(los_loop, slice(step, step + 1)))
            assert entered.wait(60)  # held after issuing `step`
            service.issue_hooks.remove(hold)
            post(client, reading_rows(los_loop, slice(step + 1, step + 2)))  # not issued yet
            threading.Timer(0.3, release.set).start()
            answer = client.get("/v1/forecasts").json()
            # waiting: the worker's stored forecast; not waiting: computed on request
            assert answer["issued_at"] == local(los_loop, step + 1)
            assert answer["stored"] is stored
            caught_up(client)
            assert last_issued(client) == local(los_loop, step + 1)


def test_a_stored_forecast_carries_its_provenance_and_nested_intervals(
    los_loop_bundle, los_loop, tmp_path
):
    with app_client(los_loop_bundle, tmp_path / "s.duckdb") as client:
        post(client, reading_rows(los_loop, HOUR))
        caught_up(client)
        answer = client.get("/v1/forecasts").json()
        store = client.app.state.service.store
        stored = store.issued_forecast(los_loop.sensors.ids)
        first = client.get("/v1/forecasts", params={"issued_at": local(los_loop, 1996)})
        assert first.status_code == 200 and first.json()["issued_at"] == local(los_loop, 1996)
        never = client.get("/v1/forecasts", params={"issued_at": local(los_loop, 1990)})
        assert never.status_code == 404 and "no forecast was issued" in never.json()["detail"]
        assert "7 are stored" in never.json()["detail"]
    card = json.loads((los_loop_bundle / "card.json").read_text())
    weights = hashlib.sha256((los_loop_bundle / WEIGHTS).read_bytes()).hexdigest()
    assert (stored.model, stored.model_version) == ("stid", weights)
    assert stored.data_fingerprint == card["dataset"]["fingerprint"] != ""
    assert stored.input_start == los_loop.timestamps[1990]
    assert stored.input_end == stored.issued_at == los_loop.timestamps[2001]
    assert stored.levels == (80.0, 95.0) and answer["levels"] == [80.0, 95.0]
    assert answer["stored"] and answer["model"]["version"] == weights[:12]
    assert len(answer["data"]) == 12 * int(stored.available.sum())
    ids = list(los_loop.sensors.ids)
    for point in answer["data"]:
        n, k = ids.index(point["sensor_id"]), point["horizon_steps"] - 1
        assert point["value"] == pytest.approx(stored.values[k, n])
        assert point["lower_80"] == pytest.approx(stored.lower[0, k, n])
        assert point["upper_95"] == pytest.approx(stored.upper[1, k, n])
        assert point["lower_95"] <= point["lower_80"] <= point["value"]
        assert point["value"] <= point["upper_80"] <= point["upper_95"]


def test_issued_intervals_are_the_online_conformal_replay_of_the_same_readings(
    los_loop_bundle, los_loop, tmp_path
):
    """The service's intervals equal ``replay_intervals`` on what it was sent: each forecast's
    intervals use only the readings up to its issue time."""
    first, last = 1960, 2001
    with app_client(los_loop_bundle, tmp_path / "s.duckdb") as client:
        post(client, reading_rows(los_loop, slice(first, last + 1)))
        caught_up(client)
        store = client.app.state.service.store
        issued = [
            store.issued_forecast(los_loop.sensors.ids, los_loop.timestamps[t])
            for t in range(first + 5, last + 1)
        ]
    model, _ = load_bundle(los_loop_bundle)
    readings = los_loop.readings.copy()
    readings[:first] = np.nan  # what the service holds
    sent = replace(los_loop, readings=readings)
    samples = np.arange(first + 6, last + 2)  # the sample after each issue step
    forecasts = model.predict(sent, samples)
    lower, upper = replay_intervals(
        replace(model.calibration_, cutoff=0), forecasts, samples, readings[..., 0], (80, 95)
    )
    for i, forecast in enumerate(issued):
        assert forecast is not None
        kept = forecast.available
        close(forecast.values[:, kept], forecasts[i][:, kept])
        close(forecast.lower[..., kept], lower[i][..., kept])
        close(forecast.upper[..., kept], upper[i][..., kept])


def test_old_forecasts_are_deleted_and_a_restart_issues_no_step_twice(
    los_loop_bundle, los_loop, tmp_path
):
    path = tmp_path / "s.duckdb"
    keep = timedelta(minutes=20)
    with app_client(los_loop_bundle, path, keep_forecasts=keep) as client:
        post(client, reading_rows(los_loop, slice(1980, 2002)))
        caught_up(client)
        before = client.get("/v1/forecasts").json()
    with ReadingStore(path) as store:
        first, last, count = store.issued_span()
    assert last - first == keep and count == 5
    with app_client(los_loop_bundle, path, keep_forecasts=keep) as client:
        caught_up(client)
        assert client.get("/v1/forecasts").json() == before  # from the store
        post(client, reading_rows(los_loop, slice(2002, 2003)))
        caught_up(client)
        assert last_issued(client) == local(los_loop, 2002)
    with ReadingStore(path) as store:
        assert store.issued_span()[1:] == (los_loop.timestamps[2002], 5)


def test_without_levels_forecasts_have_no_interval_fields(los_loop_bundle, los_loop, tmp_path):
    with app_client(los_loop_bundle, tmp_path / "s.duckdb", levels=()) as client:
        post(client, reading_rows(los_loop, HOUR))
        caught_up(client)
        answer = client.get("/v1/forecasts", params={"horizon": 1}).json()
        accuracy = client.get("/v1/accuracy").json()
    assert answer["stored"] and answer["levels"] == []
    assert set(answer["data"][0]) == {"sensor_id", "target_time", "horizon_steps", "value"}
    assert accuracy["data"][0]["coverage"] == {}


def test_bad_issue_share_and_keep_are_refused_in_one_line(los_loop_bundle, tmp_path):
    with pytest.raises(ConfigError, match=r"issue-share 1\.5"):
        ServeSettings(los_loop_bundle, tmp_path / "s.duckdb", issue_share=1.5)
    assert parse_keep("7d") == timedelta(days=7) and parse_keep("forever") is None
    assert parse_keep("90min") == timedelta(minutes=90) and parse_keep("36 h").days == 1
    for bad in ("soon", "-1h", "0s", "7"):
        with pytest.raises(ConfigError, match="keep-forecasts"):
            parse_keep(bad)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--issue-share", "0"], "--issue-share 0.0 must be in (0, 1]"),
        (["--keep-forecasts", "a week"], "--keep-forecasts 'a week' is not a positive duration"),
        (["--levels", "80,150"], "between 0 and 100"),
    ],
)
def test_serve_refuses_bad_issuing_options_in_one_line(
    los_loop_bundle, tmp_path, capsys, option, message
):
    args = ["serve", "--model-dir", str(los_loop_bundle), "--store", str(tmp_path / "s.duckdb")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, *option])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err, err
    assert not (tmp_path / "s.duckdb").exists()  # refused before the store is opened


def test_a_forecast_with_fewer_steps_than_the_model_answers_its_own_steps(
    los_loop_bundle, los_loop, tmp_path
):
    with app_client(los_loop_bundle, tmp_path / "s.duckdb") as client:
        post(client, reading_rows(los_loop, HOUR))
        caught_up(client)
        service = client.app.state.service
        stored = service.store.issued_forecast(los_loop.sensors.ids)
    short = replace(
        stored, values=stored.values[:6], lower=stored.lower[:, :6], upper=stored.upper[:, :6]
    )
    answer = json.loads(forecast_answer(service.model, short, None, "773869"))
    assert [p["horizon_steps"] for p in answer["data"]] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ConfigError, match="beyond the 6 steps"):
        forecast_answer(service.model, short, 7, None)


def test_one_sensor_of_the_forecast_in_memory_is_answered_without_a_worker_thread(
    los_loop_bundle, los_loop, tmp_path, monkeypatch
):
    with app_client(los_loop_bundle, tmp_path / "s.duckdb") as client:
        post(client, reading_rows(los_loop, HOUR))
        caught_up(client)
        every = client.get("/v1/forecasts").json()  # through a worker: loads the stored one
        assert every["stored"]

        def no_thread(*args, **kwargs):
            raise AssertionError("a one-sensor answer went to a worker thread")

        monkeypatch.setattr(forecasts, "run_in_threadpool", no_thread)
        one = client.get("/v1/forecasts", params={"sensor": "773869", "horizon": 3}).json()
        again = client.get("/v1/forecasts").json()  # built already
    expected = [p for p in every["data"] if p["sensor_id"] == "773869" and p["horizon_steps"] == 3]
    assert one["data"] == expected and one["issued_at"] == every["issued_at"]
    assert again == every


def test_plain_reads_of_the_forecast_in_memory_are_answered_before_routing(
    los_loop_bundle, los_loop, tmp_path
):
    import asyncio

    with app_client(los_loop_bundle, tmp_path / "s.duckdb") as client:
        post(client, reading_rows(los_loop, HOUR))
        caught_up(client)
        client.get("/v1/forecasts")  # loads the stored forecast into memory
        service = client.app.state.service
        forecast = service.forecast_in_memory()
        routed: list[bytes] = []

        async def route(scope, receive, send) -> None:
            routed.append(scope["query_string"])

        def read(query: bytes, method: str = "GET", path: str = "/v1/forecasts"):
            sent: list[dict] = []

            async def send(message) -> None:
                sent.append(message)

            scope = {"type": "http", "method": method, "path": path, "query_string": query}
            scope["app"] = client.app
            asyncio.run(forecasts.QuickForecastReads(route)(scope, None, send))
            return sent

        sent = read(b"sensor=773869&horizon=3")
        assert not routed and sent[0]["status"] == 200
        assert sent[1]["body"] == forecast_answer(service.model, forecast, 3, "773869")
        assert dict(sent[0]["headers"])[b"content-length"] == b"%d" % len(sent[1]["body"])
        assert read(b"sensor=773869")[1]["body"] == forecast_answer(
            service.model, forecast, None, "773869"
        )
        passed = [
            b"sensor=nowhere",
            b"sensor=773869&horizon=13",
            b"sensor=773869&horizon=0",
            b"sensor=773869&horizon=x",
            b"sensor=773869&sensor=773869",
            b"sensor=773869&issued_at=2012-01-01T00:00",
            b"horizon=3",  # every sensor, not built yet
        ]
        for query in passed:
            assert read(query) == [], query
        assert read(b"sensor=773869", method="POST") == []
        assert read(b"sensor=773869", path="/v1/forecasts/") == []
    assert routed == [*passed, b"sensor=773869", b"sensor=773869"]
