"""`urbanflow demo`: a quick model, the service, a replayed feed and its live accuracy."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import numpy as np
import pytest
from tests.serving.conftest import free_port, running_server

from urbanflow.cli import main
from urbanflow.serving.app import create_app
from urbanflow.serving.replay import replay, step_rows
from urbanflow.serving.settings import ServeSettings
from urbanflow.serving.store import ReadingStore


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_replay_posts_each_step_and_asks_for_the_forecast(los_loop, los_loop_bundle, tmp_path):
    app = create_app(ServeSettings(los_loop_bundle, tmp_path / "store.duckdb"))
    seen = []
    with running_server(app) as url, httpx.Client(base_url=url) as client:
        replay(client, los_loop, range(1990, 2010), 0.0, seen.append)
        scores = client.get("/v1/accuracy", params={"minutes": 24 * 60}).json()
    assert [s.index for s in seen] == list(range(1990, 2010))
    assert seen[0].forecast_status == 409  # one step of twelve: less than half a window
    assert seen[-1].forecast_status == 200
    assert scores["data"][0]["count"] > 0  # forecasts the replay asked for were scored
    with ReadingStore(tmp_path / "store.duckdb") as store:
        assert store.count() == int(np.isfinite(los_loop.readings[1990:2010, :, 0]).sum())


def test_step_rows_turn_missing_readings_into_nulls(los_loop):
    readings = los_loop.readings.copy()
    readings[7, 3, 0] = np.nan
    rows = step_rows(replace(los_loop, readings=readings), 7)
    assert len(rows) == 207 and rows[3]["value"] is None and rows[4]["value"] is not None
    assert rows[0]["timestamp"] == los_loop.timestamps[7].isoformat()


@pytest.mark.slow  # trains its own quick model, as `make demo` does
def test_demo_trains_serves_replays_and_reuses_its_model(tmp_path, capsys):
    args = ["demo", "--runs-dir", str(tmp_path), "--train-minutes", "0.05", "--steps", "6"]
    args += ["--pace", "0", "--no-keep-serving", "--port", str(free_port())]
    code, out = run(args, capsys)
    assert code == 0, out
    assert "Training a quick STID model" in out
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/", out)
    assert "Live accuracy" in out and "15 min" in out and "last value" in out
    assert (tmp_path / "demo-model" / "weights.safetensors").exists()
    (store,) = tmp_path.glob("demo-*/readings.duckdb")
    with ReadingStore(store) as opened:
        assert opened.latest_time().isoformat() == "2012-03-07T08:25:00+00:00"  # 00:25 local
    again = ["demo", "--runs-dir", str(tmp_path), "--steps", "1", "--pace", "0"]
    code, out = run([*again, "--no-keep-serving", "--port", str(free_port())], capsys)
    assert code == 0 and "Using the model trained by an earlier demo" in out


def test_demo_refuses_a_busy_port_and_a_bad_step_count(tmp_path, capsys, los_loop_bundle):
    base = ["demo", "--runs-dir", str(tmp_path), "--model-dir", str(los_loop_bundle)]
    code, out = run([*base, "--steps", "0"], capsys)
    assert code == 2 and "--steps 0 is outside 1…288" in out
    with running_server(create_app(ServeSettings(los_loop_bundle, tmp_path / "s.duckdb"))) as url:
        port = url.rsplit(":", 1)[1]
        code, out = run([*base, "--port", port, "--no-keep-serving"], capsys)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in out


def wait_for_readings(url: str, demo: subprocess.Popen[str], printed: str) -> None:
    """Poll the demo's ``/health`` until its store holds readings (deadline 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert demo.poll() is None, f"the demo exited ({demo.returncode}):\n{printed}"
        try:
            if httpx.get(f"{url}/health", timeout=5).json().get("readings", 0) > 0:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the demo stored no reading in 60 s:\n{printed}")


def test_ctrl_c_stops_the_demo_cleanly_and_keeps_the_readings(los_loop_bundle, tmp_path):
    command = [sys.executable, "-m", "urbanflow", "demo", "--runs-dir", str(tmp_path)]
    command += ["--model-dir", str(los_loop_bundle), "--pace", "2", "--port", str(free_port())]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    demo = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Dashboard:"):
                break
        found = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+)/", "".join(lines))
        assert found, "".join(lines)
        wait_for_readings(found[1], demo, "".join(lines))  # the replay is under way
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=60)
    finally:
        demo.kill()
    assert demo.returncode == 0, "".join(lines) + out
    assert "Interrupted." in out and "Stopped." in out
    (store,) = tmp_path.glob("demo-*/readings.duckdb")
    with ReadingStore(store) as opened:
        stored = opened.count()
    assert stored > 0 and stored % 207 == 0  # whole steps only (Los-loop has no gaps)
