"""Do alerts come early and right? Los-loop's test part replayed through the alert rule code.

    .venv/bin/python benchmarks/alerts.py [--models stid-graph,ridge-per-sensor,last-value]
        [--threshold 40] [--within 30] [--seed 0] [--output benchmarks/results]

Each model is fitted on the default protocol's fitting rows and calibrated on its validation
part (``urbanflow.evaluation.intervals``); the test part is then replayed in time order: at
each issue the conformal state takes in the readings that have arrived, the forecast's
probability of falling below the threshold comes from the conformal distribution
(``urbanflow.models.conformal.probability_below``), and the rule "below THRESHOLD within
WITHIN minutes with probability ≥ p" goes through the service's rule code
(``urbanflow.serving.alerts``: ``parse_rules``, ``evaluate_threshold``, ``lifecycle.step``).

An onset is a sensor's speed falling below the threshold and staying below for at least 15
minutes, after at least 30 minutes above. A firing at time t (a transition to ``firing``: the
first issue of a run of firings) is a hit if an onset of that sensor falls in (t, t + WITHIN],
else a false alarm; an onset is detected if a hit precedes it; its lead time is the onset
minus the earliest such firing. Onsets are counted from the first issue time on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import cpu_name, git_commit

from urbanflow.data.catalog import load_dataset
from urbanflow.evaluation.evaluate import validation_part
from urbanflow.evaluation.intervals import calibrate_on_validation, replay_span
from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.conformal import OnlineConformal, probability_below
from urbanflow.models.forecast import predict_samples
from urbanflow.models.registry import MODELS, make_model
from urbanflow.serving.alerts import lifecycle
from urbanflow.serving.alerts.conditions import evaluate_threshold
from urbanflow.serving.alerts.rules import RuleScope, parse_rules

PROBABILITIES = tuple(round(p, 2) for p in np.arange(0.05, 1.0, 0.05))
BELOW_STEPS = 3  # 15 minutes below
ABOVE_STEPS = 6  # after 30 minutes above


def onsets(readings: np.ndarray, threshold: float, first: int) -> list[tuple[int, int]]:
    """``(step, sensor)`` of every onset at or after step ``first``."""
    below = readings < threshold
    above = readings >= threshold
    found = []
    for t in range(max(first, ABOVE_STEPS), readings.shape[0] - BELOW_STEPS + 1):
        starts = below[t : t + BELOW_STEPS].all(axis=0) & above[t - ABOVE_STEPS : t].all(axis=0)
        found += [(t, int(n)) for n in np.flatnonzero(starts)]
    return found


def probabilities(name: str, dataset, plan, threshold: float, seed: int):
    """``([s h n], [s])``: P(below threshold) of each test issue, and its sample time."""
    options = {"seed": seed} if MODELS[name].is_neural else {}
    model = make_model(name, input_len=plan.input_len, horizon=plan.horizon, **options)
    model.fit(dataset.slice_steps(0, plan.fit_stop), validation=validation_part(dataset, plan))
    calibration = calibrate_on_validation(model, dataset, plan)
    times = replay_span(plan, calibration)
    forecasts = predict_samples(model, dataset, times)
    readings = dataset.readings[..., 0]
    state = OnlineConformal(calibration, ())
    result, issued = [], []
    for forecast, t in zip(forecasts, times, strict=True):
        state.observe(int(t) - 1, readings[t - 1])
        if t >= calibration.cutoff:
            result.append(probability_below(calibration, state.scale, forecast, threshold))
            issued.append(int(t))
        state.issued[int(t)] = (forecast, *state.intervals(forecast))
    return np.stack(result), np.array(issued)


def rules_text(threshold: float, within: float, probability: float, resolve_after: int) -> str:
    return (
        f'[[rule]]\nname = "below-{threshold:g}"\nsensors = "all"\ncondition = "below"\n'
        f"threshold = {threshold}\nwithin_minutes = {within}\nprobability = {probability}\n"
        f"resolve_after = {resolve_after}\n"
    )


def score(
    dataset,
    probs,
    samples,
    threshold: float,
    within: float,
    probability: float,
    resolve_after: int,
    events,
) -> dict[str, object]:
    """Precision, recall, F1 and median lead of one probability level."""
    scope = RuleScope.of(dataset.sensors, probs.shape[1], dataset.step)
    (rule,) = parse_rules(rules_text(threshold, within, probability, resolve_after), scope)
    state = lifecycle.RuleState(rule.name, rule.for_issues, rule.resolve_after)
    firings: list[tuple[int, int]] = []  # (issue step, sensor)
    index = dataset.sensors.index_of()
    for p, t in zip(probs, samples, strict=True):
        issue_step = int(t) - 1
        evaluation = evaluate_threshold(rule, dataset.sensors.ids, p)
        issued_at = dataset.timestamps[issue_step].to_pydatetime()
        state, transitions = lifecycle.step(state, evaluation.holds, issued_at, evaluation.values)
        firings += [(issue_step, index[x.sensor_id]) for x in transitions if x.to_state == "firing"]
    window = round(within / (dataset.step.total_seconds() / 60))
    onset_set = {}
    for step, sensor in events:
        onset_set.setdefault(sensor, []).append(step)
    hits, leads = 0, {}
    for step, sensor in firings:
        ahead = [o for o in onset_set.get(sensor, []) if step < o <= step + window]
        if ahead:
            hits += 1
            for o in ahead:
                leads[(o, sensor)] = max(leads.get((o, sensor), 0), o - step)
    precision = hits / len(firings) if firings else float("nan")
    recall = len(leads) / len(events) if events else float("nan")
    f1 = (
        2 * precision * recall / (precision + recall)
        if firings and events and precision + recall > 0
        else 0.0
    )
    minutes = dataset.step.total_seconds() / 60
    lead = float(np.median(list(leads.values())) * minutes) if leads else float("nan")
    return {
        "probability": probability,
        "firings": len(firings),
        "hits": hits,
        "detected": len(leads),
        "onsets": len(events),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "median_lead_minutes": lead,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="stid-graph,ridge-per-sensor,last-value")
    parser.add_argument("--threshold", type=float, default=40.0)
    parser.add_argument("--within", type=float, default=30.0)
    parser.add_argument("--resolve-after", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()
    dataset = load_dataset("los-loop")
    plan = make_plan("default", dataset.num_steps)
    readings = dataset.readings[..., 0]
    results = []
    for name in (m.strip() for m in options.models.split(",")):
        probs, samples = probabilities(name, dataset, plan, options.threshold, options.seed)
        events = onsets(readings, options.threshold, int(samples[0]))
        rows = [
            score(
                dataset,
                probs,
                samples,
                options.threshold,
                options.within,
                p,
                options.resolve_after,
                events,
            )
            for p in PROBABILITIES
        ]
        best = max(rows, key=lambda row: row["f1"])
        target = [
            r
            for r in rows
            if r["precision"] >= 0.7 and r["recall"] >= 0.6 and r["median_lead_minutes"] >= 10
        ]
        results.append({"model": name, "rows": rows, "best": best, "meets_target": target})
        print(f"\n{name}: {len(events)} onsets in the test part")
        print(pd.DataFrame(rows).to_string(index=False), flush=True)
        print(f"best F1 {best['f1']:.3f} at p = {best['probability']}; target met: {bool(target)}")
    options.output.mkdir(parents=True, exist_ok=True)
    path = options.output / "alerts.json"
    payload = {
        "dataset": "los-loop",
        "protocol": "default",
        "threshold": options.threshold,
        "within_minutes": options.within,
        "resolve_after": options.resolve_after,
        "cpu": cpu_name(),
        "commit": git_commit(),
        "results": results,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
