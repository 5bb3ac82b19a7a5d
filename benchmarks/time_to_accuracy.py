"""Time to accuracy: test error of a model trained under a wall-clock budget (default preset).

    .venv/bin/python benchmarks/time_to_accuracy.py [--model stid-graph] [--budgets 0.5,0.9]
        [--ensemble 1] [--output benchmarks/results]

A run with a budget of B minutes stops before an epoch that would overrun B, keeps the best
validation epoch, and is then scored on the test part: if its test errors beat a reference,
the model reached that accuracy within B minutes of training. The reference printed beside
is a peer library's STID run on this CPU under the same protocol and split (MAE 3.104 /
3.707 / 4.398 at 15 / 30 / 60 minutes, best validation epoch after about 55 s of training).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from urbanflow.data.catalog import load_dataset
from urbanflow.evaluation.evaluate import evaluate
from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.registry import make_model

PEER_STID_MAE = {3: 3.104, 6: 3.707, 12: 4.398}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="stid-graph")
    parser.add_argument("--budgets", default="0.5,0.9")
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()
    dataset = load_dataset("los-loop")
    plan = make_plan("default", dataset.num_steps)
    rows = []
    for budget in (float(b) for b in options.budgets.split(",")):
        model = make_model(
            options.model, horizon=plan.horizon, time_budget_min=budget, ensemble=options.ensemble
        )
        result = evaluate(model, dataset, plan, options.model)
        maes = {h.steps: h.metrics["mae"] for h in result.horizons}
        beats = all(maes[s] < PEER_STID_MAE[s] for s in PEER_STID_MAE)
        row = {
            "model": options.model,
            "ensemble": options.ensemble,
            "budget_min": budget,
            "train_seconds": round(result.train_seconds, 1),
            "mae": {str(k): round(v, 3) for k, v in maes.items()},
            "rmse": {str(h.steps): round(h.metrics["rmse"], 3) for h in result.horizons},
            "beats_peer_stid": beats,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    options.output.mkdir(parents=True, exist_ok=True)
    (options.output / "time_to_accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
