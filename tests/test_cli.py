import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.cli_run import run
from tests.reference import los_loop_speeds, tgcn_persistence

from urbanflow.cli import main

MY_CITY = Path(__file__).parents[1] / "docs" / "examples" / "my-city"


def test_evaluate_writes_results_json(tmp_path, capsys):
    output = tmp_path / "out" / "last.json"
    code, out, _ = run(
        ["evaluate", "--dataset", "los-loop", "--model", "last-value", "--output", str(output)],
        capsys,
    )
    assert code == 0
    assert "Protocol default" in out and "399 test samples" in out
    payload = json.loads(output.read_text())
    assert payload["model"] == "last-value"
    # EVALUATION.md, check figures: persistence MAE at step 12, Los-loop default preset.
    assert round(payload["horizons"][2]["mae"], 3) == 5.731


def test_evaluate_tgcn_protocol_with_options(capsys):
    code, out, _ = run(
        ["evaluate", "--model", "last-value", "--protocol", "tgcn", "--horizons", "3,12"], capsys
    )
    assert code == 0
    # 15-minute MAE pooled over steps 1..3, as the independent NumPy reference computes it
    assert f"{tgcn_persistence(3)['mae']:.4f}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--model", "prophet"], "unknown model"),
        (["evaluate", "--dataset", "no-such-set"], "no dataset named or at 'no-such-set'"),
        (["evaluate", "--split", "0.5,0.5"], "split"),
        (["evaluate", "--protocol", "paper"], "unknown protocol"),
        (["evaluate", "--horizons", "0"], "horizons"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, capsys):
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err.lower() or message in err
    assert err.strip().count("\n") == 0
    assert "Traceback" not in err


def test_debug_shows_the_traceback():
    from urbanflow.errors import UrbanflowError

    with pytest.raises(UrbanflowError):
        main(["--debug", "evaluate", "--model", "prophet"])


def test_datasets_list_and_info(capsys):
    code, out, _ = run(["datasets", "list"], capsys)
    assert code == 0 and "los-loop" in out
    code, out, _ = run(["datasets", "info", "los-loop"], capsys)
    assert code == 0
    steps, sensors = los_loop_speeds().shape  # read from the Parquet file with pandas
    missing = 100 * np.isnan(los_loop_speeds()).mean()
    assert f"{sensors}" in out and f"{steps}" in out and "5min" in out
    assert f"{missing:.2f} %" in out


def test_datasets_list_and_info_describe_each_embedded_set_from_its_toml(capsys):
    code, out, _ = run(["datasets", "list"], capsys)
    assert code == 0
    words = " ".join(out.split())  # the table wraps its cells
    assert "speed (mph), level, 207 sensors" in words and "2012-03-01" in words
    lines = out.splitlines()
    los = next(i for i, line in enumerate(lines) if "los-loop" in line)
    demand = next(i for i, line in enumerate(lines) if "synthetic-demand" in line)
    assert "synthetic" not in " ".join(lines[los:demand])  # only the generated set says so
    assert "synthetic departures" in " ".join(lines[demand : demand + 2])
    code, out, _ = run(["datasets", "info", "synthetic-demand"], capsys)
    assert code == 0
    about = next(line for line in out.splitlines() if "about" in line)
    assert "synthetic departures (trips), count" in about and "every 15min" in about
    assert "source  synthetic:" in out and "licence  synthetic" in out


def missing_percent(folder: Path, frequency: str, null_value: float) -> float:
    """The share of missing readings of a wide city folder, in %, with plain pandas: cells of
    the regular grid from the first to the last timestamp that are absent rows, empty, or the
    null value."""
    frame = pd.read_csv(folder / "readings.csv", parse_dates=["timestamp"]).set_index("timestamp")
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=frequency)
    values = frame.reindex(grid).to_numpy(float)
    return 100 * float((np.isnan(values) | (values == null_value)).mean())


def test_datasets_info_on_a_path(capsys):
    code, out, _ = run(["datasets", "info", str(MY_CITY)], capsys)
    assert code == 0
    missing = missing_percent(MY_CITY, "15min", -1)  # as its dataset.toml declares
    assert "my-city" in out and "15min" in out and f"{missing:.2f} %" in out


def test_evaluate_on_a_user_folder_with_gaps(tmp_path, capsys):
    output = tmp_path / "ridge.json"
    code, _, _ = run(
        ["evaluate", "--dataset", str(MY_CITY), "--model", "ridge", "--output", str(output)],
        capsys,
    )
    assert code == 0
    payload = json.loads(output.read_text())
    assert payload["null_value"] == -1
    assert all(h["mae"] is not None and h["mae"] >= 0 for h in payload["horizons"])


def test_train_forecast_and_rescore_a_bundle(los_loop_training, tmp_path, capsys):
    # The session's bundle is written by `urbanflow train` (tests/conftest.py).
    bundle = los_loop_training.bundle
    assert "Bundle written" in los_loop_training.output
    card = json.loads((bundle / "card.json").read_text())
    trained_mae = card["metrics"]["horizons"][0]["mae"]

    forecasts = tmp_path / "f.parquet"
    code, _, _ = run(
        [
            "forecast",
            "--model-dir",
            str(bundle),
            "--at",
            "2012-03-07 08:00",
            "--output",
            str(forecasts),
        ],
        capsys,
    )
    assert code == 0
    table = pd.read_parquet(forecasts)
    assert len(table) == 12 * 207
    assert table["issued_at"].nunique() == 1
    assert (
        str(table["target_time"].min().tz_convert("America/Los_Angeles"))
        == "2012-03-07 08:05:00-08:00"
    )

    hindcast = tmp_path / "h.csv"
    code, _, _ = run(
        [
            "forecast",
            "--model-dir",
            str(bundle),
            "--start",
            "2012-03-07 08:00",
            "--end",
            "2012-03-07 09:00",
            "--output",
            str(hindcast),
        ],
        capsys,
    )
    assert code == 0
    assert pd.read_csv(hindcast)["issued_at"].nunique() == 13

    code, _, err = run(
        ["forecast", "--model-dir", str(bundle), "--dataset", str(MY_CITY), "--output", "x.csv"],
        capsys,
    )
    assert code == 2 and "sensors differ" in err
    # a split whose test part starts inside the rows the bundle was fitted on is refused
    code, _, err = run(["evaluate", "--model-dir", str(bundle), "--split", "0.3,0.1,0.6"], capsys)
    assert code == 2 and "fitted on" in err

    output = tmp_path / "again.json"
    code, _, _ = run(["evaluate", "--model-dir", str(bundle), "--output", str(output)], capsys)
    assert code == 0
    assert json.loads(output.read_text())["horizons"][0]["mae"] == pytest.approx(
        trained_mae, abs=1e-5
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "ridge", "--out", "x"], "baseline"),
        (["forecast", "--model-dir", "nowhere", "--output", "f.csv"], "no such model folder"),
        (["evaluate", "--model", "stid", "--max-epochs", "0"], "positive"),
    ],
)
def test_training_user_errors(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err


def test_benchmark_resumes(tmp_path, capsys):
    args = [
        "benchmark",
        "--models",
        "last-value,ridge-per-sensor",
        "--protocol",
        "tgcn",
        "--out",
        str(tmp_path),
    ]
    code, out, _ = run(args, capsys)
    assert code == 0 and "0 already finished" in out
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert [row["model"] for row in board["rows"]] == ["ridge-per-sensor", "last-value"]
    # last-value's 15-minute MAE, against the independent NumPy reference (float32 vs 64)
    reference = tgcn_persistence(3)["mae"]
    assert board["rows"][1]["horizons"][0]["mae"] == pytest.approx(reference, rel=1e-5)
    stamp = (tmp_path / "ridge-per-sensor" / "run.json").stat().st_mtime
    code, out, _ = run(args, capsys)
    assert code == 0 and "2 already finished" in out
    assert (tmp_path / "ridge-per-sensor" / "run.json").stat().st_mtime == stamp


def test_serve_refuses_a_missing_bundle_in_one_line(tmp_path, capsys):
    code, _, err = run(["serve", "--model-dir", str(tmp_path / "nope")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "no such model folder" in err


def test_forecast_intervals_equal_those_the_training_run_scored(
    los_loop_training, los_loop, tmp_path, capsys
):
    """`urbanflow train` scored 80 % intervals on the test part (the default levels); the
    bundle's `forecast --levels 80` over the same issue times gives the same intervals."""
    from urbanflow.evaluation.protocol import make_plan

    card = json.loads((los_loop_training.bundle / "card.json").read_text())
    plan = make_plan("default", los_loop.num_steps, 12)
    first, last = (los_loop.timestamps[int(t) - 1] for t in plan.test_times[[0, -1]])
    output = tmp_path / "intervals.parquet"
    args = ["forecast", "--model-dir", str(los_loop_training.bundle), "--levels", "80"]
    args += ["--start", first.isoformat(), "--end", last.isoformat(), "--output", str(output)]
    code, _, err = run(args, capsys)
    assert code == 0, err
    table = pd.read_parquet(output)
    assert {"lower_80", "upper_80"} <= set(table.columns)
    readings = pd.DataFrame(
        los_loop.readings[..., 0], index=los_loop.timestamps, columns=los_loop.sensors.ids
    )
    targets = readings.stack().rename("y").rename_axis(["target_time", "sensor_id"])
    scored = table.join(targets, on=["target_time", "sensor_id"])
    for horizon in card["metrics"]["horizons"]:
        step = scored[scored["horizon_steps"] == horizon["steps"]]
        inside = (step["y"] >= step["lower_80"]) & (step["y"] <= step["upper_80"])
        assert inside.mean() == pytest.approx(horizon["coverage_80"], abs=1e-6)
    # an issue time inside the validation part that calibrated the intervals is refused
    early = los_loop.timestamps[int(plan.test_times[0]) - 2].isoformat()
    args = ["forecast", "--model-dir", str(los_loop_training.bundle), "--levels", "80"]
    code, _, err = run([*args, "--at", early, "--output", str(output)], capsys)
    assert code == 2 and "validation part" in err


def test_the_command_fixes_glibcs_mmap_threshold_unless_the_user_set_one(monkeypatch):
    import platform

    from urbanflow.cli.allocator import fix_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False  # the user's setting wins
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert fix_mmap_threshold() is True


def test_a_command_budget_pays_for_what_came_before_training():
    import time

    from urbanflow.cli.common import training_options

    started = time.perf_counter() - 30  # the command read its data for 30 s
    options = training_options(None, 2.0, None, started=started)
    assert options["time_budget_min"] == pytest.approx(1.5, abs=0.01)
    spent = training_options(None, 0.25, None, started=started)["time_budget_min"]
    assert 0 < spent < 1e-6  # nothing left: one step is still taken
    assert training_options(None, 2.0, None)["time_budget_min"] == 2.0  # the fit's alone
