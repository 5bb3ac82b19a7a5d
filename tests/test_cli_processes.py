"""`urbanflow train` over several processes: `--nproc` on this machine, two torchrun launches
as two machines, and a failing rank."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli_run import run

from urbanflow.cli import main

TRAIN = ["train", "--model", "stid", "--max-epochs", "1", "--seed", "0", "--levels", "none"]


@pytest.fixture(scope="module")
def tiny_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated road city of 8 sensors over 4 days of 5-minute speeds (1,152 steps)."""
    folder = tmp_path_factory.mktemp("tiny-roads") / "city"
    args = ["datasets", "synth", "roads", "--sensors", "8", "--days", "4", "--out", str(folder)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nproc_2_trains_over_two_processes_and_writes_one_bundle(tiny_city, tmp_path, capfd):
    bundle = tmp_path / "bundle"
    args = [*TRAIN, "--dataset", str(tiny_city), "--nproc", "2", "--out", str(bundle)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capfd.readouterr().out
    assert exit_info.value.code in (0, None), out
    assert out.count("Bundle written") == 1  # rank 0 prints, rank 1 does not
    assert "targets/s over 2 processes" in out
    (member,) = json.loads((bundle / "card.json").read_text())["training"]["members"]
    assert member["processes"] == 2 and member["targets"] > 0


def test_two_torchrun_launches_train_as_two_machines_and_one_writes(tiny_city, tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launches = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc-per-node=1",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={endpoint}",
                "--rdzv-id=two-machines",
                "--max-restarts=0",
                "-m",
                "urbanflow",
                *TRAIN,
                "--dataset",
                str(tiny_city),
                "--out",
                str(tmp_path / f"node{node}"),  # each machine its own disk
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    outputs = [launch.communicate(timeout=300)[0] for launch in launches]
    assert [launch.returncode for launch in launches] == [0, 0], outputs
    written = [node for node in (0, 1) if (tmp_path / f"node{node}" / "card.json").exists()]
    assert len(written) == 1  # rank 0's machine only
    card = json.loads((tmp_path / f"node{written[0]}" / "card.json").read_text())
    assert card["training"]["members"][0]["processes"] == 2
    assert sum(output.count("Bundle written") for output in outputs) == 1


def test_failing_ranks_end_the_run_with_a_clear_message(tmp_path, capfd):
    args = [*TRAIN, "--dataset", str(tmp_path / "absent"), "--nproc", "2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capfd.readouterr().err
    assert exit_info.value.code == 2
    assert "error: rank" in err and "of 2 failed (exit code 2)" in err
    assert not (tmp_path / "card.json").exists()


@pytest.mark.parametrize("nproc", ["0", "-1"])
def test_nproc_below_one_is_refused(nproc, capsys):
    code, _, err = run([*TRAIN, "--nproc", nproc, "--out", "x"], capsys)
    assert code == 2 and "--nproc must be at least 1" in err


def test_nproc_under_torchrun_is_refused(monkeypatch, capsys):
    for name, value in [("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")]:
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    code, _, err = run([*TRAIN, "--nproc", "2", "--out", "x"], capsys)
    assert code == 2 and "--nproc-per-node to torchrun" in err
