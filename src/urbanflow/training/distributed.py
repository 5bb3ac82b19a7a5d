"""Data-parallel training over several processes, on one machine or many, through torchrun.

``torch.distributed.run`` (torchrun) starts one process per rank and gives each its place in
the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
A process that finds them joins the process group (gloo on the CPU, NCCL with CUDA); one that
does not runs alone, exactly as a single-process run. Every rank draws the same shuffled
order and takes its own slice of each global batch; the network is wrapped in
``DistributedDataParallel``, which averages gradients over ranks. Decisions that end training
(early stopping, the time budget) are agreed through :func:`from_main` and :func:`any_rank`,
and only the main rank (0) writes files and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from urbanflow.errors import DistributedError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one run.

    Parameters
    ----------
    rank
        0 to ``world_size - 1``; rank 0 is the main process.
    world_size
        Number of processes training together (1: a single-process run).
    """

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether torchrun's variables are in the environment."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def current() -> Ranks:
    """The ranks of the joined process group, else a single process (rank 0 of 1)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def start() -> Ranks:
    """Join torchrun's process group when launched by it, else stay a single process.

    The backend is NCCL when CUDA is present (each rank on GPU ``LOCAL_RANK``), else gloo.
    Calling it again, once joined, returns the same ranks.
    """
    if current().is_distributed or not launched_by_torchrun():
        return current()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return current()


def stop() -> None:
    """Leave the process group, if joined (every rank calls it at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Whether this process writes files and prints: rank 0, or a single process."""
    return current().is_main


def wrap(network: nn.Module) -> nn.Module:
    """``network`` inside ``DistributedDataParallel`` when several processes train, else itself.

    Its parameters and dense buffers (e.g. batch-norm statistics) are broadcast from rank 0;
    sparse buffers, which DDP cannot broadcast, are left out: they hold the sensor graph,
    built alike on every rank and never trained.

    Parameters
    ----------
    network
        The network to train.
    """
    if not current().is_distributed:
        return network
    sparse = [name for name, buffer in network.named_buffers() if buffer.layout != torch.strided]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(network, sparse)
    device = next(network.parameters()).device
    return DistributedDataParallel(network, device_ids=[device] if device.type == "cuda" else None)


def own_slice(batch: torch.Tensor, ranks: Ranks) -> tuple[torch.Tensor, bool]:
    """This rank's part of a global batch (contiguous, near-equal parts in rank order), and
    whether it is a stand-in: a rank left without samples (a last batch smaller than the
    ranks) gets the batch's first sample, to be given no weight, so that it still takes a step
    and its part in the gradients' all-reduce (networks cannot take empty batches).

    Parameters
    ----------
    batch
        ``[b ...]`` the global batch, the same on every rank (``b >= 1``).
    ranks
        This process's place (:func:`current`).
    """
    part = batch.tensor_split(ranks.world_size)[ranks.rank]
    return (batch[:1], True) if len(part) == 0 else (part, False)


def _device() -> torch.device:
    """Where collectives run: CUDA for NCCL, else the CPU."""
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


def global_sum(value: float) -> float:
    """``value`` summed over every rank (itself in a single process).

    Parameters
    ----------
    value
        This rank's part.
    """
    if not current().is_distributed:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total.item())


def global_count(mask: torch.Tensor) -> torch.Tensor:
    """The number of present targets in the global batch: ``mask.sum()`` over every rank.

    Parameters
    ----------
    mask
        ``[...]`` this rank's presence mask (1 present, 0 missing).
    """
    count = mask.sum()
    if current().is_distributed:
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
    return count


def from_main(value: float) -> float:
    """Rank 0's ``value`` on every rank, so that every rank takes the same decision.

    Parameters
    ----------
    value
        This rank's value; only rank 0's is kept.
    """
    if not current().is_distributed:
        return value
    shared = torch.tensor([value], dtype=torch.float64, device=_device())
    dist.broadcast(shared, src=0)
    return float(shared.item())


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on at least one rank (e.g. one rank is out of time).

    Parameters
    ----------
    flag
        This rank's answer.
    """
    if not current().is_distributed:
        return flag
    shared = torch.tensor([float(flag)], device=_device())
    dist.all_reduce(shared, op=dist.ReduceOp.MAX)
    return bool(shared.item() > 0)


def threads_per_process(nproc: int, cores: int | None = None) -> int:
    """CPU threads each of ``nproc`` processes on one machine gets: cores ÷ nproc, at least 1.

    Parameters
    ----------
    nproc
        Processes on this machine.
    cores
        The machine's cores (default: ``os.cpu_count()``).
    """
    return max(1, (cores or os.cpu_count() or 1) // nproc)


def launch(nproc: int, command: list[str]) -> None:
    """Run ``python COMMAND`` (e.g. ``-m urbanflow train ...``) as ``nproc`` ranks on this
    machine through torchrun (``torch.distributed.run --standalone``), each with
    :func:`threads_per_process` threads.

    Returns when every rank has ended well; when one fails, torchrun ends the others and a
    :class:`DistributedError` names the first rank that failed and its exit code.

    Parameters
    ----------
    nproc
        Processes to start (at least 2).
    command
        What each rank runs after ``python``: ``-m MODULE ARGS...`` or ``SCRIPT ARGS...``.
    """
    if nproc < 2:
        raise DistributedError(f"--nproc must be at least 2 to launch processes, got {nproc}")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    threads = threads_per_process(nproc)
    torchrun_args = [
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        *command,
    ]
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # torchrun passes it to every rank
    try:
        run(get_args_parser().parse_args(torchrun_args))
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        raise DistributedError(
            f"rank {rank} of {nproc} failed (exit code {failure.exitcode}) and torchrun ended "
            "the other ranks; the run wrote nothing (the rank's own message is above)"
        ) from None
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
