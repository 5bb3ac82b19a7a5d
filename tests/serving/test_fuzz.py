"""Fuzzing the service (issue #4): no request, however malformed, gets a 5xx or half a write.

Schemathesis generates requests from the app's own OpenAPI document (valid and invalid ones,
JSON and CSV bodies) against an app whose store already holds Los-loop readings, so that
forecasts are computed. Hypothesis adds near-valid reading batches, where the ingest rules
live. Every run is bounded and derandomized: the same cases each time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.serving.conftest import post_los_loop_readings, reading_rows

from urbanflow.data.dataset import CityDataset
from urbanflow.serving.app import create_app
from urbanflow.serving.settings import ServeSettings
from urbanflow.serving.store import ReadingStore

CASES = 30  # fuzzed cases per operation; the examples and coverage phases add a few more
FUZZ_CONFIG = {
    "seed": 20240604,
    "generation": {"max-examples": CASES, "deterministic": True, "database": "none"},
}
ZONE = "America/Los_Angeles"  # Los-loop's time zone
KNOWN_SENSOR = "773869"  # Los-loop's first sensor
TOKEN = "a-token-the-fuzzer-will-not-guess-7f3c"


@schemathesis.serializer("text/csv")
def csv_serializer(context: schemathesis.SerializationContext, value: object) -> bytes:
    """The CSV body: generated text as UTF-8. Text of even length gets the header line first,
    so that random rows reach the row parser rather than all failing on the header."""
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) % 2 == 0:
        text = "sensor_id,timestamp,value\n" + text
    return text.encode()


def stocked_app(
    bundle: Path, store_path: Path, los_loop: CityDataset, token: str | None = None
) -> FastAPI:
    """An app (not started) on a store holding two hours of Los-loop readings."""
    with TestClient(create_app(ServeSettings(bundle, store_path))) as client:
        post_los_loop_readings(client, slice(0, 24), los_loop)
    return create_app(ServeSettings(bundle, store_path, token=token))


def started(app: FastAPI) -> FastAPI:
    """Start the app's lifespan (store and model open) the way ``case.call`` does; Schemathesis'
    pytest plugin stops it when the test ends."""
    with schemathesis.python.asgi.get_client(app):
        pass
    return app


# The OpenAPI document needs no model or store: build it from an app that is never started,
# so the cases exist at collection time. Each test sends them to its own started app
# (``case.call(app=...)``). (``schemathesis.pytest.from_fixture`` would load it from a fixture,
# but Schemathesis 4.32 fails on pytest 9 there: ``Function`` has no ``_nodeid``.)
SPEC = create_app(ServeSettings(Path("unused-bundle"), Path("unused.duckdb"))).openapi()
schema = schemathesis.openapi.from_dict(SPEC, config=schemathesis.Config.from_dict(FUZZ_CONFIG))


@pytest.fixture(scope="module")
def read_app(
    los_loop_bundle: Path, los_loop: CityDataset, tmp_path_factory: pytest.TempPathFactory
) -> FastAPI:
    return stocked_app(los_loop_bundle, tmp_path_factory.mktemp("fuzz") / "store.duckdb", los_loop)


@pytest.fixture
def write_app(los_loop_bundle: Path, los_loop: CityDataset, tmp_path: Path) -> FastAPI:
    return started(stocked_app(los_loop_bundle, tmp_path / "store.duckdb", los_loop))


@pytest.fixture
def guarded_app(los_loop_bundle: Path, los_loop: CityDataset, tmp_path: Path) -> FastAPI:
    app = stocked_app(los_loop_bundle, tmp_path / "store.duckdb", los_loop, token=TOKEN)
    return started(app)


def store_of(app: FastAPI) -> ReadingStore:
    return app.state.service.store


def described(case: schemathesis.Case, response: schemathesis.Response) -> str:
    return f"{case.as_curl_command()}\n-> {response.status_code} {response.text[:2000]}"


@pytest.mark.slow  # fuzz (schemathesis)
@schema.include(method="GET").parametrize()
def test_reads_never_answer_5xx(case: schemathesis.Case, read_app: FastAPI) -> None:
    response = case.call(app=read_app)
    assert response.status_code < 500, described(case, response)
    # A random sensor id is refused (404) before the other parameters are read: send the
    # same parameters for a sensor the model knows too.
    if "sensor_id" in (case.path_parameters or {}):
        case.path_parameters["sensor_id"] = KNOWN_SENSOR
    elif "sensor" in (case.query or {}):
        case.query["sensor"] = KNOWN_SENSOR
    else:
        return
    response = case.call(app=read_app)
    assert response.status_code < 500, described(case, response)


# The app's store is meant to carry over from case to case: each case checks its own effect.
SHARED_APP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.slow  # fuzz (schemathesis)
@schema.include(method="POST").parametrize()
@SHARED_APP
def test_writes_never_answer_5xx_and_store_whole_batches_or_nothing(
    case: schemathesis.Case, write_app: FastAPI
) -> None:
    store = store_of(write_app)
    before = store.count()
    response = case.call(app=write_app)
    assert response.status_code < 500, described(case, response)
    after = store.count()
    if response.status_code == 200:
        assert after == before + response.json()["new"], described(case, response)
    else:
        assert after == before, f"readings stored on a refusal: {described(case, response)}"


@pytest.mark.slow  # fuzz (schemathesis)
@schema.include(method="POST").parametrize()
@SHARED_APP
def test_writes_without_the_token_are_refused_and_store_nothing(
    case: schemathesis.Case, guarded_app: FastAPI
) -> None:
    before = store_of(guarded_app).count()
    response = case.call(app=guarded_app)
    assert response.status_code < 500, described(case, response)
    if case.method.upper() == "POST":
        assert response.status_code == 401, described(case, response)
    assert store_of(guarded_app).count() == before


def test_a_token_guards_writes_and_leaves_reads_open(
    los_loop_bundle: Path, los_loop: CityDataset, tmp_path: Path
) -> None:
    app = create_app(ServeSettings(los_loop_bundle, tmp_path / "store.duckdb", token="t"))
    rows = reading_rows(los_loop, slice(0, 2))
    csv = "sensor_id,timestamp,value\n" + "".join(
        f"{r['sensor_id']},{r['timestamp']},{r['value']}\n" for r in rows
    )
    refused = (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer T"},
        {"Authorization": "Bearer tt"},
        {"Authorization": "Bearer t t"},
        {"Authorization": "Basic dDp0"},  # t:t
        {"Authorization": "t"},
        {"X-Token": "t"},
    )
    with TestClient(app) as client:
        for headers in refused:
            for body in (
                {"json": rows},
                {"content": csv, "headers": {"Content-Type": "text/csv", **headers}},
                {"content": b"not a batch", "headers": {"Content-Type": "text/plain"}},
            ):
                sent = {"headers": headers, **body}
                answer = client.post("/v1/readings", **sent)
                assert answer.status_code == 401, (headers, answer.text)
                assert answer.headers["WWW-Authenticate"] == "Bearer"
                assert "token" in answer.json()["detail"]
        assert client.get("/health").json()["readings"] == 0
        assert client.get("/v1/sensors").status_code == 200
        answer = client.get(f"/v1/sensors/{los_loop.sensors.ids[0]}/readings")
        assert answer.status_code == 200 and answer.json()["count"] == 0

        answer = client.post("/v1/readings", json=rows, headers={"Authorization": "Bearer t"})
        assert answer.status_code == 200, answer.text
        assert client.get("/health").json()["readings"] == len(rows)


# --- Near-valid batches: where the ingest rules are --------------------------------------------

LOS_LOOP_IDS = ("773869", "767541", "767542", "717447")
ON_GRID = st.builds(
    lambda day, minute, zone: f"2012-03-{day:02d}T{minute // 60:02d}:{minute % 60:02d}:00{zone}",
    st.integers(1, 31),
    st.integers(0, 287).map(lambda k: 5 * k),
    st.sampled_from(["", "-08:00", "-07:00", "Z", "+05:30", "-0800", "+14:00"]),
)
ODD_TIMES = st.sampled_from(
    [
        "2012-03-11T02:30:00",  # does not exist in Los Angeles
        "2012-11-04T01:30:00",  # occurs twice
        "2012-03-01T00:03:00-08:00",  # off the grid
        "2012-03-01T00:00:00.5-08:00",
        "2999-01-01T00:00:00Z",  # the future
        "0001-01-01T00:00:00Z",
        "1677-09-21T00:10:00Z",
        "9999-12-31T23:55:00Z",
        "1960-01-01T00:00:00Z",
        "2012-13-01T00:00:00",
        "2012-03-01",
        "20120301T000000",
        "yesterday",
        "",
        " 2012-03-01T00:05:00-08:00 ",
        "2012-03-01T00:05:00+99:00",
        "NaT",
    ]
)
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=32)


def good_row() -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {
            "sensor_id": st.sampled_from(LOS_LOOP_IDS),
            "timestamp": ON_GRID,
            "value": st.one_of(FINITE, st.none()),
        }
    )


def odd_field() -> st.SearchStrategy[tuple[str, object]]:
    """One field of a row, set to something odd (often invalid, sometimes valid after all)."""
    return st.one_of(
        st.tuples(st.just("sensor_id"), st.sampled_from(["", " ", "0", "773869 ", "773869\n"])),
        st.tuples(st.just("timestamp"), st.one_of(ODD_TIMES, st.text(max_size=30))),
        st.tuples(
            st.just("value"),
            st.one_of(
                st.sampled_from([1e308, -1e308, 5e-324, 2**63, "61.5", "nan", "inf", "", "x"]),
                st.floats(),
            ),
        ),
    )


@st.composite
def readings(draw: st.DrawFn) -> list[dict[str, object]]:
    """A batch of good rows, half the time with one odd field in one row."""
    rows = draw(
        st.lists(
            good_row(),
            min_size=1,
            max_size=8,
            unique_by=lambda r: (r["sensor_id"], r["timestamp"]),
        )
    )
    if draw(st.booleans()):
        i = draw(st.integers(0, len(rows) - 1))
        field, value = draw(odd_field())
        rows[i] = {**rows[i], field: value}
    return rows


def timestamps() -> st.SearchStrategy[str]:
    return st.one_of(ON_GRID, ODD_TIMES, st.text(max_size=30))


def as_csv(rows: list[dict[str, object]]) -> str:
    def cell(value: object) -> str:
        return "" if value is None else str(value)

    return "sensor_id,timestamp,value\n" + "".join(
        f"{cell(r['sensor_id'])},{cell(r['timestamp'])},{cell(r['value'])}\n" for r in rows
    )


@pytest.fixture(scope="module")
def ingest_client(
    los_loop_bundle: Path, los_loop: CityDataset, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    store = tmp_path_factory.mktemp("fuzz-ingest") / "store.duckdb"
    with TestClient(stocked_app(los_loop_bundle, store, los_loop)) as client:
        yield client


NEAR_VALID = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def on_the_grid(text: str) -> bool:
    """Whether a time is on Los-loop's grid (a reading every 5 minutes of local time), read
    to the nanosecond."""
    stamp = pd.Timestamp(text.strip())
    local = stamp.tz_localize(ZONE) if stamp.tzinfo is None else stamp.tz_convert(ZONE)
    return (local.minute % 5, local.second, local.microsecond, local.nanosecond) == (0, 0, 0, 0)


@pytest.mark.slow  # fuzz (Hypothesis)
@pytest.mark.parametrize("media", ["application/json", "text/csv"])
@NEAR_VALID
@given(rows=readings())
@example(
    rows=[{"sensor_id": "773869", "timestamp": "2012-03-01T00:10:00.000001-08:00", "value": 1}]
)
def test_near_valid_batches_are_stored_whole_or_refused_whole(
    ingest_client: TestClient, media: str, rows: list[dict[str, object]]
) -> None:
    if media == "text/csv":
        body = as_csv(rows).encode()
    else:
        body = json.dumps(rows, allow_nan=True).encode()
    before = ingest_client.get("/health").json()["readings"]
    answer = ingest_client.post("/v1/readings", content=body, headers={"Content-Type": media})
    assert answer.status_code < 500, f"{media} {body!r}: {answer.text}"
    after = ingest_client.get("/health").json()["readings"]
    if answer.status_code == 200:
        assert after == before + answer.json()["new"]
        off = [r["timestamp"] for r in rows if not on_the_grid(str(r["timestamp"]))]
        assert not off, f"times off the grid were stored (at a grid time): {off}"
    else:
        assert answer.status_code in (413, 422), answer.text
        assert after == before, f"{answer.status_code} but readings were stored: {body!r}"


@pytest.mark.parametrize("media", ["application/json", "text/csv"])
def test_a_time_off_the_grid_by_a_nanosecond_is_refused(
    ingest_client: TestClient, media: str
) -> None:
    """Found by the grid check above: a fraction finer than a microsecond must not be dropped
    on the way in, turning an off-grid time into the grid time it follows."""
    sensor, grid_time = "767541", "2012-03-01T00:15:00-08:00"
    row = {"sensor_id": sensor, "timestamp": "2012-03-01T00:15:00.000000001-08:00", "value": 2.0}
    body = as_csv([row]) if media == "text/csv" else json.dumps([row])
    before = ingest_client.get(f"/v1/sensors/{sensor}/readings").json()["data"]
    answer = ingest_client.post("/v1/readings", content=body, headers={"Content-Type": media})
    assert answer.status_code == 422, f"{answer.status_code} {answer.text}"
    assert "grid" in answer.json()["detail"]
    after = ingest_client.get(f"/v1/sensors/{sensor}/readings").json()["data"]
    assert after == before, f"the reading at {grid_time} changed"


@pytest.mark.slow  # fuzz (Hypothesis)
@NEAR_VALID
@given(
    start=st.none() | timestamps(),
    end=st.none() | timestamps(),
    limit=st.integers(1, 300),
)
def test_reading_queries_with_odd_times_never_answer_5xx(
    ingest_client: TestClient, start: str | None, end: str | None, limit: int
) -> None:
    params: dict[str, str | int] = {"limit": limit}
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
    answer = ingest_client.get(f"/v1/sensors/{KNOWN_SENSOR}/readings", params=params)
    assert answer.status_code < 500, f"{params}: {answer.text}"
    if answer.status_code == 200:
        stamps = [pd.Timestamp(r["timestamp"]) for r in answer.json()["data"]]
        assert len(stamps) <= limit and stamps == sorted(stamps)
    else:
        assert answer.status_code == 422, answer.text
