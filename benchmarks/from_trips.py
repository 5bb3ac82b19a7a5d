"""Trip records to flows: wall time and peak memory of `urbanflow datasets from-trips`.

    .venv/bin/python benchmarks/from_trips.py [--rows 10000000] [--zones h3:8]
        [--frequency 15min] [--output benchmarks/results]

Writes ``--rows`` random trips (seeded) to a Parquet file in a temporary folder, in row
groups of a million so the generator itself stays small: start points uniform in a Paris
bounding box (48.80–48.92 N, 2.25–2.42 E), start times uniform over four weeks from Monday
2024-05-06 (naive, local in Europe/Paris), durations 5–60 minutes, end points uniform in
the same box. Then it runs the conversion as a subprocess (``urbanflow datasets from-trips
TRIPS --zones h3:8 --frequency 15min --timezone Europe/Paris --out DIR``), measures its wall
time and peak resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the largest child
since this script started; the generator runs in this process, not a child), checks the
counts add up to ``--rows``, prints a table and writes ``from_trips.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from provenance import cpu_name, git_commit

BBOX = (48.80, 2.25, 48.92, 2.42)
START = pd.Timestamp("2024-05-06 00:00")
DAYS = 28
CHUNK = 1_000_000


def write_trips(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` random trips to Parquet, a million rows per row group."""
    rng = np.random.default_rng(seed)
    south, west, north, east = BBOX
    span_us = DAYS * 86_400 * 10**6
    start_us = START.value // 1000
    writer = None
    try:
        for first in range(0, rows, CHUNK):
            n = min(CHUNK, rows - first)
            begin = start_us + rng.integers(0, span_us, n)
            end = begin + rng.integers(5 * 60 * 10**6, 60 * 60 * 10**6, n)
            table = pa.table(
                {
                    "start_time": pa.array(begin, pa.timestamp("us")),
                    "start_lat": rng.uniform(south, north, n),
                    "start_lon": rng.uniform(west, east, n),
                    "end_time": pa.array(end, pa.timestamp("us")),
                    "end_lat": rng.uniform(south, north, n),
                    "end_lon": rng.uniform(west, east, n),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--zones", default="h3:8")
    parser.add_argument("--frequency", default="15min")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="from-trips-bench-") as folder:
        trips = Path(folder) / "trips.parquet"
        began = time.perf_counter()
        write_trips(trips, args.rows)
        generate_s = time.perf_counter() - began
        out = Path(folder) / "flows"
        command = [
            sys.executable,
            "-c",
            "import sys; from urbanflow.cli import main; main(sys.argv[1:])",
            "datasets",
            "from-trips",
            str(trips),
            "--zones",
            args.zones,
            "--frequency",
            args.frequency,
            "--timezone",
            "Europe/Paris",
            "--out",
            str(out),
        ]
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall_s = time.perf_counter() - began
        if done.returncode != 0:
            sys.exit(f"from-trips failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        departures = pd.read_parquet(out / "departures" / "readings.parquet")
        arrivals = pd.read_parquet(out / "arrivals" / "readings.parquet", columns=["value"])
        od = pd.read_parquet(out / "od.parquet", columns=["trips"])
        counted = {
            "departures": int(departures["value"].sum()),
            "arrivals": int(arrivals["value"].sum()),
            "od": int(od["trips"].sum()),
        }
        if set(counted.values()) != {args.rows}:
            sys.exit(f"counts do not add up to {args.rows}: {counted}")
        result = {
            "rows": args.rows,
            "zones_spec": args.zones,
            "frequency": args.frequency,
            "input_mib": round(trips.stat().st_size / 2**20, 1),
            "generate_s": round(generate_s, 1),
            "wall_s": round(wall_s, 1),
            "rows_per_s": round(args.rows / wall_s),
            "peak_rss_mib": round(peak_mib),
            "zones": int(departures["sensor_id"].nunique()),
            "steps": int(departures["timestamp"].nunique()),
            "readings_rows": len(departures),
            "od_pairs": len(od),
            "counted": counted,
            "machine": {
                "cpu": cpu_name(),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "duckdb": version("duckdb"),
                "h3": version("h3"),
            },
            "commit": git_commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "command": " ".join(["urbanflow", *command[3:]]),
        }
    print(f"{'rows':>12} {'wall s':>8} {'rows/s':>10} {'peak MiB':>9} {'zones':>6} {'steps':>6}")
    print(
        f"{result['rows']:>12,} {result['wall_s']:>8} {result['rows_per_s']:>10,} "
        f"{result['peak_rss_mib']:>9} {result['zones']:>6} {result['steps']:>6}"
    )
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "from_trips.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
