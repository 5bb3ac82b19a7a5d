"""One training loop for every network: AdamW, cosine schedule, clipping, masked loss,
early stopping on a validation score (MAE, or the distributional loss) with the best weights
restored, fixed seeds, time budget.

On a large city a batch of sample times is split into blocks of sensors, one optimiser step
each (networks with ``sensor_subsets``, see ``urbanflow.models.networks``): a step then costs
the same at 1,000 or 20,000 sensors, so training time per target does not grow with the city.
Validation and prediction run in batches whose size shrinks as the sensors grow, and the
validation score is accumulated batch by batch, never held for all samples at once.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from urbanflow.errors import ConfigError
from urbanflow.training import distributed
from urbanflow.training.losses import (
    LOSSES,
    forecast_from_output,
    is_distributional,
    loss_at_mean,
    masked_loss,
)
from urbanflow.training.tensors import Scaler, SeriesTensors


@dataclass(frozen=True)
class TrainingOptions:
    max_epochs: int = 100
    time_budget_min: float | None = None
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    clip_norm: float = 5.0
    patience: int = 15
    loss: str = "mae"
    seed: int = 0
    non_negative: bool = False
    sensors_per_step: int | None = 1024

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ConfigError("max_epochs, batch_size and learning_rate must be positive")
        if self.sensors_per_step is not None and self.sensors_per_step < 1:
            raise ConfigError("sensors_per_step must be a positive number of sensors, or None")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss {self.loss!r} is unknown; choose one of {', '.join(LOSSES)}")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ConfigError("the time budget must be a positive number of minutes")


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    max_epochs: int
    train_loss: float
    validation_score: float
    best_validation_score: float
    seconds: float


@dataclass
class TrainingReport:
    best_epoch: int = 0
    best_validation_score: float = math.inf
    epochs_run: int = 0
    seconds: float = 0.0
    stopped_by: str = "max_epochs"
    targets: int = 0
    processes: int = 1
    history: list[dict[str, float]] = field(default_factory=list)


EpochCallback = Callable[[EpochReport], None]


def choose_device() -> torch.device:
    """CUDA when present; else the CPU with one thread per core (``OMP_NUM_THREADS`` wins)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def dispersion_of(network: nn.Module) -> torch.Tensor | None:
    """The network's ``log_dispersion [n]`` parameter (negative-binomial loss), else None."""
    return getattr(network, "log_dispersion", None)


WINDOWS_PER_PREDICTION = 2**16
"""Most sensor windows a prediction batch holds (samples × sensors): 256 samples up to 256
sensors, fewer on a larger city (65 at 1,000, 3 at 20,000), so that its activations stay near
35 MB per layer (262,144 windows took 1.45 GB of activations at 1,000 sensors)."""


def prediction_batch(num_sensors: int, largest: int = 256) -> int:
    """Samples per prediction batch for ``num_sensors`` sensors: at most ``largest``, and at
    most :data:`WINDOWS_PER_PREDICTION` windows, never below 1."""
    return max(1, min(largest, WINDOWS_PER_PREDICTION // max(num_sensors, 1)))


def forecast_batches(
    network: nn.Module,
    series: SeriesTensors,
    times: np.ndarray,
    input_len: int,
    scaler: Scaler,
    loss: str = "mae",
    non_negative: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(times, forecasts)`` batch by batch (:func:`prediction_batch`): ``[b]`` sample times
    on the series' device and ``[b H n]`` forecasts in the original unit, the fitted mean for a
    distributional ``loss``, never below 0 when ``non_negative``."""
    network.eval()
    device = series.device
    size = prediction_batch(series.num_sensors)
    with torch.no_grad():
        for start in range(0, len(times), size):
            batch = torch.as_tensor(times[start : start + size], device=device)
            raw = scaler.inverse(network(*series.inputs(batch, input_len)))
            forecast = forecast_from_output(raw, loss)
            yield batch, (forecast.clamp_min(0.0) if non_negative else forecast)


def predict_batches(
    network: nn.Module,
    series: SeriesTensors,
    times: np.ndarray,
    input_len: int,
    scaler: Scaler,
    loss: str = "mae",
    non_negative: bool = False,
) -> torch.Tensor:
    """``[b H n]`` forecasts on the CPU in the original unit for samples at ``times`` (see
    :func:`forecast_batches`), written into one preallocated tensor."""
    out: torch.Tensor | None = None
    done = 0
    for batch, forecast in forecast_batches(
        network, series, times, input_len, scaler, loss, non_negative
    ):
        if out is None:
            out = torch.empty((len(times), *forecast.shape[1:]), dtype=torch.float32)
        out[done : done + len(batch)] = forecast.cpu()
        done += len(batch)
    return out if out is not None else torch.empty((0, 0, series.num_sensors))


def validation_criterion(loss: str) -> str:
    """What :func:`validation_score` measures for ``loss``: ``MAE`` or ``<loss> loss``."""
    return f"{loss} loss" if is_distributional(loss) else "MAE"


def validation_score(
    network: nn.Module,
    series: SeriesTensors,
    times: np.ndarray,
    input_len: int,
    horizon: int,
    scaler: Scaler,
    loss: str = "mae",
    non_negative: bool = False,
) -> float:
    """What early stopping minimises on the validation samples: the MAE of the forecasts for
    ``mae`` and ``huber``; for a distributional loss that loss itself at the fitted means (a
    proper score of the mean, where MAE would favour forecasts below it on data with many
    zeros). Accumulated batch by batch over present targets."""
    dispersion = dispersion_of(network)
    if dispersion is not None:
        dispersion = dispersion.detach()
    total, count = 0.0, 0.0
    for batch, forecast in forecast_batches(
        network, series, times, input_len, scaler, loss, non_negative
    ):
        target, mask = series.targets(batch, horizon)
        present = float(mask.sum())
        if is_distributional(loss):
            mean = loss_at_mean(forecast, target, mask, loss, dispersion)
            total += float(mean) * present
        else:
            total += float(((forecast - target).abs() * mask).sum())
        count += present
    return total / max(count, 1.0)


FORESIGHT = 1.25
"""How much longer than the last step and validation pass the next ones are taken to be when
the time budget is checked: a first validation pass, estimated from the step time, ran 6 %
over its estimate at 5,000 sensors and the fit ended 0.35 s past a 60 s budget."""

VALIDATION_WINDOWS = 2**21
"""Most sensor windows (samples × sensors) an early-stopping validation pass scores: about 2
million, 10,000 samples of 207 sensors or 209 of 10,000; a larger city is scored on evenly
spaced validation samples, so a pass costs what it costs on a city of 2,000 sensors."""


def validation_sample(times: np.ndarray, num_sensors: int) -> np.ndarray:
    """``times`` when they hold at most :data:`VALIDATION_WINDOWS` windows, else that many
    windows' worth of evenly spaced ones (first and last kept)."""
    keep = max(1, VALIDATION_WINDOWS // max(num_sensors, 1))
    if len(times) <= keep:
        return times
    return times[np.unique(np.linspace(0, len(times) - 1, keep).round().astype(np.int64))]


def sensor_blocks(
    num_sensors: int, per_step: int | None, generator: torch.Generator
) -> list[torch.Tensor | None]:
    """The sensors of each optimiser step within one batch of sample times: ``[None]`` (every
    sensor, one step) when the city has at most ``per_step`` sensors, else a random split of
    the sensors into ``ceil(n / per_step)`` blocks of near-equal size, each sorted."""
    if per_step is None or num_sensors <= per_step:
        return [None]
    order = torch.randperm(num_sensors, generator=generator)
    return [block.sort().values for block in order.tensor_split(math.ceil(num_sensors / per_step))]


def train(
    network: nn.Module,
    train_series: SeriesTensors,
    train_times: np.ndarray,
    validation_series: SeriesTensors | None,
    validation_times: np.ndarray,
    input_len: int,
    horizon: int,
    scaler: Scaler,
    options: TrainingOptions,
    on_epoch: EpochCallback | None = None,
) -> TrainingReport:
    """Train in place; the weights of the best validation epoch are restored at the end.

    Without validation samples the last epoch's weights are kept. A time budget is checked
    before every optimiser step: when the time left would not cover the next step and a
    validation pass (each as long as the last one), the epoch ends there, is validated like any
    other, and training stops with the best weights so far (``stopped_by = "time_budget"``).
    On a network with ``sensor_subsets`` and a city of more than ``options.sensors_per_step``
    sensors, each batch of sample times takes one step per block of sensors
    (:func:`sensor_blocks`); ``report.targets`` counts the present targets trained on.

    Under torchrun (``urbanflow.training.distributed``) every rank draws the same order and
    trains on its own slice of each global batch of ``options.batch_size`` samples, through
    ``DistributedDataParallel``; the loss is divided by the present targets of the global
    batch, so that the run equals a single process with the same global batch. Every rank
    stops at the same step: rank 0's validation score decides, and the time budget ends the
    epoch on every rank as soon as one rank is out of time.
    """
    generator = seed_everything(options.seed)
    device = train_series.device
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    ranks = distributed.current()
    model = distributed.wrap(network)  # ``network`` itself in a single process
    num_sensors = train_series.num_sensors
    per_step = options.sensors_per_step if getattr(network, "sensor_subsets", False) else None
    blocks_per_batch = len(sensor_blocks(num_sensors, per_step, torch.Generator()))
    steps_per_epoch = math.ceil(len(train_times) / options.batch_size) * blocks_per_batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=options.learning_rate,
        total_steps=options.max_epochs * steps_per_epoch,
        pct_start=min(0.3, 5 / options.max_epochs),
        anneal_strategy="cos",
        div_factor=10.0,
        final_div_factor=100.0,
    )
    validation_times = validation_sample(validation_times, num_sensors)
    # until the first pass is timed, a validation window is taken to cost a third of a
    # training window (forward only): a pass then costs this many steps, each of which trains
    # on one rank's share of a batch while every rank validates every sample
    validation_share = (
        len(validation_times) * blocks_per_batch * ranks.world_size / (3 * options.batch_size)
    )
    report = TrainingReport(processes=ranks.world_size)
    best_state = copy.deepcopy(network.state_dict())
    started = time.perf_counter()
    deadline = None if options.time_budget_min is None else started + options.time_budget_min * 60
    step_seconds = validation_seconds = 0.0  # the latest of each, to foresee the next
    epochs_without_gain = 0
    dispersion = dispersion_of(network)
    for epoch in range(1, options.max_epochs + 1):
        network.train()
        order = torch.as_tensor(train_times)[torch.randperm(len(train_times), generator=generator)]
        total, count = 0.0, 0
        out_of_time = False
        for start in range(0, len(order), options.batch_size):
            global_batch = order[start : start + options.batch_size]
            batch, stand_in = distributed.own_slice(global_batch, ranks)
            batch = batch.to(device)
            target, mask = train_series.targets(batch, horizon)
            if stand_in:  # this rank has no sample in a short last batch: a step of no weight
                mask = torch.zeros_like(mask)
            inputs = train_series.inputs(batch, input_len)
            for sensors in sensor_blocks(num_sensors, per_step, generator):
                now = time.perf_counter()
                if deadline is not None and (epoch > 1 or count):
                    validation = validation_seconds or step_seconds * validation_share
                    late = now + FORESIGHT * (step_seconds + validation) > deadline
                    out_of_time = distributed.any_rank(late)
                    if out_of_time:
                        break
                if sensors is None:
                    raw = scaler.inverse(model(*inputs))
                    block_target, block_mask, block_dispersion = target, mask, dispersion
                else:
                    sensors = sensors.to(device)
                    raw = scaler.inverse(model(*inputs, sensors=sensors))
                    block_target, block_mask = target[..., sensors], mask[..., sensors]
                    block_dispersion = None if dispersion is None else dispersion[sensors]
                present = distributed.global_count(block_mask)
                loss = masked_loss(
                    raw,
                    block_target,
                    block_mask,
                    options.loss,
                    scaler.std,
                    block_dispersion,
                    present,
                )
                optimizer.zero_grad(set_to_none=True)
                # DDP averages gradients over ranks: scaled by their number, they add up
                (loss * ranks.world_size if ranks.is_distributed else loss).backward()
                nn.utils.clip_grad_norm_(network.parameters(), options.clip_norm)
                optimizer.step()
                schedule.step()
                total += loss.item() * len(global_batch)
                count += len(global_batch)
                report.targets += int(present)
                step_seconds = time.perf_counter() - now
            if out_of_time:
                break
        total = distributed.global_sum(total)  # each rank's part of the global batch losses
        if out_of_time and not count:  # the budget ended before this epoch's first batch
            report.stopped_by = "time_budget"
            break
        validation_started = time.perf_counter()
        if validation_series is not None and len(validation_times):
            val = validation_score(
                network,
                validation_series,
                validation_times,
                input_len,
                horizon,
                scaler,
                options.loss,
                options.non_negative,
            )
        else:
            val = math.nan
        val = distributed.from_main(val)  # every rank takes rank 0's early-stopping decision
        validation_seconds = time.perf_counter() - validation_started
        elapsed = time.perf_counter() - started
        improved = not math.isnan(val) and val < report.best_validation_score
        if improved or math.isnan(val):
            report.best_validation_score = val if improved else report.best_validation_score
            report.best_epoch = epoch
            best_state = copy.deepcopy(network.state_dict())
            epochs_without_gain = 0
        else:
            epochs_without_gain += 1
        report.epochs_run = epoch
        report.history.append(
            {
                "epoch": epoch,
                "train_loss": total / max(count, 1),
                "validation_score": val,
                "seconds": elapsed,
            }
        )
        if on_epoch and ranks.is_main:
            on_epoch(
                EpochReport(
                    epoch,
                    options.max_epochs,
                    total / max(count, 1),
                    val,
                    report.best_validation_score,
                    elapsed,
                )
            )
        if epochs_without_gain >= options.patience:
            report.stopped_by = "early_stopping"
            break
        if out_of_time:
            report.stopped_by = "time_budget"
            break
    network.load_state_dict(best_state)
    report.seconds = time.perf_counter() - started
    return report
