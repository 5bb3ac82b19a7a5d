"""Data-parallel training: two processes equal one with the same global batch, rank
helpers in a single process, and a failing rank ending a torchrun launch."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from urbanflow.errors import DistributedError
from urbanflow.training import distributed
from urbanflow.training.engine import TrainingOptions, train
from urbanflow.training.tensors import Scaler, SeriesTensors

SENSORS, INPUT_LEN, HORIZON = 10, 4, 3
HANG = timedelta(seconds=60)  # ranks that part ways fail after this instead of waiting 30 min


class SensorMLP(nn.Module):
    """A small network with shared layers and one embedding per sensor (no dropout, so that
    runs are deterministic); forecasts any subset of sensors and, like STID, refuses an empty
    batch."""

    sensor_subsets = True

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embedding = nn.Parameter(torch.randn(SENSORS, 4) * 0.1)
        self.hidden = nn.Linear(INPUT_LEN * 2 + 4, 16)
        self.out = nn.Linear(16, HORIZON)

    def forward(self, x, tod, dow, sensors=None):
        if x.shape[0] == 0:
            raise ValueError("an empty batch")
        if sensors is not None:
            x = x[:, :, sensors]
        embedding = self.embedding if sensors is None else self.embedding[sensors]
        b, _, n, _ = x.shape
        windows = x.permute(0, 2, 1, 3).reshape(b, n, INPUT_LEN * 2)
        features = torch.cat([windows, embedding.expand(b, -1, -1)], dim=-1)
        return self.out(torch.relu(self.hidden(features))).transpose(1, 2)


def tiny_series() -> SeriesTensors:
    """60 steps of 10 random-walk sensors with 20 % of the readings missing."""
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal((60, SENSORS)), axis=0).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    return SeriesTensors(
        readings=torch.tensor(values),
        scaler=Scaler(0.0, 1.0),
        tod=torch.zeros(60 + HORIZON, dtype=torch.int64),
        dow=torch.zeros(60 + HORIZON, dtype=torch.int64),
    )


# 50 samples in global batches of 7: the last batch holds one sample, so rank 1 steps on a
# stand-in sample of no weight there
TIMES = np.arange(INPUT_LEN, INPUT_LEN + 50)
OPTIONS = TrainingOptions(max_epochs=2, batch_size=7, learning_rate=0.01, sensors_per_step=4)


def train_tiny() -> tuple[dict[str, torch.Tensor], float, int]:
    """The trained weights, the last epoch's training loss and the present targets trained
    on; no validation part."""
    torch.set_num_threads(1)
    network = SensorMLP()
    series, scaler = tiny_series(), Scaler(0.0, 1.0)
    report = train(network, series, TIMES, None, np.array([]), INPUT_LEN, HORIZON, scaler, OPTIONS)
    return network.state_dict(), report.history[-1]["train_loss"], report.targets


def rank_main(rank: int, world_size: int, store: str, out: str) -> None:
    """One rank of a spawned run: join through a file store, train, rank 0 saves."""
    store = f"file://{store}"
    dist.init_process_group(
        "gloo", init_method=store, rank=rank, world_size=world_size, timeout=HANG
    )
    try:
        result = train_tiny()
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    out = tmp_path / "two.pt"
    args = (2, str(tmp_path / "store"), str(out))
    mp.start_processes(rank_main, args=args, nprocs=2, start_method="fork")  # no re-imports
    two_weights, two_loss, two_targets = torch.load(out)
    one_weights, one_loss, one_targets = train_tiny()
    assert two_weights.keys() == one_weights.keys()
    for name, weight in one_weights.items():
        torch.testing.assert_close(two_weights[name], weight, rtol=1e-5, atol=1e-7)
        assert not torch.equal(weight, SensorMLP().state_dict()[name])  # training moved it
    assert two_loss == pytest.approx(one_loss, rel=1e-5)
    assert two_targets == one_targets  # the present targets of every rank, counted once


class LateOnRank1(SensorMLP):
    """``SensorMLP`` whose training steps take 10 ms longer on rank 1 only."""

    def forward(self, x, tod, dow, sensors=None):
        if self.training and dist.get_rank() == 1:
            time.sleep(0.01)
        return super().forward(x, tod, dow, sensors)


def rank_budget(rank: int, store: str, out: str) -> None:
    """One rank training against a 1.2 s budget with early stopping; each saves its report."""
    store = f"file://{store}"
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=2, timeout=HANG)
    try:
        torch.set_num_threads(1)
        network = LateOnRank1()
        series, scaler = tiny_series(), Scaler(0.0, 1.0)
        options = TrainingOptions(
            max_epochs=10_000, batch_size=7, learning_rate=0.01, time_budget_min=0.02, patience=50
        )
        validation = np.arange(40, 57)
        report = train(
            network, series, TIMES, series, validation, INPUT_LEN, HORIZON, scaler, options
        )
        torch.save((asdict(report), network.state_dict()), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_ranks_stop_together_when_only_one_is_out_of_time(tmp_path):
    out = tmp_path / "report"
    args = (str(tmp_path / "store"), str(out))
    mp.start_processes(rank_budget, args=args, nprocs=2, start_method="fork")
    (first, first_weights), (second, second_weights) = (torch.load(f"{out}.{r}") for r in (0, 1))
    assert first["stopped_by"] == second["stopped_by"] == "time_budget"
    assert first["epochs_run"] == second["epochs_run"]
    assert first["best_epoch"] == second["best_epoch"]
    scores = [[h["validation_score"] for h in report["history"]] for report in (first, second)]
    assert scores[0] == scores[1]
    for name, weight in first_weights.items():
        assert torch.equal(weight, second_weights[name])  # the same steps, the same best epoch


def test_a_single_process_is_rank_0_of_1_and_its_helpers_change_nothing(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_torchrun()
    ranks = distributed.start()
    assert ranks == distributed.Ranks(0, 1) and ranks.is_main and not ranks.is_distributed
    network = nn.Linear(2, 2)
    assert distributed.wrap(network) is network
    batch = torch.arange(7)
    part, stand_in = distributed.own_slice(batch, ranks)
    assert torch.equal(part, batch) and not stand_in
    halves = [distributed.own_slice(batch, distributed.Ranks(r, 2)) for r in (0, 1)]
    assert [(part.tolist(), stand_in) for part, stand_in in halves] == [
        ([0, 1, 2, 3], False),
        ([4, 5, 6], False),
    ]
    part, stand_in = distributed.own_slice(torch.tensor([9]), distributed.Ranks(1, 2))
    assert part.tolist() == [9] and stand_in  # no sample of its own: the first, of no weight
    assert distributed.global_sum(2.5) == 2.5 and distributed.from_main(1.5) == 1.5
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    assert float(distributed.global_count(torch.tensor([1.0, 0.0, 1.0]))) == 2.0
    assert distributed.threads_per_process(2, cores=16) == 8
    assert distributed.threads_per_process(4, cores=2) == 1


CRASH = """
import sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
if dist.get_rank() == 1:
    sys.exit("rank 1: out of memory")
dist.all_reduce(torch.ones(1))  # rank 0 waits for rank 1, which never comes
"""


def test_a_rank_that_fails_ends_the_launch_with_one_line_naming_it(tmp_path, capfd):
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    with pytest.raises(DistributedError, match=r"^rank 1 of 2 failed \(exit code 1\)") as error:
        distributed.launch(2, [str(script)])
    assert "\n" not in str(error.value)
    assert "rank 1: out of memory" in capfd.readouterr().err  # the rank's own message


def test_launch_needs_two_processes_or_more():
    with pytest.raises(DistributedError, match="at least 2"):
        distributed.launch(1, [str(Path(sys.executable))])
