"""Alerts wired into the service (issue 9, §3): `serve --alerts`, the issue hook, the routes,
signed webhooks to a local receiver, and alert state that survives a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import reading_rows

from urbanflow.cli import main
from urbanflow.data.dataset import CityDataset
from urbanflow.models.conformal import Calibration
from urbanflow.serving.alerting import ServiceAlerts
from urbanflow.serving.app import create_app
from urbanflow.serving.settings import ServeSettings

SECRET = "test-secret"
STEPS = slice(1990, 2008)  # the first issue at 1995 (half an input window), targets scored later


class Receiver:
    """A webhook receiver on 127.0.0.1 that records each request's headers and raw body."""

    def __init__(self, delay: float = 0.0, status: int = 204) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                time.sleep(delay)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def write_rules(path: Path, sensors: list[str], url: str) -> Path:
    ids = json.dumps(sensors)
    path.write_text(
        f"""
[[rule]]
name = "surely-below"
sensors = {ids}
condition = "below"
threshold = 1000
within_minutes = 30
probability = 0.5
webhooks = ["{url}"]

[[rule]]
name = "never-above"
sensors = "all"
condition = "above"
threshold = 1000
within_minutes = 60
probability = 0.5

[[rule]]
name = "any-error"
sensors = {ids}
condition = "drift"
factor = 0.001
""",
        encoding="utf-8",
    )
    return path


def app_client(bundle: Path, store: Path, rules: Path | None) -> TestClient:
    return TestClient(create_app(ServeSettings(bundle, store, alerts=rules)))


def caught_up(client: TestClient) -> None:
    assert client.app.state.service.wait_idle(60), "the issuing worker did not catch up"


def verified(body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(header, expected)


def test_without_rules_the_alert_routes_answer_empty(client: TestClient) -> None:
    assert client.get("/v1/alerts/rules").json() == {"data": [], "count": 0}
    assert client.get("/v1/alerts").json() == {"data": [], "count": 0}
    assert client.get("/v1/alerts", params={"state": "firing"}).json()["count"] == 0
    assert client.get("/v1/alerts", params={"state": "burning"}).status_code == 422


def test_a_below_rule_fires_signs_its_webhook_and_survives_a_restart(
    los_loop_bundle: Path,
    los_loop: CityDataset,
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("URBANFLOW_WEBHOOK_SECRET", SECRET)
    watched = list(los_loop.sensors.ids[:2])
    rules = write_rules(tmp_path / "rules.toml", watched, receiver.url)
    store = tmp_path / "store.duckdb"
    with app_client(los_loop_bundle, store, rules) as client:
        listed = client.get("/v1/alerts/rules").json()
        assert listed["count"] == 3
        assert [r["name"] for r in listed["data"]] == ["surely-below", "never-above", "any-error"]
        assert listed["data"][0]["webhooks"] == [receiver.url]
        assert listed["data"][1]["sensor_count"] == len(los_loop.sensors.ids)

        answer = client.post("/v1/readings", json=reading_rows(los_loop, STEPS))
        assert answer.status_code == 200, answer.text
        caught_up(client)
        service = client.app.state.service
        first_issue = service.store.issued_span()[0]

        firing = client.get("/v1/alerts", params={"state": "firing"}).json()
        below = [a for a in firing["data"] if a["rule"] == "surely-below"]
        assert sorted(a["sensor_id"] for a in below) == sorted(watched)
        since = first_issue.tz_convert(los_loop.metadata.timezone).isoformat()
        for alert in below:
            assert alert["state"] == "firing" and alert["since"] == since
            assert alert["value"] == 1.0  # every conformal score lies below 1000 mph
            assert (alert["condition"], alert["threshold"], alert["probability"]) == (
                "below",
                1000.0,
                0.5,
            )
        # drift: the live errors of the scored forecasts exceed 0.001 × validation error
        drift = [a for a in firing["data"] if a["rule"] == "any-error"]
        assert sorted(a["sensor_id"] for a in drift) == sorted(watched)
        assert all(a["value"] > 0.001 and a["factor"] == 0.001 for a in drift)
        assert all(a["rule"] != "never-above" for a in firing["data"])
        assert client.get("/v1/alerts", params={"state": "pending"}).json()["count"] == 0
        assert firing["count"] == len(firing["data"]) == 4

        # one signed notification per firing sensor of the rule with a webhook
        requests = receiver.wait_for(2)
        assert len(requests) == 2
        for headers, body in requests:
            assert verified(body, headers.get("X-Urbanflow-Signature"))
            sent = json.loads(body)
            assert sent["rule"] == "surely-below" and sent["state"] == "firing"
            assert sent["sensor_id"] in watched and sent["probability"] == 1.0
            assert headers["X-Urbanflow-Idempotency-Key"] == sent["idempotency_key"]
        assert sorted(json.loads(b)["sensor_id"] for _, b in requests) == sorted(watched)
        deadline = time.monotonic() + 10
        while service.alerts.alert_store.outbox_counts()["delivered"] < 2:
            assert time.monotonic() < deadline, "deliveries were not recorded"
            time.sleep(0.05)
        transitions = service.alerts.alert_store.transitions(to_state="firing")
        assert len(transitions) == 4

    # a restart on the same store carries on: the same alerts, nothing sent again
    with app_client(los_loop_bundle, store, rules) as client:
        again = client.get("/v1/alerts", params={"state": "firing"}).json()
        assert again == firing
        post = client.post("/v1/readings", json=reading_rows(los_loop, slice(2008, 2010)))
        assert post.status_code == 200
        caught_up(client)
        assert client.get("/v1/alerts", params={"state": "firing"}).json() == firing
        assert client.app.state.service.alerts.alert_store.outbox_counts() == {
            "queued": 0,
            "delivered": 2,
            "failed": 0,
        }
    time.sleep(0.2)
    assert len(receiver.requests) == 2


def test_serve_refuses_a_bad_rules_file_in_one_line_before_opening_the_store(
    los_loop_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "jam"\nsensors = "all"\ncondition = "below"\nthreshold = 40\n'
        "within_minutes = 90\nprobability = 0.7\n",
        encoding="utf-8",
    )
    store = tmp_path / "s.duckdb"
    args = ["serve", "--model-dir", str(los_loop_bundle), "--store", str(store)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--alerts", str(rules)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "rule 'jam' `within_minutes`" in err
    assert not store.exists()  # checked before the service opened anything
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--alerts", str(tmp_path / "missing.toml")])
    assert exit_info.value.code == 2 and "no such rules file" in capsys.readouterr().err


def test_a_sensor_without_a_forecast_gets_no_probability() -> None:
    """A NaN forecast would sort above every conformal score (probability 1): it is skipped."""
    calibration = Calibration(
        scores=np.tile(np.linspace(-2, 2, 9), (2, 1)),
        scale=np.ones((2, 3)),
        cutoff=0,
        half_life_steps=12.0,
    )
    values = np.array([[50.0, np.nan, 10.0], [50.0, np.nan, 10.0]])
    below = ServiceAlerts._probability_below(calibration, None, values)(40.0)
    assert below.shape == (2, 3)
    assert np.isnan(below[:, 1]).all()
    assert (below[:, 0] == 0).all() and (below[:, 2] == 1).all()


def test_documented_alert_has_the_api_s_fields() -> None:
    """docs/serving.md's example answer of GET /v1/alerts has exactly the schema's fields."""
    import re

    from urbanflow.serving.schemas import AlertOut

    doc = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text("utf-8")
    section = doc.split("### `GET /v1/alerts/rules` and `GET /v1/alerts`", 1)[1]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    assert example["count"] == len(example["data"])
    assert set(example["data"][0]) == set(AlertOut.model_fields)
    AlertOut(**example["data"][0])


def test_a_slow_failing_receiver_never_delays_ingest_or_issuing(
    los_loop_bundle: Path, los_loop: CityDataset, tmp_path: Path
) -> None:
    """Each try hangs 3 s and fails; the POSTs and the issues do not wait for it, the
    notifications stay queued with their failed tries."""
    slow = Receiver(delay=3.0, status=503)
    try:
        rules = write_rules(tmp_path / "rules.toml", list(los_loop.sensors.ids[:2]), slow.url)
        with app_client(los_loop_bundle, tmp_path / "store.duckdb", rules) as client:
            started = time.monotonic()
            for step in range(STEPS.start, STEPS.stop):
                answer = client.post(
                    "/v1/readings", json=reading_rows(los_loop, slice(step, step + 1))
                )
                assert answer.status_code == 200
            caught_up(client)
            assert slow.wait_for(1, timeout=5)  # the first try is under way
            elapsed = time.monotonic() - started
            assert elapsed < 6, f"ingest and issuing took {elapsed:.1f} s behind a slow receiver"
            firing = client.get("/v1/alerts", params={"state": "firing"}).json()
            assert {a["rule"] for a in firing["data"]} == {"surely-below", "any-error"}
            counts = client.app.state.service.alerts.alert_store.outbox_counts()
            assert counts["delivered"] == 0 and counts["queued"] == 2
    finally:
        slow.close()


def test_a_jam_rule_fires_where_the_replayed_rush_hour_drops_the_forecast(
    los_loop_bundle: Path, los_loop: CityDataset, tmp_path: Path
) -> None:
    """Los-loop's evening rush (7 March, 14:20-17:45), posted step by step: "below 40 mph within
    30 minutes with p ≥ 0.7" fires, on the issuing worker, exactly where the conformal
    probability says so: every sensor forecast far below 40 fires, none forecast far above."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "jam"\nsensors = "all"\ncondition = "below"\nthreshold = 40\n'
        "within_minutes = 30\nprobability = 0.7\n",
        encoding="utf-8",
    )
    with app_client(los_loop_bundle, tmp_path / "store.duckdb", rules) as client:
        for step in range(1900, 1942):
            answer = client.post("/v1/readings", json=reading_rows(los_loop, slice(step, step + 1)))
            assert answer.status_code == 200
        caught_up(client)
        service = client.app.state.service
        last = service.store.issued_forecast(service.model.sensors.ids)
        assert last is not None and last.issued_at == los_loop.timestamps[1941]
        firing = client.get("/v1/alerts", params={"state": "firing"}).json()["data"]
        fired = {a["sensor_id"] for a in firing}
        window = last.values[:6]  # steps within 30 minutes
        ids = np.array(service.model.sensors.ids)
        jammed = set(ids[(window < 25).all(axis=0)])
        free = set(ids[(window > 65).all(axis=0)])
        assert jammed and free
        assert jammed <= fired  # resolve_after = 1: the last issue decides the state
        assert not free & fired
        assert all(a["value"] >= 0.7 for a in firing)
        # some alerts began during the replay, not at its first issue: a forecast dropped
        onsets = service.alerts.alert_store.transitions(to_state="firing", limit=10_000)
        first = service.store.issued_span()[0]
        assert any(t.issued_at > first for t in onsets)
