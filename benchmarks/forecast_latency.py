"""Forecast latency at city scale: every sensor, 12 steps, one issue time, model loaded.

    .venv/bin/python benchmarks/forecast_latency.py --dataset /tmp/scale/roads-10000 \
        [--model stid --model stid-graph | --model-dir BUNDLE] [--calls 20] [--threads 2] \
        [--output benchmarks/results]

For each model, after one warm-up call, ``--calls`` timed calls of

- ``predict``: ``model.predict(dataset, [T])``, the ``[1 12 n]`` forecast issued at the last
  reading (what issue 11 §2 bounds: 200 ms for ``stid``, 600 ms for ``stid-graph`` at 10,000
  sensors on an idle machine);
- ``table``: ``forecast_table`` of that issue time, the long table ``urbanflow forecast``
  writes (``n × 12`` rows);
- with ``--compare-full``, ``full``: the same forecast through ``model.series``, tensors of
  every step of the dataset, as every predict call built them before commit 824875b (since
  8be0606 that build shares the readings instead of copying them three times, but still
  builds the calendar of every step).

``--model NAME`` builds the registry model's networks as ``fit`` would for this dataset (its
sensors, graph, day length and weekday rule; scaler from the first day) but leaves the weights
untrained: a forecast's cost does not depend on the weight values, and training one at 10,000
sensors takes minutes. ``--model-dir`` times a trained bundle instead.

Prints a table and writes ``forecast_latency_<dataset>_<threads>t.json`` (figures, threads,
load average before each model, machine, commit, command) into ``--output``. On a shared
machine the figures are upper bounds; compare models measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from provenance import cpu_name, git_commit

from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.models.bundle import load_bundle
from urbanflow.models.forecast import forecast_table
from urbanflow.models.neural import DEFAULT_LOSSES, NeuralForecaster
from urbanflow.models.registry import make_model
from urbanflow.training.engine import choose_device, predict_batches
from urbanflow.training.tensors import Scaler


@dataclass(frozen=True)
class Latency:
    """Median and 90th percentile of timed calls, in milliseconds."""

    median_ms: float
    p90_ms: float
    calls: int


def time_calls(call: Callable[[], object], calls: int) -> Latency:
    """One warm-up call, then ``calls`` timed ones."""
    call()
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    ms = 1000 * np.asarray(seconds)
    return Latency(float(np.median(ms)), float(np.percentile(ms, 90)), calls)


def untrained_model(name: str, dataset: CityDataset) -> NeuralForecaster:
    """The registry model ``name`` with its networks built for ``dataset`` as ``fit`` builds
    them, weights untrained."""
    model = make_model(name)
    if not isinstance(model, NeuralForecaster):
        raise SystemExit(f"{name} is not a neural model")
    spec = model.network_spec(dataset)
    first_day = dataset.readings[: dataset.steps_per_day, :, 0]
    model.build(
        spec,
        Scaler.fit(first_day),
        choose_device(),
        model.loss or DEFAULT_LOSSES[dataset.kind],
        dataset.non_negative,
    )
    model.network_.eval()
    model.sensor_ids_ = dataset.sensors.ids
    return model


def full_series_forecast(model: NeuralForecaster, dataset: CityDataset, times: np.ndarray) -> None:
    """The forecast at ``times`` through tensors of every step (predict's path before 824875b)."""
    series = model.series(dataset)
    for member in model.network_.members:
        predict_batches(member, series, times, model.input_len, model.scaler_, loss=model.loss_)


def forecast_latency(
    model: NeuralForecaster,
    dataset: CityDataset,
    calls: int = 20,
    threads: int = 2,
    compare_full: bool = False,
) -> dict[str, Latency]:
    """``predict`` and ``table`` latencies of a forecast of every sensor at the last reading.

    Parameters
    ----------
    model
        A fitted (or built) neural forecaster for ``dataset``'s sensors.
    dataset
        The city to forecast.
    calls
        Timed calls of each, after one warm-up call.
    threads
        ``torch.set_num_threads`` for the calls.
    compare_full
        Also time the forecast from tensors of the whole dataset (``full``).
    """
    torch.set_num_threads(threads)
    last = np.array([dataset.num_steps - 1])
    latency = {
        "predict": time_calls(lambda: model.predict(dataset, last + 1), calls),
        "table": time_calls(lambda: forecast_table(model, dataset, last), calls),
    }
    if compare_full:
        latency["full"] = time_calls(lambda: full_series_forecast(model, dataset, last + 1), calls)
    return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="city folder or built-in name")
    parser.add_argument("--model", action="append", help="registry name (repeatable)")
    parser.add_argument("--model-dir", type=Path, help="a bundle from `urbanflow train`")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-full", action="store_true", help="also time the old path")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    started = time.perf_counter()
    dataset = load_dataset(args.dataset)
    load_seconds = time.perf_counter() - started
    models: list[tuple[str, Callable[[], NeuralForecaster]]] = [
        (name, lambda name=name: untrained_model(name, dataset))
        for name in args.model or ([] if args.model_dir else ["stid", "stid-graph"])
    ]
    if args.model_dir:
        models.append((str(args.model_dir), lambda: load_bundle(args.model_dir)[0]))

    rows = []
    print(f"{dataset.metadata.name}: {dataset.num_sensors} sensors, {dataset.num_steps} steps")
    parts = ["predict", "table", *(["full"] if args.compare_full else [])]
    print(f"{'model':<24}" + "".join(f" {part + ' median':>15} {'p90':>8}" for part in parts))
    for name, build in models:
        model = build()
        load_average = os.getloadavg()[0]
        latency = forecast_latency(model, dataset, args.calls, args.threads, args.compare_full)
        print(
            f"{name:<24}"
            + "".join(f" {v.median_ms:>12.1f} ms {v.p90_ms:>8.1f}" for v in latency.values())
        )
        rows.append(
            {
                "model": name,
                "trained": name == str(args.model_dir),
                "parameters": model.parameter_count(),
                "load_average_1min": load_average,
                **{part: asdict(value) for part, value in latency.items()},
            }
        )

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    result = {
        "dataset": dataset.metadata.name,
        "sensors": dataset.num_sensors,
        "steps": dataset.num_steps,
        "horizon_steps": 12,
        "threads": args.threads,
        "load_seconds": load_seconds,
        "peak_rss_gib": peak,
        "models": rows,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "torch": torch.__version__,
        "commit": git_commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"forecast_latency_{Path(str(args.dataset)).name}_{args.threads}t.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"peak RSS {peak:.2f} GiB; wrote {path}")


if __name__ == "__main__":
    main()
