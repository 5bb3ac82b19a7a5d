import json
from pathlib import Path

import pytest

from urbanflow.cli import main


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


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
    assert round(payload["horizons"][2]["mae"], 3) == 5.731


def test_evaluate_tgcn_protocol_with_options(capsys):
    code, out, _ = run(
        ["evaluate", "--model", "last-value", "--protocol", "tgcn", "--horizons", "3,12"], capsys
    )
    assert code == 0
    assert "3.1561" in out  # 15-minute MAE pooled over steps 1..3


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
    assert "207" in out and "2016" in out and "5min" in out and "0.00 %" in out


def test_demo_writes_a_run_folder(tmp_path, capsys):
    code, out, _ = run(["demo", "--runs-dir", str(tmp_path)], capsys)
    assert code == 0
    (run_folder,) = tmp_path.iterdir()
    summary = json.loads((run_folder / "results.json").read_text())
    assert set(summary) == {"default", "tgcn"}
    assert {r["model"] for r in summary["default"]} >= {"last-value", "ridge"}
    assert str(run_folder) in out.replace("\n", "")


def test_datasets_info_on_a_path(capsys):
    example = Path(__file__).parents[1] / "docs" / "examples" / "my-city"
    code, out, _ = run(["datasets", "info", str(example)], capsys)
    assert code == 0
    assert "my-city" in out and "15min" in out and "4.69 %" in out


def test_evaluate_on_a_user_folder_with_gaps(tmp_path, capsys):
    example = Path(__file__).parents[1] / "docs" / "examples" / "my-city"
    output = tmp_path / "ridge.json"
    code, _, _ = run(
        ["evaluate", "--dataset", str(example), "--model", "ridge", "--output", str(output)],
        capsys,
    )
    assert code == 0
    payload = json.loads(output.read_text())
    assert payload["null_value"] == -1
    assert all(h["mae"] is not None and h["mae"] >= 0 for h in payload["horizons"])
