"""City scale: wall time and peak memory of each step at 1,000 to 20,000 sensors (issue 11).

    .venv/bin/python benchmarks/scale.py [--sizes 1000,5000,10000,20000] [--work /tmp/scale]
        [--time-budget 2] [--skip synth,info,evaluate,train,forecast,latency,serve] [--nproc]
        [--output benchmarks/results] [--plot docs/img/scale.png]

For each size N, the synthetic road city ``WORK/roads-N`` (5-minute speeds over ``--days``
days, seed ``--seed``) is used when present and generated there otherwise. Every step is a
subprocess of the real CLI, timed on the wall clock; its peak memory is that process's own
``ru_maxrss`` from ``os.wait4`` (a process and the children it waited for: their maximum,
not their sum), checked against the issue's bound, 3 × the raw float32 readings + 1 GB:

1. ``urbanflow datasets synth roads`` (only when the city is not there yet);
2. ``urbanflow datasets info CITY``;
3. ``urbanflow evaluate --dataset CITY --model ridge-per-sensor --levels none``;
4. ``urbanflow train --dataset CITY --model M --time-budget T --out BUNDLE`` for ``stid`` and
   the recommended ``stid-graph``: wall, peak, training seconds and training seconds per
   million training targets (the bundle card's ``training`` record; an estimate, marked so,
   when the card does not count targets), and the time-budget rule: the whole command ends
   within the budget plus reading the data and scoring the test part, both measured as
   ``urbanflow evaluate --model-dir BUNDLE --dataset CITY`` (read, load, score; the
   ``rescore`` step, which doubles the scoring time: ``--skip rescore`` leaves it out, and
   ``fit_within_budget`` then checks the card's fit seconds, training with its validation
   passes, against the budget);
5. ``urbanflow forecast --model-dir BUNDLE --dataset CITY`` (the last issue time): wall, peak;
   and the forecast latency: a separate process (``OMP_NUM_THREADS=2``) loads the bundle and
   the city, then times ``predict`` of every sensor, 12 steps, one issue time with
   ``forecast_latency.py``'s timing: median of 20 calls after a warm-up, 2 threads;
6. ``urbanflow serve`` start-up: a free port, a fresh store; peak RSS (``VmHWM``) once
   ``GET /health`` answers;
7. with ``--nproc``: ``urbanflow train --nproc 2`` of ``--nproc-model`` (default the
   recommended one) and its speed-up over one process in training seconds per million targets
   (skipped, and said so, when ``train`` has no ``--nproc``).

A step that fails is recorded with its error and the run goes on. Prints a table, writes
``scale.json`` (figures, bounds, pass or fail per target, machine, versions, commit, command,
date) to ``--output`` and a log-log plot to ``--plot`` (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from provenance import cpu_name, git_commit

from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.registry import RECOMMENDED

GB = 1e9
MB = 1e6
STEPS = ("synth", "info", "evaluate", "train", "rescore", "forecast", "latency", "serve")
URBANFLOW = str(Path(sys.executable).with_name("urbanflow"))
LATENCY_TARGET_MS = {"stid": 200.0, RECOMMENDED: 600.0}  # at 10,000 sensors
LATENCY_SIZE = 10_000
FLAT_RATIO = 1.5  # training seconds per million targets, largest over smallest
FLAT_FROM = 1_000  # ... among the sizes from this one up
SYNTH_SECONDS = 60.0  # 10,000 sensors x 4 weeks


@dataclass
class Step:
    """One subprocess: its command, wall seconds, own peak RSS and outcome."""

    name: str
    command: list[str]
    seconds: float | None = None
    peak_bytes: int | None = None
    bound_bytes: float | None = None
    within_bound: bool | None = None
    returncode: int | None = None
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.error is None


def version_of(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        **{p: version_of(p) for p in ("urbanflow", "torch", "numpy", "pyarrow", "duckdb")},
    }


def run_step(
    name: str,
    command: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    limit_s: float | None = None,
) -> Step:
    """Run ``command``, output to ``log``; wall seconds and its own peak RSS (``wait4``)."""
    step = Step(name, command)
    print(f"    {name}: {shlex.join(command)}", flush=True)
    began = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    killer = threading.Timer(limit_s, process.kill) if limit_s else None
    if killer:
        killer.start()
    _, status, usage = os.wait4(process.pid, 0)
    if killer:
        killer.cancel()
    step.seconds = round(time.perf_counter() - began, 2)
    process.returncode = step.returncode = os.waitstatus_to_exitcode(status)
    step.peak_bytes = usage.ru_maxrss * 1024  # Linux: kilobytes
    if step.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        killed = " (killed at the step time limit)" if step.returncode == -9 else ""
        step.error = f"exit {step.returncode}{killed}: " + " | ".join(tail)
    print(f"      {describe(step)}", flush=True)
    return step


def describe(step: Step) -> str:
    if step.error:
        return f"FAILED after {step.seconds} s: {step.error}"
    peak = f"{step.peak_bytes / 2**30:.2f} GiB" if step.peak_bytes else "?"
    return f"{step.seconds} s, peak {peak}"


def check_bound(step: Step, bound: float) -> Step:
    step.bound_bytes = bound
    if step.peak_bytes is not None and step.ok:
        step.within_bound = step.peak_bytes <= bound
    return step


def info_figures(text: str) -> dict[str, float]:
    """Sensors, steps and missing share from ``urbanflow datasets info``'s printout."""
    found: dict[str, float] = {}
    for key, pattern in {
        "sensors": r"^\s*sensors\s+([\d,]+)\s*$",
        "steps": r"^\s*steps\s+([\d,]+)\s*$",
        "missing_percent": r"^\s*missing\s+([\d.]+) %",
    }.items():
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            found[key] = float(match.group(1).replace(",", ""))
    return found


def training_record(bundle: Path, steps: int, sensors: int, missing: float) -> dict[str, object]:
    """Training seconds and targets from the bundle card; targets estimated when absent."""
    card = json.loads((bundle / "card.json").read_text())
    training = card["training"]
    members = training["members"]
    record: dict[str, object] = {
        "training_seconds": training["seconds"],
        # the budget rule without a rescore: the fit itself (training and its validation
        # passes) ends within the budget; the rest of train is reading, scoring, writing
        "fit_within_budget": None,
        "members": members,
        "stopped_by": [m["stopped_by"] for m in members],
        "epochs_run": [m["epochs_run"] for m in members],
    }
    if all("targets" in m for m in members):
        targets = sum(int(m["targets"]) for m in members)
        record["targets_estimated"] = False
    else:
        # Full epochs of every training sample, sensor and step, less the missing share: an
        # upper bound when the budget stopped an epoch part-way (per-target time too low).
        plan = make_plan("default", steps, card["input_len"], step=pd.Timedelta("5min"))
        samples = plan.fit_stop - card["input_len"] - plan.horizon + 1
        per_epoch = samples * plan.horizon * sensors * (1 - missing)
        targets = int(sum(m["epochs_run"] for m in members) * per_epoch)
        record["targets_estimated"] = True
    record["targets"] = targets
    record["training_seconds_per_million_targets"] = (
        round(training["seconds"] / (targets / 1e6), 4) if targets else None
    )
    return record


def probe_latency(bundle: Path, city: Path, calls: int, threads: int) -> dict[str, object]:
    """The trained bundle's forecast latency on ``city`` (``forecast_latency.py``'s timing:
    every sensor, the model's horizon, one issue time, one warm-up call, ``threads`` threads).
    """
    from forecast_latency import forecast_latency

    from urbanflow.data.catalog import load_dataset
    from urbanflow.models.bundle import load_bundle

    model, _ = load_bundle(bundle)
    timings = forecast_latency(model, load_dataset(str(city)), calls, threads)
    predict, table = timings["predict"], timings["table"]
    return {
        "median_ms": round(predict.median_ms, 2),
        "p90_ms": round(predict.p90_ms, 2),
        "table_median_ms": round(table.median_ms, 2),
        "calls": calls,
        "threads": threads,
    }


def serve_startup(name: str, bundle: Path, folder: Path) -> Step:
    """``urbanflow serve`` on a free port: seconds to ``GET /health`` and the peak RSS then."""
    from serving import serve

    step = Step(name, [URBANFLOW, "serve", "--model-dir", str(bundle), "..."])
    print(f"    {name}: urbanflow serve --model-dir {bundle} (free port, fresh store)", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with serve(bundle, folder) as server:
            status = Path(f"/proc/{server.process.pid}/status").read_text()
            peak = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            step.peak_bytes = int(peak.group(1)) * 1024 if peak else None
            step.seconds = round(server.startup_seconds, 2)
        step.returncode = 0
    except Exception as error:  # recorded; the run goes on
        step.returncode = 1
        step.error = f"{type(error).__name__}: {str(error).strip()[-300:]}"
    print(f"      {describe(step)}", flush=True)
    return step


def has_nproc() -> bool:
    help_text = subprocess.run(
        [URBANFLOW, "train", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    return "--nproc" in help_text


@dataclass
class Options:
    sizes: list[int]
    work: Path
    days: int
    seed: int
    models: list[str]
    time_budget: float
    skip: set[str]
    nproc: bool
    nproc_model: str
    step_limit_s: float | None
    latency_calls: int


def measure_city(n: int, options: Options, scratch: Path) -> dict[str, object]:
    """Every step at ``n`` sensors; each failure is recorded and the next step runs."""
    city = options.work / f"roads-{n}"
    logs = scratch / f"logs-{n}"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COLUMNS": "200"}
    limit = options.step_limit_s
    result: dict[str, object] = {"sensors": n, "city": str(city), "steps": {}}
    steps: dict[str, object] = result["steps"]  # type: ignore[assignment]

    def keep(step: Step) -> Step:
        steps[step.name] = asdict(step)
        return step

    if not (city / "readings.parquet").exists():
        if "synth" in options.skip:
            result["error"] = f"{city} is missing and --skip synth was given"
            return result
        # Written beside the city and renamed when complete: a failed or killed run leaves no
        # half-written city for the next run to take as cached.
        partial = city.with_name(f"{city.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)  # a killed run's leftovers
        command = [URBANFLOW, "datasets", "synth", "roads", "--sensors", str(n)]
        command += ["--days", str(options.days), "--seed", str(options.seed)]
        synth = run_step("synth", [*command, "--out", str(partial)], logs / "synth.log", env, limit)
        keep(synth)
        if not synth.ok:
            result["error"] = "the city could not be generated"
            return result
        partial.rename(city)
    else:
        print(f"    synth: cached at {city}", flush=True)
        result["city_cached"] = True
    num_steps = pq.ParquetFile(city / "readings.parquet").metadata.num_rows
    raw = num_steps * n * 4
    bound = 3 * raw + GB
    result.update(time_steps=num_steps, raw_bytes=raw, bound_bytes=bound)
    if "synth" in steps:
        check_bound_dict(steps["synth"], bound)

    missing = 0.0
    if "info" not in options.skip:
        info = run_step(
            "info", [URBANFLOW, "datasets", "info", str(city)], logs / "info.log", env, limit
        )
        if info.ok:
            info.extra = info_figures((logs / "info.log").read_text(errors="replace"))
            missing = float(info.extra.get("missing_percent", 0.0)) / 100
            if info.extra.get("sensors") not in (None, n):
                info.error = f"the cached city has {info.extra['sensors']:.0f} sensors, not {n}"
        keep(check_bound(info, bound))
    if "evaluate" not in options.skip:
        command = [URBANFLOW, "evaluate", "--dataset", str(city), "--model", "ridge-per-sensor"]
        step = run_step(
            "evaluate", [*command, "--levels", "none"], logs / "evaluate.log", env, limit
        )
        keep(check_bound(step, bound))
    bundles: dict[str, Path] = {}
    if "train" not in options.skip:
        for model in options.models:
            bundle = scratch / f"bundle-{n}-{model}"
            shape = (num_steps, n, missing)
            trained = train_step(model, bundle, city, options, logs, env, bound, shape)
            keep(trained)
            if trained.ok:
                bundles[model] = bundle
                if "rescore" not in options.skip:
                    keep(rescore_step(model, bundle, city, trained, options, logs, env, bound))
        if options.nproc:
            steps["train_nproc2"] = nproc_step(
                city, scratch, options, logs, env, bound, steps, (num_steps, n, missing)
            )
    for model, bundle in bundles.items():
        if "forecast" not in options.skip:
            command = [URBANFLOW, "forecast", "--model-dir", str(bundle), "--dataset", str(city)]
            command += ["--output", str(scratch / f"forecast-{n}-{model}.parquet")]
            step = run_step(
                f"forecast_{model}", command, logs / f"forecast_{model}.log", env, limit
            )
            keep(check_bound(step, bound))
        if "latency" not in options.skip:
            keep(latency_step(model, bundle, city, options, logs, env, bound))
        if "serve" not in options.skip:
            served = serve_startup(f"serve_{model}", bundle, scratch / f"serve-{n}-{model}")
            keep(check_bound(served, bound))
    return result


def check_bound_dict(step: dict[str, object], bound: float) -> None:
    step["bound_bytes"] = bound
    if step["peak_bytes"] is not None and step["error"] is None:
        step["within_bound"] = step["peak_bytes"] <= bound


def train_step(
    model: str,
    bundle: Path,
    city: Path,
    options: Options,
    logs: Path,
    env: dict[str, str],
    bound: float,
    shape: tuple[int, int, float],
    nproc: int = 1,
) -> Step:
    """Train ``model`` into ``bundle``; ``shape`` is the city's (steps, sensors, missing share)."""
    name = f"train_{model}" if nproc == 1 else f"train_{model}_nproc{nproc}"
    command = [URBANFLOW, "train", "--dataset", str(city), "--model", model]
    command += ["--time-budget", f"{options.time_budget:g}", "--out", str(bundle)]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    step = check_bound(
        run_step(name, command, logs / f"{name}.log", env, options.step_limit_s), bound
    )
    if step.ok:
        try:
            step.extra = training_record(bundle, *shape)
            budget_s = options.time_budget * 60
            step.extra["fit_within_budget"] = step.extra["training_seconds"] <= budget_s
        except (OSError, KeyError, ValueError) as error:
            step.error = f"bundle card unreadable: {error}"
    return step


def rescore_step(
    model: str,
    bundle: Path,
    city: Path,
    trained: Step,
    options: Options,
    logs: Path,
    env: dict[str, str],
    bound: float,
) -> Step:
    """Read + score time of the bundle, and the budget rule it gives for ``trained``."""
    name = f"rescore_{model}"
    command = [URBANFLOW, "evaluate", "--model-dir", str(bundle), "--dataset", str(city)]
    step = check_bound(
        run_step(name, command, logs / f"{name}.log", env, options.step_limit_s), bound
    )
    if step.ok and trained.seconds is not None and step.seconds is not None:
        allowed = options.time_budget * 60 + step.seconds
        step.extra = {
            "train_wall_s": trained.seconds,
            "budget_s": options.time_budget * 60,
            "allowed_s": round(allowed, 2),
            "within_budget_rule": trained.seconds <= allowed,
        }
        print(
            f"      budget rule: train {trained.seconds} s <= budget {options.time_budget * 60:g}"
            f" s + read and score {step.seconds} s: {trained.seconds <= allowed}",
            flush=True,
        )
    return step


def latency_step(
    model: str,
    bundle: Path,
    city: Path,
    options: Options,
    logs: Path,
    env: dict[str, str],
    bound: float,
) -> Step:
    name = f"latency_{model}"
    command = [sys.executable, __file__, "--probe-latency", str(bundle), str(city)]
    command += ["--latency-calls", str(options.latency_calls)]
    step = run_step(
        name, command, logs / f"{name}.log", {**env, "OMP_NUM_THREADS": "2"}, options.step_limit_s
    )
    if step.ok:
        lines = (logs / f"{name}.log").read_text().strip().splitlines()
        step.extra = json.loads(lines[-1])
        print(f"      median {step.extra['median_ms']} ms", flush=True)
    return check_bound(step, bound)


def nproc_step(
    city: Path,
    scratch: Path,
    options: Options,
    logs: Path,
    env: dict[str, str],
    bound: float,
    steps: dict[str, object],
    shape: tuple[int, int, float],
) -> dict[str, object]:
    """Two processes against one: training seconds per million targets of ``--nproc-model``
    (also trained in one process here when it is not among ``--models``)."""
    if not has_nproc():
        print("    train --nproc 2: skipped, `urbanflow train` has no --nproc option", flush=True)
        return {"skipped": "`urbanflow train` has no --nproc option"}
    model = options.nproc_model
    if f"train_{model}" not in steps:
        bundle = scratch / f"bundle-{shape[1]}-{model}"
        steps[f"train_{model}"] = asdict(
            train_step(model, bundle, city, options, logs, env, bound, shape)
        )
    bundle = scratch / f"bundle-{shape[1]}-{model}-nproc2"
    step = train_step(model, bundle, city, options, logs, env, bound, shape, 2)
    record = asdict(step)
    single = steps.get(f"train_{model}")
    if step.ok and isinstance(single, dict) and single["error"] is None:
        one = single["extra"]["training_seconds_per_million_targets"]
        two = step.extra["training_seconds_per_million_targets"]
        if one and two:
            record["speedup"] = round(one / two, 3)
            print(f"      speed-up of 2 processes: {record['speedup']}x", flush=True)
    record["note"] = "peak: the launcher and its largest child (wait4), not their sum"
    return record


def targets(results: list[dict[str, object]], models: list[str]) -> dict[str, object]:
    """Pass or fail of each of the issue's targets that this run measured."""
    checks: dict[str, object] = {}
    memory = {}
    for city in results:
        for name, step in city.get("steps", {}).items():
            if "within_bound" in step and step.get("within_bound") is not None:
                memory[f"{city['sensors']}:{name}"] = step["within_bound"]
    checks["memory_within_bound"] = {"all": all(memory.values()) if memory else None, **memory}
    budget = {
        f"{city['sensors']}:{model}": city["steps"][f"rescore_{model}"]["extra"].get(
            "within_budget_rule"
        )
        for city in results
        for model in models
        if f"rescore_{model}" in city.get("steps", {})
        and city["steps"][f"rescore_{model}"]["extra"]
    }
    checks["train_within_budget_rule"] = {
        "all": all(budget.values()) if budget else None,
        **budget,
    }
    fits = {
        f"{city['sensors']}:{model}": city["steps"][f"train_{model}"]["extra"].get(
            "fit_within_budget"
        )
        for city in results
        for model in models
        if city.get("steps", {}).get(f"train_{model}", {}).get("extra")
    }
    checks["fit_within_budget"] = {"all": all(fits.values()) if fits else None, **fits}
    for model in models:
        per_target = {
            city["sensors"]: city["steps"][f"train_{model}"]["extra"].get(
                "training_seconds_per_million_targets"
            )
            for city in results
            if city.get("steps", {}).get(f"train_{model}", {}).get("extra")
            and city["sensors"] >= FLAT_FROM
        }
        values = [v for v in per_target.values() if v]
        ratio = max(values) / min(values) if len(values) > 1 else None
        checks[f"flat_training_cost_{model}"] = {
            "seconds_per_million_targets": per_target,
            "largest_over_smallest": round(ratio, 3) if ratio else None,
            "target": FLAT_RATIO,
            "pass": ratio <= FLAT_RATIO if ratio else None,
        }
    for model, limit in LATENCY_TARGET_MS.items():
        for city in results:
            step = city.get("steps", {}).get(f"latency_{model}")
            if city["sensors"] == LATENCY_SIZE and step and step["extra"]:
                median = step["extra"]["median_ms"]
                checks[f"latency_{model}_{LATENCY_SIZE}"] = {
                    "median_ms": median,
                    "target_ms": limit,
                    "pass": median <= limit,
                }
    for city in results:
        synth = city.get("steps", {}).get("synth")
        if city["sensors"] == LATENCY_SIZE and synth and synth["error"] is None:
            checks["synth_10000_under_a_minute"] = synth["seconds"] <= SYNTH_SECONDS
    return checks


def cell(step: dict[str, object] | None) -> str:
    if not step:
        return "–"
    if step.get("error"):
        return "failed"
    peak = step.get("peak_bytes")
    memory = f", {peak / 2**30:.2f} GiB" if peak else ""
    flag = " (over bound)" if step.get("within_bound") is False else ""
    return f"{step['seconds']:.1f} s{memory}{flag}"


def table(results: list[dict[str, object]], models: list[str]) -> str:
    """A Markdown table, one row per size."""
    head = ["sensors", "raw float32", "bound", "`datasets info`", "`evaluate ridge-per-sensor`"]
    for model in models:
        head += [f"`train {model}`", f"{model}: s per M targets", f"{model}: forecast"]
    head += ["`serve` start-up"]
    nproc = any("train_nproc2" in city.get("steps", {}) for city in results)
    if nproc:
        head.append("`--nproc 2` speed-up")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for city in results:
        steps = city.get("steps", {})
        raw, bound = city.get("raw_bytes"), city.get("bound_bytes")
        row = [f"{city['sensors']:,}", f"{raw / MB:.0f} MB" if raw else "–"]
        row += [f"{bound / GB:.1f} GB" if bound else "–", cell(steps.get("info"))]
        row.append(cell(steps.get("evaluate")))
        for model in models:
            train = steps.get(f"train_{model}")
            row.append(cell(train))
            extra = (train or {}).get("extra") or {}
            per = extra.get("training_seconds_per_million_targets")
            mark = " (est.)" if extra.get("targets_estimated") else ""
            row.append(f"{per:.2f}{mark}" if per else "–")
            latency = (steps.get(f"latency_{model}") or {}).get("extra") or {}
            row.append(f"{latency['median_ms']:.0f} ms" if latency else "–")
        serves = [steps[k] for k in steps if k.startswith("serve_")]
        row.append(
            f"{max(s['peak_bytes'] for s in serves) / 2**30:.2f} GiB"
            if serves and all(s.get("peak_bytes") for s in serves)
            else "–"
        )
        if nproc:
            two = steps.get("train_nproc2") or {}
            row.append(f"{two['speedup']:.2f}×" if two.get("speedup") else "–")
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def plot(results: list[dict[str, object]], path: Path) -> None:
    """Log-log against sensors: wall seconds of each command, forecast latency (with the
    issue's targets at 10,000 sensors), and peak memory with the bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for city in results for k in city.get("steps", {}) if k != "train_nproc2"})
    if not any(
        step.get("error") is None for city in results for step in city.get("steps", {}).values()
    ):
        print("no plot: no step succeeded", flush=True)
        return
    figure, (timed, latency, memory) = plt.subplots(1, 3, figsize=(15, 5))
    colours = plt.get_cmap("tab20")
    for k, name in enumerate(names):
        points = [
            (city["sensors"], city["steps"][name])
            for city in results
            if name in city.get("steps", {}) and not city["steps"][name].get("error")
        ]
        if not points:
            continue
        sizes = [p[0] for p in points]
        style = {"marker": "os^vD<>"[k % 7], "color": colours(k % 20), "label": name}
        if name.startswith("latency_"):
            latency.plot(sizes, [p[1]["extra"]["median_ms"] for p in points], **style)
        else:
            timed.plot(sizes, [p[1]["seconds"] for p in points], **style)
        peaks = [(n, step["peak_bytes"] / GB) for n, step in points if step.get("peak_bytes")]
        if peaks:
            memory.plot([n for n, _ in peaks], [gb for _, gb in peaks], **style)
    for model, limit in LATENCY_TARGET_MS.items():
        latency.plot([LATENCY_SIZE], [limit], "k_", markersize=20)
        latency.annotate(f"target {model}", (LATENCY_SIZE, limit), fontsize=7, ha="right")
    bounded = [c for c in results if c.get("bound_bytes")]
    memory.plot(
        [c["sensors"] for c in bounded],
        [c["bound_bytes"] / GB for c in bounded],
        "k--_",
        markersize=20,
        linewidth=2,
        label="bound: 3 × raw + 1 GB",
    )
    for axis, label in (
        (timed, "wall seconds of the command"),
        (latency, "forecast, median ms (2 threads)"),
        (memory, "peak memory, GB (RSS)"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("sensors")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="upper left")
    figure.suptitle("urbanflow at city scale: synthetic roads, 4 weeks of 5-minute speeds")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    print(f"plot written to {path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000,20000", help="sensor counts")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale"), help="city cache")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=f"stid,{RECOMMENDED}")
    parser.add_argument("--time-budget", type=float, default=2.0, help="training minutes")
    parser.add_argument("--skip", default="", help=f"steps to skip: {','.join(STEPS)}")
    parser.add_argument("--nproc", action="store_true", help="also train with --nproc 2")
    parser.add_argument("--nproc-model", default=RECOMMENDED, help="the model --nproc trains")
    parser.add_argument("--step-limit", type=float, default=60, help="minutes a step at most")
    parser.add_argument("--latency-calls", type=int, default=20)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--plot", type=Path, default=Path("docs/img/scale.png"))
    parser.add_argument(
        "--replot", type=Path, help="only draw --plot from this scale.json, measuring nothing"
    )
    parser.add_argument(
        "--probe-latency", nargs=2, metavar=("BUNDLE", "CITY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.probe_latency:  # the latency subprocess: one JSON line
        bundle, city = map(Path, args.probe_latency)
        threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
        print(json.dumps(probe_latency(bundle, city, args.latency_calls, threads)))
        return
    if args.replot:
        plot(json.loads(args.replot.read_text())["sizes"], args.plot)
        return
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - set(STEPS)
    if unknown:
        parser.error(f"unknown steps to skip: {', '.join(sorted(unknown))}; choose from {STEPS}")
    options = Options(
        sizes=[int(s) for s in args.sizes.split(",")],
        work=args.work,
        days=args.days,
        seed=args.seed,
        models=[m for m in args.models.split(",") if m],
        time_budget=args.time_budget,
        skip=skip,
        nproc=args.nproc,
        nproc_model=args.nproc_model,
        step_limit_s=args.step_limit * 60 if args.step_limit else None,
        latency_calls=args.latency_calls,
    )
    started = datetime.now(timezone.utc)
    about = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="urbanflow-scale-") as temporary:
        for n in options.sizes:
            print(f"== {n:,} sensors ({datetime.now(timezone.utc):%H:%M:%S} UTC)", flush=True)
            try:
                results.append(measure_city(n, options, Path(temporary)))
            except Exception as error:  # recorded; the next size runs
                print(f"    FAILED: {type(error).__name__}: {error}", flush=True)
                results.append({"sensors": n, "error": f"{type(error).__name__}: {error}"})
    checks = targets(results, options.models)
    markdown = table(results, options.models)
    print(markdown)
    print(json.dumps(checks, indent=1))
    report = {
        "command": "python " + shlex.join(["benchmarks/scale.py", *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "wall_s": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "git_commit": git_commit(),
        "machine": about,
        "options": {**asdict(options), "work": str(options.work), "skip": sorted(skip)},
        "bound": "peak RSS <= 3 x raw float32 readings (steps x sensors x 4 bytes) + 1 GB",
        "targets": checks,
        "table": markdown,
        "sizes": results,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "scale.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"results written to {args.output / 'scale.json'}", flush=True)
    try:
        plot(results, args.plot)
    except ImportError:
        print("no plot: matplotlib is not installed (pip install -e '.[bench]')", flush=True)


if __name__ == "__main__":
    main()
