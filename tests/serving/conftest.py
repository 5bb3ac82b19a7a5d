"""Shared fixtures of the service tests: the app on a fresh store, a real HTTP server.

The Los-loop dataset and bundle fixtures (``los_loop``, ``los_loop_bundle``) are in
tests/conftest.py, shared with the CLI tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.serving.app import create_app
from urbanflow.serving.server import BackgroundServer
from urbanflow.serving.settings import ServeSettings


@pytest.fixture
def client(los_loop_bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The app on a fresh store, started (lifespan run) for the test."""
    app = create_app(ServeSettings(los_loop_bundle, tmp_path / "store.duckdb"))
    with TestClient(app) as test_client:
        yield test_client


def reading_rows(dataset: CityDataset, steps: slice) -> list[dict[str, object]]:
    """The readings of ``steps`` as the JSON rows ``POST /v1/readings`` takes (null: missing)."""
    values = dataset.readings[steps, :, 0]
    stamps = dataset.timestamps[steps]
    return [
        {
            "sensor_id": sensor_id,
            "timestamp": stamp.isoformat(),
            "value": None if np.isnan(values[t, n]) else float(values[t, n]),
        }
        for t, stamp in enumerate(stamps)
        for n, sensor_id in enumerate(dataset.sensors.ids)
    ]


def post_los_loop_readings(
    target: TestClient | httpx.Client | str,
    steps: slice,
    dataset: CityDataset | None = None,
    token: str | None = None,
) -> dict[str, int]:
    """POST Los-loop readings of ``steps`` to a client or a base URL; returns the counts."""
    rows = reading_rows(dataset or load_dataset("los-loop"), steps)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(target, str):
        response = httpx.post(f"{target}/v1/readings", json=rows, headers=headers, timeout=60)
    else:
        response = target.post("/v1/readings", json=rows, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a background thread; yields the base URL."""
    with BackgroundServer(app, "127.0.0.1", free_port()) as server:
        yield server.url
