"""Live service: ingest throughput, forecast latency and store size of `urbanflow serve`.

    .venv/bin/python benchmarks/serving.py [--model-dir DIR] [--quick] [--output benchmarks/results]

Starts a real `urbanflow serve` subprocess on 127.0.0.1 (a free port, a fresh DuckDB store
in a temporary folder, OMP_NUM_THREADS=1) over a bundle from ``--model-dir`` or one trained
here (`urbanflow train --model stid --max-epochs 1`, about 20 s), waits for ``GET /health``,
then measures, all over loopback HTTP:

1. ingest: sequential ``POST /v1/readings`` batches of ``--batch`` readings, JSON and then
   CSV, each batch new data (Los-loop's week, shifted by whole weeks into later 2012 weeks);
   then the same batches sent again (nothing changes: the idempotent path);
2. forecasts: ``GET /v1/forecasts`` (every sensor and horizon) and ``?horizon=3``, "cached"
   (``--clients`` keep-alive clients × ``--requests`` each, no ingest in between) and "fresh"
   (one client; each request follows a POST of the next 5-minute step, so it is recomputed);
3. store size: the server is stopped (DuckDB checkpoints on close) and the store's bytes
   (``.duckdb`` plus any ``.wal``) per million stored readings.

Prints a table and writes ``serving.json`` (figures, machine, versions, command, date); a
``--quick`` run (fewer batches and requests) writes it only to an ``--output`` given.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import multiprocessing
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import httpx
import numpy as np
import pandas as pd
from provenance import cpu_name, git_commit

from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset

HOST = "127.0.0.1"
WEEK = pd.Timedelta(days=7)


def run_record(load_before: tuple[float, float, float]) -> dict[str, object]:
    """Date, command, commit, machine and the 1-minute load average at the start of a run
    (``load_before``) and now: what every serving result file records."""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "commit": git_commit(),
        "machine": machine(),
        "load_average_1min": {
            "start": round(load_before[0], 2),
            "end": round(os.getloadavg()[0], 2),
        },
    }


def machine() -> dict[str, object]:
    cpu = cpu_name()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "duckdb": version("duckdb"),
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
        "httpx": version("httpx"),
        "torch": version("torch"),
    }


class Readings:
    """Los-loop's week repeated: step ``i`` is step ``i % T`` of the week, ``i // T`` weeks
    later (shifted in UTC, so times stay on the 5-minute grid across daylight saving)."""

    def __init__(self, dataset: CityDataset) -> None:
        self.values = dataset.readings[:, :, 0]
        self.timestamps = dataset.timestamps
        self.ids = list(dataset.sensors.ids)
        self.zone = dataset.metadata.timezone
        self._stamps: dict[int, list[str]] = {}

    @property
    def per_step(self) -> int:
        return len(self.ids)

    def stamps(self, week: int) -> list[str]:
        if week not in self._stamps:
            shifted = (self.timestamps.tz_convert("UTC") + week * WEEK).tz_convert(self.zone)
            self._stamps[week] = [s.isoformat() for s in shifted]
        return self._stamps[week]

    def rows(self, start: int, count: int) -> Iterator[tuple[str, str, float]]:
        """Readings ``start … start + count - 1`` of the stream, time-major, sensor-minor."""
        steps, per = len(self.timestamps), self.per_step
        for i in range(start, start + count):
            step, n = divmod(i, per)
            week, t = divmod(step, steps)
            yield self.ids[n], self.stamps(week)[t], float(self.values[t, n])

    def last_time(self, end: int) -> pd.Timestamp:
        """The time of reading ``end - 1``: the stream's newest once ``end`` are sent."""
        week, t = divmod((end - 1) // self.per_step, len(self.timestamps))
        return self.timestamps[t] + week * WEEK


def json_body(rows: Iterator[tuple[str, str, float]]) -> bytes:
    return json.dumps(
        [{"sensor_id": s, "timestamp": t, "value": None if np.isnan(v) else v} for s, t, v in rows]
    ).encode()


def csv_body(rows: Iterator[tuple[str, str, float]]) -> bytes:
    lines = ["sensor_id,timestamp,value"]
    lines += [f"{s},{t},{'' if np.isnan(v) else repr(v)}" for s, t, v in rows]
    return ("\n".join(lines) + "\n").encode()


BODIES: dict[str, tuple[Callable[[Iterator[tuple[str, str, float]]], bytes], str]] = {
    "json": (json_body, "application/json"),
    "csv": (csv_body, "text/csv"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    store: Path
    log: Path
    startup_seconds: float

    def peak_rss_bytes(self) -> int:
        """The server process's peak resident memory so far (Linux ``VmHWM``)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(row for row in status.splitlines() if row.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, all threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def store_bytes(self) -> dict[str, int]:
        files = {"duckdb": self.store, "wal": Path(f"{self.store}.wal")}
        return {k: p.stat().st_size if p.exists() else 0 for k, p in files.items()}

    def readings_table_bytes(self) -> int:
        """Bytes of the readings table alone: copied, in time order, into a fresh DuckDB file
        (the store file also holds stored forecasts and alert tables). Call after ``stop``."""
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / "readings.duckdb"
            connection = duckdb.connect(str(copy))
            connection.execute(f"ATTACH '{self.store}' AS source (READ_ONLY)")
            connection.execute(
                "CREATE TABLE readings AS SELECT * FROM source.readings ORDER BY ts, sensor_id"
            )
            connection.execute("DETACH source")
            connection.execute("CHECKPOINT")
            connection.close()
            return copy.stat().st_size

    def stop(self) -> float:
        """SIGINT (uvicorn's graceful shutdown: the store closes and checkpoints); seconds."""
        began = time.perf_counter()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"the server did not stop within 60 s; see {self.log}") from None
            if self.process.returncode != 0:
                raise RuntimeError(f"the server exited {self.process.returncode}; see {self.log}")
        return time.perf_counter() - began


@contextmanager
def serve(model_dir: Path, folder: Path, options: tuple[str, ...] = ()) -> Iterator[Server]:
    """``urbanflow serve`` of ``model_dir`` with a store in ``folder`` (and ``options``)."""
    port = free_port()
    store, log = folder / "store.duckdb", folder / "serve.log"
    command = [
        str(Path(sys.executable).with_name("urbanflow")),
        "serve",
        "--model-dir",
        str(model_dir),
        "--store",
        str(store),
        "--host",
        HOST,
        "--port",
        str(port),
        *options,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("URBANFLOW_TOKEN", None)
    began = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    server = Server(process, f"http://{HOST}:{port}", store, log, 0.0)
    try:
        deadline = began + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}): {log.read_text()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the server was not ready within 120 s: {log.read_text()}")
            time.sleep(0.1)
        server.startup_seconds = time.perf_counter() - began
        yield server
    finally:
        if process.poll() is None:
            server.stop()


def post(client: httpx.Client, body: bytes, media: str) -> tuple[float, dict[str, int]]:
    began = time.perf_counter()
    response = client.post("/v1/readings", content=body, headers={"content-type": media})
    seconds = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"POST /v1/readings: {response.status_code} {response.text[:300]}")
    return seconds, response.json()


def ingest_figures(seconds: list[float], batch: int, counted: int) -> dict[str, object]:
    median = float(np.median(seconds))
    tenth = max(1, len(seconds) // 10)
    return {
        "batches": len(seconds),
        "readings": counted,
        "batch_size": batch,
        "median_batch_ms": round(median * 1e3, 1),
        "p90_batch_ms": round(float(np.percentile(seconds, 90)) * 1e3, 1),
        "max_batch_ms": round(max(seconds) * 1e3, 1),
        "readings_per_s": round(batch / median),
        "overall_readings_per_s": round(counted / sum(seconds)),
        "first_tenth_median_ms": round(float(np.median(seconds[:tenth])) * 1e3, 1),
        "last_tenth_median_ms": round(float(np.median(seconds[-tenth:])) * 1e3, 1),
    }


def measure_ingest(
    client: httpx.Client, readings: Readings, plan: list[tuple[str, int]], batch: int
) -> tuple[dict[str, object], int]:
    """Post each format's batches of new readings, then resend them; returns figures and the
    number of readings sent."""
    figures: dict[str, object] = {}
    offset = 0
    spans: dict[str, tuple[int, int]] = {}
    for form, batches in plan:
        make, media = BODIES[form]
        seconds, new = [], 0
        spans[form] = (offset, batches)
        for b in range(batches):
            body = make(readings.rows(offset + b * batch, batch))
            elapsed, counts = post(client, body, media)
            seconds.append(elapsed)
            new += counts["new"]
        if new != batches * batch:
            raise RuntimeError(f"{form}: {new} new readings stored, expected {batches * batch}")
        figures[f"new_{form}"] = ingest_figures(seconds, batch, new)
        offset += batches * batch
        print(f"ingest {form}: {figures[f'new_{form}']}", flush=True)
    for form, (start, batches) in spans.items():
        make, media = BODIES[form]
        count = min(batches, 10)
        seconds, unchanged = [], 0
        for b in range(count):
            body = make(readings.rows(start + b * batch, batch))
            elapsed, counts = post(client, body, media)
            seconds.append(elapsed)
            unchanged += counts["unchanged"]
        if unchanged != count * batch:
            raise RuntimeError(f"{form} resend: {unchanged} unchanged, expected {count * batch}")
        figures[f"resend_{form}"] = ingest_figures(seconds, batch, unchanged)
        print(f"resend {form}: {figures[f'resend_{form}']}", flush=True)
    return figures, offset


def latency_figures(seconds: list[float], wall: float) -> dict[str, object]:
    ms = np.array(seconds) * 1e3
    return {
        "requests": len(seconds),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
        "requests_per_s": round(len(seconds) / wall, 1),
    }


def get_forecast(client: httpx.Client, query: str) -> tuple[float, dict[str, object]]:
    began = time.perf_counter()
    response = client.get(f"/v1/forecasts{query}")
    seconds = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"GET /v1/forecasts{query}: {response.status_code} {response.text}")
    return seconds, response.json()


def cached_load(url: str, query: str | list[str], clients: int, requests: int) -> dict[str, object]:
    """``clients`` threads, each with its own keep-alive client, ``requests`` GETs each; a list
    of queries is taken in turn (request ``i`` of client ``k`` asks query ``k·requests + i``)."""
    queries = [query] if isinstance(query, str) else query
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def work(k: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                get_forecast(client, queries[0])  # connect outside the timed requests
                start.wait()
                for i in range(requests):
                    asked = queries[(k * requests + i) % len(queries)]
                    results[k].append(get_forecast(client, asked)[0])
        except Exception as error:  # reported after the join
            errors.append(error)
            start.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    with suppress(threading.BrokenBarrierError):  # a client failed; its error is raised below
        start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    figures = latency_figures([s for r in results for s in r], wall)
    figures["clients"] = clients
    return figures


def _client_process(
    url: str, queries: list[str], k: int, requests: int, start, results
) -> None:  # one client of process_load, in its own process
    """A lean keep-alive client (the standard library's ``http.client``, as load tools are
    lean): on 2 cores the clients share the CPU with the server, and httpx's own ~0.5 ms of
    CPU a request would be measured as the server's latency. Every answer's status and
    sensor are checked after the timed requests."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        asked = [queries[(k * requests + i) % len(queries)] for i in range(requests + 1)]
        connection.request("GET", f"/v1/forecasts{asked[-1]}")  # connect before the timing
        connection.getresponse().read()
        start.wait(timeout=120)
        seconds, answers = [], []
        for query in asked[:-1]:
            began = time.perf_counter()
            connection.request("GET", f"/v1/forecasts{query}")
            answer = connection.getresponse()
            body = answer.read()
            seconds.append(time.perf_counter() - began)
            answers.append((query, answer.status, body))
        for query, status, body in answers:
            if status != 200:
                raise RuntimeError(f"GET /v1/forecasts{query}: {status} {body[:200]!r}")
            sensor = parse_qs(query.lstrip("?"))["sensor"][0]
            answer = json.loads(body)
            named = {point["sensor_id"] for point in answer["data"]} | set(answer["missing"])
            if named != {sensor}:
                raise RuntimeError(f"GET /v1/forecasts{query}: not that sensor's forecast")
        results.put((k, seconds, None))
    except Exception as error:  # reported by the parent
        results.put((k, [], repr(error)))
    finally:
        connection.close()


def process_load(
    url: str, query: str | list[str], clients: int, requests: int
) -> dict[str, object]:
    """As :func:`cached_load`, each client in its own process, as clients are in the field,
    and lean (:func:`_client_process`): the threads of one process share the interpreter lock,
    whose waits then add to every latency they measure (on 2 cores the processes still share
    the CPU with the server). Queries ask one sensor each (``?sensor=…``)."""
    queries = [query] if isinstance(query, str) else query
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(clients + 1), context.Queue()
    processes = [
        context.Process(target=_client_process, args=(url, queries, k, requests, start, results))
        for k in range(clients)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=120)
    began = time.perf_counter()
    answers = [results.get(timeout=600) for _ in processes]
    wall = time.perf_counter() - began
    for process in processes:
        process.join()
    failed = [error for _, _, error in answers if error]
    if failed:
        raise RuntimeError(f"a client process failed: {failed[0]}")
    figures = latency_figures([s for _, seconds, _ in answers for s in seconds], wall)
    figures["clients"] = clients
    figures["client_processes"] = True
    return figures


def fresh_load(
    client: httpx.Client, readings: Readings, query: str, offset: int, requests: int
) -> tuple[dict[str, object], int]:
    """One client: POST the next 5-minute step (JSON), then GET the (recomputed) forecast."""
    seconds, posts = [], []
    began = time.perf_counter()
    for _ in range(requests):
        body = json_body(readings.rows(offset, readings.per_step))
        posts.append(post(client, body, "application/json")[0])
        offset += readings.per_step
        elapsed, forecast = get_forecast(client, query)
        issued = pd.Timestamp(forecast["issued_at"])
        if issued != readings.last_time(offset):
            raise RuntimeError(f"forecast issued at {issued}, not {readings.last_time(offset)}")
        seconds.append(elapsed)
    wall = time.perf_counter() - began
    figures = latency_figures(seconds, sum(seconds))  # requests/s: GETs alone, back to back
    figures["cycle_per_s"] = round(requests / wall, 1)
    figures["step_post_median_ms"] = round(float(np.median(posts)) * 1e3, 1)
    return figures, offset


def train_bundle(folder: Path) -> Path:
    out = folder / "bundle"
    command = [
        str(Path(sys.executable).with_name("urbanflow")),
        "train",
        "--model",
        "stid",
        "--max-epochs",
        "1",
        "--out",
        str(out),
    ]
    print("training a bundle:", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a bundle (default: train one here)")
    parser.add_argument("--quick", action="store_true", help="a small run (seconds, plus training)")
    parser.add_argument("--batch", type=int, default=10_000, help="readings a POST")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="GETs a client")
    parser.add_argument(
        "--output",
        type=Path,
        help="folder for serving.json (default: benchmarks/results; with --quick, only when given)",
    )
    options = parser.parse_args()
    # 1,000,000 readings: 50 JSON + 50 CSV batches of 10,000 (quick: 10 + 10).
    batches = 10 if options.quick else 50
    clients = 2 if options.quick else options.clients
    requests = 10 if options.quick else options.requests

    load_before = os.getloadavg()
    readings = Readings(load_dataset("los-loop"))
    gc.freeze()  # the client's own full collections would land inside timed requests
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="urbanflow-serving-") as temporary:
        folder = Path(temporary)
        model_dir = options.model_dir or train_bundle(folder)
        with serve(model_dir, folder) as server:
            print(f"server ready in {server.startup_seconds:.1f} s at {server.url}", flush=True)
            with httpx.Client(base_url=server.url, timeout=120) as client:
                ingest, offset = measure_ingest(
                    client, readings, [("json", batches), ("csv", batches)], options.batch
                )
                forecasts: dict[str, object] = {}
                for name, query in (("all", ""), ("horizon_3", "?horizon=3")):
                    first, body = get_forecast(client, query)
                    points = len(body["data"])
                    forecasts[f"cached_{name}"] = {
                        "first_request_ms": round(first * 1e3, 1),
                        "points": points,
                        **cached_load(server.url, query, clients, requests),
                    }
                    print(f"cached {name}: {forecasts[f'cached_{name}']}", flush=True)
                for name, query in (("all", ""), ("horizon_3", "?horizon=3")):
                    figures, offset = fresh_load(client, readings, query, offset, requests)
                    forecasts[f"fresh_{name}"] = figures
                    print(f"fresh {name}: {figures}", flush=True)
                stored = int(client.get("/health").json()["readings"])
            live = server.store_bytes()
            stop_seconds = server.stop()
            closed = server.store_bytes()
            readings_only = server.readings_table_bytes()
        if stored != offset:
            raise RuntimeError(f"the store holds {stored} readings, {offset} were sent")
        result = {
            "ingest": ingest,
            "forecasts": forecasts,
            "store": {
                "readings": stored,
                "bytes_while_serving": live,
                "bytes_after_stop": closed,
                "mb_per_million_while_serving": round(sum(live.values()) / stored, 2),
                "mb_per_million": round(sum(closed.values()) / stored, 2),
                "readings_table_mb_per_million": round(readings_only / stored, 2),
                "stop_seconds": round(stop_seconds, 2),
            },
            "startup_seconds": round(server.startup_seconds, 1),
        }

    meta = {
        **run_record(load_before),
        "quick": options.quick,
        "model": "stid (bundle given)" if options.model_dir else "stid, 1 epoch (trained here)",
        "batch": options.batch,
        "clients": clients,
        "requests_per_client": requests,
    }
    print(render(meta, result))
    output = options.output or (None if options.quick else Path("benchmarks/results"))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "serving.json").write_text(json.dumps({"meta": meta, **result}, indent=2) + "\n")


def render(meta: dict[str, object], result: dict[str, object]) -> str:
    ingest, forecasts, store = result["ingest"], result["forecasts"], result["store"]
    lines = [
        f"Measured {meta['date']}, commit {meta['commit']}, {meta['machine']['cores']} cores "
        f"(1-min load average {meta['load_average_1min']['start']} at the start, "
        f"{meta['load_average_1min']['end']} at the end); loopback HTTP, one uvicorn worker.",
        "",
        "| ingest (sequential POSTs) | batches | batch ms: median / p90 / max "
        "| readings/s (median batch) | readings/s (overall) |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("new_json", "new readings, JSON"),
        ("new_csv", "new readings, CSV"),
        ("resend_json", "already stored, JSON"),
        ("resend_csv", "already stored, CSV"),
    ):
        f = ingest[key]
        lines.append(
            f"| {label} | {f['batches']} × {f['batch_size']:,} | {f['median_batch_ms']:.0f} / "
            f"{f['p90_batch_ms']:.0f} / {f['max_batch_ms']:.0f} | {f['readings_per_s']:,} | "
            f"{f['overall_readings_per_s']:,} |"
        )
    lines += [
        "",
        "| GET /v1/forecasts | load | requests | p50 ms | p99 ms | max ms | requests/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("cached_all", "all sensors × 12 horizons, cached"),
        ("cached_horizon_3", "?horizon=3, cached"),
        ("fresh_all", "all sensors × 12 horizons, fresh"),
        ("fresh_horizon_3", "?horizon=3, fresh"),
    ):
        f = forecasts[key]
        if "clients" in f:
            load, rate = f"{f['clients']} clients × keep-alive", f"{f['requests_per_s']:.1f}"
        else:
            load = "1 client, POST of the next step before each"
            rate = f"{f['cycle_per_s']:.1f} POST+GET pairs"
        lines.append(
            f"| {label} | {load} | {f['requests']} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | "
            f"{f['max_ms']:.1f} | {rate} |"
        )
    lines += [
        "",
        f"Store: {store['readings']:,} readings; the readings table alone "
        f"{store['readings_table_mb_per_million']:.1f} MB per million; the whole file (with the "
        f"forecasts issued during the run) {store['mb_per_million']:.1f} MB per million after the "
        f"server stopped, {store['mb_per_million_while_serving']:.1f} while serving (WAL "
        "included).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
