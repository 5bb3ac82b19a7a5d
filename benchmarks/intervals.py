"""Calibrated intervals on Los-loop: coverage per step and per decile of sensors, and the
interval score against plain split conformal on the same point forecasts.

    .venv/bin/python benchmarks/intervals.py [--models stid-graph,ridge-per-sensor]
        [--protocol default] [--level 90] [--seed 0] [--output benchmarks/results]

For each model: fit on the protocol's fitting rows (neural models as their registry preset,
seeded), calibrate on the validation part, replay the online update over the test part in
time order (``urbanflow.evaluation.intervals``, the code ``urbanflow evaluate --levels`` runs),
then report per horizon step, at the chosen level:

- coverage over all present test targets;
- the lowest and highest coverage among ten deciles of sensors, sorted by their validation MAE
  at that step (validation residuals known before the test part);
- the mean interval (Winkler) score, and its ratio to plain split conformal: one quantile of
  |residual| per step from the same validation residuals, sensors pooled, no online update.

Issue 9's targets at 90 %: coverage 88-92 % at every step, every decile 85-95 %, and an
interval score at least 10 % below plain split conformal at every step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from provenance import cpu_name, git_commit

from urbanflow.data.catalog import load_dataset
from urbanflow.evaluation.evaluate import validation_part
from urbanflow.evaluation.intervals import calibrate_on_validation, replay_span
from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.conformal import replay_intervals, residual_targets
from urbanflow.models.forecast import predict_samples
from urbanflow.models.registry import MODELS, make_model


def winkler(targets, lower, upper, alpha, present):
    """``[h]`` mean interval score per step over present targets (arrays ``[s h n]``)."""
    score = (upper - lower) + 2 / alpha * (
        np.clip(lower - targets, 0, None) + np.clip(targets - upper, 0, None)
    )
    return np.where(present, score, 0).sum(axis=(0, 2)) / present.sum(axis=(0, 2))


def covered(targets, lower, upper, present):
    inside = (targets >= lower) & (targets <= upper) & present
    return inside, present


def measure(name: str, dataset, plan, level: float, seed: int) -> dict[str, object]:
    options = {"seed": seed} if MODELS[name].is_neural else {}
    model = make_model(name, input_len=plan.input_len, horizon=plan.horizon, **options)
    started = time.perf_counter()
    model.fit(dataset.slice_steps(0, plan.fit_stop), validation=validation_part(dataset, plan))
    fit_seconds = time.perf_counter() - started
    readings = dataset.readings[..., 0]
    calibration = calibrate_on_validation(model, dataset, plan)
    times = replay_span(plan, calibration)
    forecasts = predict_samples(model, dataset, times)
    lower, upper = replay_intervals(calibration, forecasts, times, readings, (level,))
    test = np.isin(times, plan.test_times)
    forecast, lower, upper = forecasts[test], lower[test, 0], upper[test, 0]
    targets, _ = residual_targets(forecast, times[test], readings)
    present = ~np.isnan(targets)
    alpha = 1 - level / 100

    # plain split conformal: the same validation residuals, one |r| quantile per step
    validation = predict_samples(model, dataset, plan.validation_times)
    val_targets, val_steps = residual_targets(validation, plan.validation_times, readings)
    known = (val_steps < calibration.cutoff)[..., None] & ~np.isnan(val_targets)
    absolute = np.abs(val_targets - validation)
    quantile = np.array(
        [np.quantile(absolute[:, k][known[:, k]], level / 100) for k in range(plan.horizon)]
    )
    plain_lower = forecast - quantile[None, :, None]
    plain_upper = forecast + quantile[None, :, None]

    inside, _ = covered(targets, lower, upper, present)
    coverage = inside.sum(axis=(0, 2)) / present.sum(axis=(0, 2))
    plain_inside, _ = covered(targets, plain_lower, plain_upper, present)
    plain_coverage = plain_inside.sum(axis=(0, 2)) / present.sum(axis=(0, 2))
    score = winkler(targets, lower, upper, alpha, present)
    plain_score = winkler(targets, plain_lower, plain_upper, alpha, present)
    validation_mae = np.nanmean(np.where(known, absolute, np.nan), axis=0)  # [h n]
    decile_low, decile_high = [], []
    for k in range(plan.horizon):
        deciles = np.array_split(np.argsort(validation_mae[k]), 10)
        shares = [inside[:, k, d].sum() / present[:, k, d].sum() for d in deciles]
        decile_low.append(min(shares))
        decile_high.append(max(shares))
    minutes = dataset.step.total_seconds() / 60
    return {
        "model": name,
        "level": level,
        "fit_seconds": round(fit_seconds, 1),
        "steps": [
            {
                "step": k + 1,
                "minutes": (k + 1) * minutes,
                "coverage": round(float(coverage[k]), 4),
                "decile_coverage_min": round(float(decile_low[k]), 4),
                "decile_coverage_max": round(float(decile_high[k]), 4),
                "interval_score": round(float(score[k]), 3),
                "split_conformal_coverage": round(float(plain_coverage[k]), 4),
                "split_conformal_interval_score": round(float(plain_score[k]), 3),
                "score_ratio": round(float(score[k] / plain_score[k]), 4),
            }
            for k in range(plan.horizon)
        ],
    }


def markdown(result: dict[str, object]) -> str:
    level = f"{result['level']:g} %"
    lines = [
        f"{result['model']} ({level} intervals)",
        "",
        "| step | coverage | decile min–max | interval score | split conformal: coverage / "
        "score | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for s in result["steps"]:
        lines.append(
            f"| {s['minutes']:g} min | {s['coverage']:.3f} | {s['decile_coverage_min']:.3f}–"
            f"{s['decile_coverage_max']:.3f} | {s['interval_score']:.2f} | "
            f"{s['split_conformal_coverage']:.3f} / {s['split_conformal_interval_score']:.2f} | "
            f"{s['score_ratio']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="stid-graph,ridge-per-sensor")
    parser.add_argument("--protocol", default="default")
    parser.add_argument("--level", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()
    dataset = load_dataset("los-loop")
    plan = make_plan(options.protocol, dataset.num_steps)
    results = []
    for name in options.models.split(","):
        result = measure(name.strip(), dataset, plan, options.level, options.seed)
        print(markdown(result) + "\n", flush=True)
        results.append(result)
    options.output.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": "los-loop",
        "protocol": options.protocol,
        "cpu": cpu_name(),
        "commit": git_commit(),
        "results": results,
    }
    path = options.output / f"intervals_{options.protocol}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
