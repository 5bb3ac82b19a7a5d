"""The HTTP API against the real embedded store and a Los-loop bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import post_los_loop_readings, reading_rows

from urbanflow.serving.app import create_app
from urbanflow.serving.schemas import MAX_ROWS, ForecastOut
from urbanflow.serving.settings import ServeSettings

LAST_HOUR = slice(2004, 2016)  # Los-loop's last 12 steps: one full input window
NEXT_STEP = "2012-03-08T00:00:00-08:00"  # the step after Los-loop's last


def wait_issued(client: TestClient) -> None:
    """Wait until the service has issued the forecast of every complete step."""
    assert client.app.state.service.wait_idle(60), "the issuing worker did not catch up"


def row(sensor_id: str = "773869", timestamp: str = "2012-03-07T08:05:00-08:00", value=61.5):
    return {"sensor_id": sensor_id, "timestamp": timestamp, "value": value}


def test_health_sensors_graph_and_model_describe_the_bundle(client, los_loop):
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "model": "stid",
        "sensors": 207,
        "readings": 0,
        "latest_reading_at": None,
        "revision": 0,
        "last_issued_at": None,
    }
    sensors = client.get("/v1/sensors").json()
    assert sensors["count"] == 207 == len(sensors["data"])
    first = sensors["data"][0]
    assert first["sensor_id"] == los_loop.sensors.ids[0]
    assert first["latitude"] == pytest.approx(los_loop.sensors.latitude[0])
    graph = client.get("/v1/graph").json()
    assert graph["count"] == los_loop.graph.num_edges
    card = client.get("/v1/model").json()
    assert card["model"] == "stid" and len(card["version"]) == 12
    assert card["dataset"]["frequency"] == "5min"
    assert client.get("/docs").status_code == 200
    assert "/v1/readings" in client.get("/openapi.json").json()["paths"]


def test_posted_readings_are_stored_and_read_back_in_time_order(client, los_loop):
    counts = post_los_loop_readings(client, LAST_HOUR, los_loop)
    present = int(np.isfinite(los_loop.readings[LAST_HOUR, :, 0]).sum())
    assert counts["new"] == present and counts["received"] == 12 * 207
    assert counts["empty"] == 12 * 207 - present
    sensor = los_loop.sensors.ids[5]
    answer = client.get(
        f"/v1/sensors/{sensor}/readings",
        params={"start": "2012-03-07T23:00:00-08:00", "end": "2012-03-07T23:30:00"},
    ).json()
    stamps = [r["timestamp"] for r in answer["data"]]
    assert stamps == sorted(stamps) and stamps[0] == "2012-03-07T23:00:00-08:00"
    assert stamps[-1] == "2012-03-07T23:25:00-08:00"  # end is exclusive, naive = local time
    expected = los_loop.readings[2004:2010, 5, 0]
    np.testing.assert_allclose([r["value"] for r in answer["data"]], expected, rtol=1e-6)
    assert client.get(f"/v1/sensors/{sensor}/readings", params={"limit": 2}).json()["count"] == 2


def test_resending_is_a_no_op_and_a_correction_replaces_the_value(client, los_loop):
    rows = reading_rows(los_loop, slice(2015, 2016))
    first = client.post("/v1/readings", json=rows).json()
    again = client.post("/v1/readings", json=rows).json()
    assert again["new"] == 0 and again["updated"] == 0 and again["unchanged"] == first["new"]
    sensor = rows[0]["sensor_id"]
    revision = client.get("/health").json()["revision"]
    fixed = client.post("/v1/readings", json=[{**rows[0], "value": 12.5}]).json()
    assert fixed["updated"] == 1
    assert client.get("/health").json()["revision"] == revision + 1  # dashboards refresh
    stored = client.get(f"/v1/sensors/{sensor}/readings").json()["data"]
    assert stored == [{"timestamp": rows[0]["timestamp"], "value": 12.5}]


def test_a_null_value_never_overwrites_a_stored_reading(client):
    client.post("/v1/readings", json=[row(value=50.0)])
    answer = client.post("/v1/readings", json=[row(value=None)]).json()
    assert answer["empty"] == 1 and answer["updated"] == 0
    stored = client.get("/v1/sensors/773869/readings").json()["data"]
    assert [r["value"] for r in stored] == [50.0]


def test_media_types_are_case_insensitive(client):
    body = "sensor_id,timestamp,value\n773869,2012-03-07T08:05:00-08:00,61.5\n"
    answer = client.post("/v1/readings", content=body, headers={"content-type": "Text/CSV"})
    assert answer.status_code == 200, answer.text


def test_csv_bodies_are_accepted_with_empty_values_as_no_reading(client):
    body = (
        "sensor_id,timestamp,value\n"
        "773869,2012-03-07T08:05:00-08:00,61.5\n"
        "767541,2012-03-07 08:05,\n"  # naive: Los Angeles time
    )
    answer = client.post("/v1/readings", content=body, headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["new"] == 1 and answer.json()["empty"] == 1


BAD_ROWS = [
    ([row(sensor_id="nope"), row(sensor_id="gone")], "unknown sensors 'gone', 'nope'"),
    ([row(), row(timestamp="yesterday")], "item [1]: timestamp 'yesterday' is not an ISO 8601"),
    ([row(timestamp="2012-03-07T08:03:00-08:00")], "not on the dataset's grid of one reading"),
    ([row(value="fast")], "item [0]: value: Input should be a valid number"),
    ([row(), row(value=7.0)], "item [0] and item [1]: sensor '773869' has two readings"),
    ([row(timestamp="2999-01-01T00:00:00Z")], "is in the future"),
    ([row(timestamp="1900-01-01T00:00:00Z")], "is before 1970"),
    ([row(timestamp="2012-11-04T01:30:00")], "occurs twice in America/Los_Angeles"),
    ([row(timestamp="2012-03-11T02:30:00")], "does not exist or occurs twice"),
    ([{"sensor_id": "773869", "value": 1.0}], "item [0]: timestamp: Field required"),
    ([{**row(), "speed": 3}], "item [0]: speed: Extra inputs are not permitted"),
    ({"sensor_id": "773869"}, "must be a JSON list"),
    ([], "holds no readings"),
]


@pytest.mark.parametrize(("body", "message"), BAD_ROWS)
def test_a_bad_batch_is_refused_whole_with_the_row_named(client, body, message):
    good = [row(timestamp="2012-03-07T09:00:00-08:00", value=40.0)]
    payload = body + good if isinstance(body, list) and body else body
    answer = client.post("/v1/readings", json=payload)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["detail"]
    assert client.get("/health").json()["readings"] == 0  # nothing of the batch was stored


def test_non_finite_values_are_refused(client):
    body = b'[{"sensor_id": "773869", "timestamp": "2012-03-07T08:05:00-08:00", "value": NaN}]'
    answer = client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert "item [0]: value" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sensor_id,time,value\n773869,2012-03-07T08:05,1\n", "the CSV header is sensor_id,time"),
        ("sensor_id,timestamp,value\n773869,2012-03-07T08:05,x\n", "line 2: value 'x'"),
        ("sensor_id,timestamp,value\n773869,2012-03-07T08:05,inf\n", "line 2: value 'inf'"),
        ("sensor_id,timestamp,value\n,2012-03-07T08:05,1\n", "line 2: sensor_id is empty"),
        ("sensor_id,timestamp,value\n773869,soon,1\n", "line 2: timestamp 'soon'"),
        ("sensor_id,timestamp,value\n773869,2012-03-07T08:05\n", "line 2: 2 fields, expected 3"),
        (
            "sensor_id,timestamp,value\n\n767541,2012-03-07T08:05,1,2\n",
            "line 3: 4 fields, expected 3",
        ),
    ],
)
def test_bad_csv_rows_are_named_by_line(client, body, message):
    answer = client.post("/v1/readings", content=body, headers={"content-type": "text/csv"})
    assert answer.status_code == 422
    assert message in answer.json()["detail"]


def test_too_many_rows_unknown_media_and_bad_queries_are_4xx(client):
    many = "sensor_id,timestamp,value\n" + "773869,2012-03-07T08:05,1\n" * (MAX_ROWS + 1)
    too_many = client.post("/v1/readings", content=many, headers={"content-type": "text/csv"})
    assert too_many.status_code == 413 and "split the batch" in too_many.json()["detail"]
    xml = client.post("/v1/readings", content="<r/>", headers={"content-type": "text/xml"})
    assert xml.status_code == 415
    assert client.get("/v1/sensors/nope/readings").status_code == 404
    assert client.get("/v1/sensors/773869/readings", params={"limit": 0}).status_code == 422
    backwards = client.get(
        "/v1/sensors/773869/readings", params={"start": "2012-03-08", "end": "2012-03-07"}
    )
    assert backwards.status_code == 422 and "before start" in backwards.json()["detail"]
    assert client.get("/v1/forecasts", params={"sensor": "nope"}).status_code == 404
    beyond = client.get("/v1/forecasts", params={"horizon": 13})
    assert beyond.status_code == 422 and "1…12" in beyond.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/v1/forecasts", {"horizon": "soon"}, "query parameter horizon"),
        ("/v1/sensors/773869/readings", {"limit": 0}, "query parameter limit"),
        ("/v1/alerts", {"state": "burning"}, "query parameter state"),
    ],
)
def test_a_malformed_query_parameter_is_one_line_naming_it(client, path, params, named):
    answer = client.get(path, params=params)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    assert detail.startswith(named) and repr(str(next(iter(params.values())))) in detail


def test_forecasts_need_readings_then_follow_the_latest_window(client, los_loop):
    empty = client.get("/v1/forecasts")
    assert empty.status_code == 409 and "no readings are stored" in empty.json()["detail"]
    post_los_loop_readings(client, LAST_HOUR, los_loop)
    response = client.get("/v1/forecasts")
    ForecastOut.model_validate_json(response.content)  # the body follows the documented schema
    answer = response.json()
    assert answer["issued_at"] == "2012-03-07T23:55:00-08:00"
    assert answer["model"]["name"] == "stid" and len(answer["model"]["version"]) == 12
    served = {p["sensor_id"] for p in answer["data"]}
    assert len(answer["data"]) == 12 * len(served)
    assert served | set(answer["missing"]) == set(los_loop.sensors.ids)
    one = client.get("/v1/forecasts", params={"horizon": 3, "sensor": "773869"}).json()
    assert [(p["horizon_steps"], p["target_time"]) for p in one["data"]] == [
        (3, "2012-03-08T00:10:00-08:00")
    ]


def test_live_forecast_equals_the_bundles_offline_forecast(client, los_loop, los_loop_bundle):
    from urbanflow.models.bundle import load_bundle
    from urbanflow.models.forecast import forecast_table

    post_los_loop_readings(client, LAST_HOUR, los_loop)
    live = client.get("/v1/forecasts", params={"horizon": 6}).json()
    model, _ = load_bundle(los_loop_bundle)
    offline = forecast_table(model, los_loop, np.array([2015]))
    offline = offline[offline["horizon_steps"] == 6].set_index("sensor_id")["value"]
    served = pd.Series({p["sensor_id"]: p["value"] for p in live["data"]})
    complete = np.isfinite(los_loop.readings[LAST_HOUR, :, 0]).all(axis=0)
    ids = [s for s, full in zip(los_loop.sensors.ids, complete, strict=True) if full]
    np.testing.assert_allclose(served[ids], offline[ids], rtol=1e-5)


def test_a_sensor_with_less_than_half_its_window_is_listed_missing(client, los_loop):
    rows = [r for r in reading_rows(los_loop, LAST_HOUR) if r["value"] is not None]
    sensor = rows[0]["sensor_id"]
    kept = [r for r in rows if r["sensor_id"] != sensor]
    own = [r for r in rows if r["sensor_id"] == sensor]
    assert len(own) == 12  # present at every step of the hour
    client.post("/v1/readings", json=kept + own[:5])  # 5 of 12: less than half
    wait_issued(client)
    answer = client.get("/v1/forecasts", params={"horizon": 1}).json()
    assert answer["stored"] and sensor in answer["missing"]
    assert sensor not in {p["sensor_id"] for p in answer["data"]}
    # A late reading never changes the stored forecast (issue 9) ...
    client.post("/v1/readings", json=own[5:6])
    wait_issued(client)
    answer = client.get("/v1/forecasts", params={"horizon": 1}).json()
    assert answer["issued_at"] == "2012-03-07T23:55:00-08:00" and sensor in answer["missing"]
    # ... it counts in the next one: 23:05 … 00:00 holds 5 of the 6 + the 00:00 reading: half.
    last = [r for r in reading_rows(los_loop, slice(2015, 2016)) if r["value"] is not None]
    answer = client.post("/v1/readings", json=[{**r, "timestamp": NEXT_STEP} for r in last])
    assert answer.status_code == 200, answer.text
    wait_issued(client)
    answer = client.get("/v1/forecasts", params={"horizon": 1}).json()
    assert answer["issued_at"] == NEXT_STEP and answer["stored"]
    assert sensor not in answer["missing"]


def test_no_qualifying_sensor_is_409_naming_the_window(client):
    client.post("/v1/readings", json=[row(timestamp="2012-03-07T08:05:00-08:00")])
    answer = client.get("/v1/forecasts")
    assert answer.status_code == 409
    assert "from 2012-03-07T07:10:00-08:00 to 2012-03-07T08:05:00-08:00" in answer.json()["detail"]


def test_a_correction_changes_later_forecasts_never_the_stored_one(client, los_loop):
    post_los_loop_readings(client, LAST_HOUR, los_loop)
    wait_issued(client)
    params = {"horizon": 1, "sensor": "773869"}
    before = client.get("/v1/forecasts", params=params).json()
    assert before["stored"] and before["issued_at"] == "2012-03-07T23:55:00-08:00"
    jam = [row(timestamp="2012-03-07T23:55:00-08:00", value=5.0)]  # a jam at the newest step
    assert client.post("/v1/readings", json=jam).json()["updated"] == 1
    wait_issued(client)
    assert client.get("/v1/forecasts", params=params).json() == before
    past = client.get("/v1/forecasts", params={**params, "issued_at": before["issued_at"]})
    assert past.json() == before
    # The next step's forecast sees the corrected reading (and a jam that goes on).
    client.post("/v1/readings", json=[row(timestamp=NEXT_STEP, value=5.0)])
    computed = client.get("/v1/forecasts", params=params).json()  # 1 of 207 sensors: not issued
    assert computed["issued_at"] == NEXT_STEP and not computed["stored"]
    assert computed["data"][0]["value"] < before["data"][0]["value"]


def test_writes_need_the_bearer_token_when_one_is_set(los_loop_bundle, tmp_path):
    app = create_app(ServeSettings(los_loop_bundle, tmp_path / "store.duckdb", token="s3cret"))
    with TestClient(app) as guarded:
        bare = guarded.post("/v1/readings", json=[row()])
        assert bare.status_code == 401 and "URBANFLOW_TOKEN" in bare.json()["detail"]
        assert bare.headers["www-authenticate"] == "Bearer"
        wrong = guarded.post(
            "/v1/readings", json=[row()], headers={"Authorization": "Bearer guess"}
        )
        assert wrong.status_code == 401
        assert guarded.get("/health").json()["readings"] == 0
        right = guarded.post(
            "/v1/readings", json=[row()], headers={"Authorization": "Bearer s3cret"}
        )
        assert right.status_code == 200
        assert guarded.get("/v1/sensors").status_code == 200  # reads stay open


def test_the_documented_post_example_gives_the_documented_answer(client):
    """docs/serving.md's curl example, run: its body and the answer it shows."""
    text = (Path(__file__).parents[2] / "docs" / "serving.md").read_text(encoding="utf-8")
    example = text.split("curl -X POST http://127.0.0.1:8000/v1/readings", 1)[1]
    body = example.split("-d '", 1)[1].split("'", 1)[0]
    shown = example.split("# ", 1)[1].splitlines()[0]
    answer = client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    assert answer.json() == json.loads(shown)
