"""Every baseline on Los-loop under both protocols: accuracy, fit and predict times.

    .venv/bin/python benchmarks/baselines.py [--repeats 5] [--output benchmarks/results]

Prints a Markdown table and writes ``baselines.json`` and ``baselines.md`` (date, machine,
commit, medians over the repeats of fit and predict seconds; accuracy does not vary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

from provenance import cpu_name, git_commit

from urbanflow import __version__
from urbanflow.data.catalog import load_dataset
from urbanflow.evaluation.evaluate import evaluate
from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.registry import make_model, model_names


def machine() -> str:
    cpu = cpu_name()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()

    dataset = load_dataset("los-loop")
    rows = []
    for protocol in ("default", "tgcn"):
        plan = make_plan(protocol, dataset.num_steps)
        for name in model_names():
            runs = [
                evaluate(make_model(name, horizon=plan.horizon), dataset, plan, model_name=name)
                for _ in range(options.repeats)
            ]
            first = runs[0].to_json()
            first["train_seconds_median"] = statistics.median(r.train_seconds for r in runs)
            first["predict_seconds_median"] = statistics.median(r.predict_seconds for r in runs)
            rows.append(first)
            print(f"{protocol:8} {name:20} done", flush=True)

    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "commit": git_commit(),
        "urbanflow": __version__,
        "repeats": options.repeats,
    }
    options.output.mkdir(parents=True, exist_ok=True)
    (options.output / "baselines.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n"
    )
    markdown = render(meta, rows)
    (options.output / "baselines.md").write_text(markdown)
    print(markdown)


def render(meta: dict[str, object], rows: list[dict[str, object]]) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['machine']}, commit {meta['commit']}; "
        f"times are medians of {meta['repeats']} runs.",
        "",
    ]
    for protocol in ("default", "tgcn"):
        chosen = [r for r in rows if r["protocol"] == protocol]
        horizons = chosen[0]["horizons"]
        head = " | ".join(f"{h['minutes']:g} min MAE / RMSE" for h in horizons)
        lines += [
            f"**Protocol `{protocol}`** ({chosen[0]['test_samples']} test samples, mph)",
            "",
            f"| model | {head} | avg MAE | fit s | predict s |",
            "|---" * (len(horizons) + 4) + "|",
        ]
        for r in chosen:
            cells = " | ".join(f"{h['mae']:.3f} / {h['rmse']:.3f}" for h in r["horizons"])
            lines.append(
                f"| {r['model']} | {cells} | {r['average']['mae']:.3f} | "
                f"{r['train_seconds_median']:.3f} | {r['predict_seconds_median']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
