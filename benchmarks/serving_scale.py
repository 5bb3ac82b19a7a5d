"""Live service at city scale: one step of every sensor, per-sensor reads, store size, start-up.

    .venv/bin/python benchmarks/serving_scale.py --dataset /tmp/scale/roads-10000 \\
        --model-dir DIR [--history 100] [--steps 20] [--clients 8] [--requests 300]

Issue 11 §4 on a synthetic road city (``urbanflow datasets synth roads --sensors N --days 28
--seed 0 --out DIR``) and a bundle trained on it (``urbanflow train --dataset DIR --model stid
--time-budget 0.1 --out BUNDLE``). Reuses ``benchmarks/serving.py``: a real ``urbanflow serve``
subprocess on 127.0.0.1 (fresh store, ``OMP_NUM_THREADS=1``), driven over loopback HTTP:

1. start-up: seconds until ``GET /health`` answers, and the server's peak resident memory
   (``VmHWM``) then, against issue 11's bound of 3 × the raw float32 readings + 1 GB;
2. history: ``--history`` steps of every sensor posted as JSON, in requests of at most 100,000
   readings, and the worker's catch-up awaited (not timed);
3. step: ``--steps`` times, the next step of every sensor posted as one JSON request, then
   ``GET /health`` polled every 5 ms until ``last_issued_at`` is that step: the time from
   sending the POST to seeing its forecast stored (the POST's own time too);
4. reads: ``GET /v1/forecasts?sensor=<id>`` from ``--clients`` keep-alive clients ×
   ``--requests`` each, each request a different sensor (a seeded shuffle), nothing posted
   meanwhile, each load other sensors than the loads before (while the city has enough of
   them: 4 loads × 8 × 300 = 9,600 sensors); then ``?sensor=<id>&horizon=3``; both from lean
   clients in processes of their own (``serving.process_load``, the standard library's
   ``http.client``), then from httpx clients in threads of this process. The p99 target is
   judged on the processes: the threads share the interpreter lock and httpx costs about
   0.5 ms of CPU a request, both measured as latency on a machine whose 2 cores the clients
   share with the server;
5. store: the server stopped, the readings table copied alone in time order into a fresh DuckDB
   file: MB per million readings.

Steps 3 and 4 also give the server process's CPU time (user + system, from ``/proc``) per step
and per request: on a machine shared with other work, wall times stretch with the load, CPU
time much less.

Prints a table and writes ``serving_scale_<N>.json`` to ``--output`` (default
benchmarks/results).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from serving import Readings, cached_load, json_body, post, process_load, run_record, serve
from urbanflow.data.catalog import load_dataset
from urbanflow.serving.schemas import MAX_ROWS

MB = 1e6
READS = (  # name, query suffix, load: each request another sensor
    ("sensor_processes", "", process_load),  # judged: first, so they read fresh sensors
    ("sensor_horizon_3_processes", "&horizon=3", process_load),
    ("sensor", "", cached_load),
    ("sensor_horizon_3", "&horizon=3", cached_load),
)


def wait_issued(client: httpx.Client, stamp: pd.Timestamp, timeout: float = 600.0) -> float:
    """Poll ``GET /health`` every 5 ms until the forecast issued at ``stamp`` is stored;
    returns the moment (``perf_counter``) it was seen."""
    deadline = time.perf_counter() + timeout
    while True:
        issued = client.get("/health").json()["last_issued_at"]
        if issued is not None and pd.Timestamp(issued) >= stamp:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no forecast issued at {stamp} within {timeout:.0f} s")
        time.sleep(0.005)


def post_history(client: httpx.Client, readings: Readings, steps: int) -> int:
    """Post the first ``steps`` steps of every sensor; returns the readings sent."""
    per = readings.per_step
    chunk = max(1, MAX_ROWS // per) * per
    sent = 0
    while sent < steps * per:
        count = min(chunk, steps * per - sent)
        post(client, json_body(readings.rows(sent, count)), "application/json")
        sent += count
    wait_issued(client, readings.last_time(sent))
    return sent


def step_cycles(
    client: httpx.Client, readings: Readings, offset: int, steps: int
) -> tuple[dict[str, object], int]:
    """POST the next step of every sensor and wait for its forecast to be stored, ``steps``
    times; returns the figures and the new offset."""
    per = readings.per_step
    cycles, posts = [], []
    for _ in range(steps):
        body = json_body(readings.rows(offset, per))  # built before the clock starts
        offset += per
        began = time.perf_counter()
        seconds, counts = post(client, body, "application/json")
        if counts["new"] + counts["empty"] != per:
            raise RuntimeError(f"a step of {per} readings stored as {counts}")
        seen = wait_issued(client, readings.last_time(offset))
        cycles.append(seen - began)
        posts.append(seconds)
    ms = np.array(cycles) * 1e3
    return {
        "steps": steps,
        "readings_per_step": per,
        "median_ms": round(float(np.median(ms)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "max_ms": round(float(ms.max()), 1),
        "post_median_ms": round(float(np.median(posts)) * 1e3, 1),
    }, offset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a city folder (synthetic roads)")
    parser.add_argument("--model-dir", type=Path, required=True, help="a bundle trained on it")
    parser.add_argument("--history", type=int, default=100, help="steps posted before timing")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300, help="GETs a client")
    parser.add_argument("--seed", type=int, default=0, help="order of the sensors read")
    parser.add_argument(
        "--keep-forecasts",
        default="1h",
        help="serve's --keep-forecasts: on a new store the worker issues this far back, so the "
        "history's catch-up issues a dozen forecasts, not one per history step",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()

    load_before = os.getloadavg()
    dataset = load_dataset(options.dataset)
    raw_bytes = dataset.readings[:, :, 0].size * 4  # float32, the whole city folder
    readings = Readings(dataset)
    del dataset
    gc.collect()
    gc.freeze()
    order = np.random.default_rng(options.seed).permutation(readings.ids)
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="urbanflow-serving-scale-") as temporary:
        folder = Path(temporary)
        keep = ("--keep-forecasts", options.keep_forecasts)
        with serve(options.model_dir, folder, keep) as server:
            startup_peak = server.peak_rss_bytes()
            print(
                f"server ready in {server.startup_seconds:.1f} s, peak {startup_peak / MB:,.0f} MB",
                flush=True,
            )
            with httpx.Client(base_url=server.url, timeout=600) as client:
                began = time.perf_counter()
                offset = post_history(client, readings, options.history)
                history_seconds = time.perf_counter() - began
                print(f"history: {offset:,} readings in {history_seconds:.0f} s", flush=True)
                cpu = server.cpu_seconds()
                step, offset = step_cycles(client, readings, offset, options.steps)
                # the server's own CPU per step, polling included: a figure the load on a
                # shared machine stretches less than wall time
                step["server_cpu_ms_per_step"] = round(
                    (server.cpu_seconds() - cpu) / options.steps * 1e3, 1
                )
                print(f"step: {step}", flush=True)
                reads: dict[str, object] = {}
                for j, (name, suffix, load) in enumerate(READS):
                    # each load reads sensors no earlier one read: answers not built yet
                    shifted = np.roll(order, -j * options.clients * options.requests)
                    queries = [f"?sensor={sensor}{suffix}" for sensor in shifted]
                    cpu = server.cpu_seconds()
                    reads[name] = load(server.url, queries, options.clients, options.requests)
                    reads[name]["server_cpu_ms_per_request"] = round(
                        (server.cpu_seconds() - cpu) / reads[name]["requests"] * 1e3, 2
                    )
                    print(f"GET {name}: {reads[name]}", flush=True)
                stored = int(client.get("/health").json()["readings"])
            peak = server.peak_rss_bytes()
            server.stop()
            table = server.readings_table_bytes()
        present = sum(1 for _, _, value in readings.rows(0, offset) if np.isfinite(value))
        if stored != present:  # outages are sent as nulls: no row
            raise RuntimeError(f"the store holds {stored} readings, {present} were sent")
        result = {
            "sensors": readings.per_step,
            "raw_readings_mb": round(raw_bytes / MB, 1),
            "startup": {
                "seconds": round(server.startup_seconds, 1),
                "peak_rss_mb": round(startup_peak / MB, 1),
                "bound_mb": round((3 * raw_bytes + 1e9) / MB, 1),
            },
            "peak_rss_mb_after_run": round(peak / MB, 1),
            "history": {
                "readings": options.history * readings.per_step,
                "seconds": round(history_seconds, 1),
            },
            "step": step,
            "reads": reads,
            "store": {
                "readings": stored,
                "readings_table_mb_per_million": round(table / stored, 2),
            },
        }
    meta = {
        **run_record(load_before),
        "dataset": options.dataset,
        "model_dir": str(options.model_dir),
        "clients": options.clients,
        "requests_per_client": options.requests,
        "keep_forecasts": options.keep_forecasts,
    }
    print(render(meta, result))
    options.output.mkdir(parents=True, exist_ok=True)
    target = options.output / f"serving_scale_{readings.per_step}.json"
    target.write_text(json.dumps({"meta": meta, **result}, indent=2) + "\n")


def render(meta: dict[str, object], result: dict[str, object]) -> str:
    startup, step, store = result["startup"], result["step"], result["store"]
    lines = [
        f"{result['sensors']:,} sensors, measured {meta['date']}, commit {meta['commit']}, "
        f"{meta['machine']['cores']} cores (1-min load average "
        f"{meta['load_average_1min']['start']} at the start, {meta['load_average_1min']['end']} "
        "at the end); loopback HTTP, one uvicorn worker.",
        "",
        "| measure | figure | target |",
        "|---|---|---|",
        f"| step of {step['readings_per_step']:,} readings posted → its forecast stored, median "
        f"(p90, max) of {step['steps']} | {step['median_ms']:.0f} ms ({step['p90_ms']:.0f}, "
        f"{step['max_ms']:.0f}); the POST alone {step['post_median_ms']:.0f} ms; server CPU "
        f"{step['server_cpu_ms_per_step']:.0f} ms a step | ≤ 500 ms |",
    ]
    for key, suffix, load in READS:
        f = result["reads"][key]
        label = f"`?sensor={suffix}`"
        kind = "client processes" if load is process_load else "client threads"
        lines.append(
            f"| GET /v1/forecasts{label}, {f['clients']} {kind} × {f['requests'] // f['clients']}"
            f", p50 / p99 / max | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} / {f['max_ms']:.1f} ms, "
            f"{f['requests_per_s']:.0f} requests/s; server CPU "
            f"{f['server_cpu_ms_per_request']:.2f} ms a request | "
            f"{'p99 ≤ 10 ms' if load is process_load else '– (the clients’ own cost)'} |"
        )
    lines += [
        f"| readings table, {store['readings']:,} readings | "
        f"{store['readings_table_mb_per_million']:.2f} MB per million | ≤ 10 MB |",
        f"| `urbanflow serve` start-up: seconds, peak memory | {startup['seconds']:.1f} s, "
        f"{startup['peak_rss_mb']:,.0f} MB (after the run: "
        f"{result['peak_rss_mb_after_run']:,.0f} MB) | ≤ {startup['bound_mb']:,.0f} MB "
        f"(3 × {result['raw_readings_mb']:,.0f} MB + 1 GB) |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
