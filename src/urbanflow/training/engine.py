"""One training loop for every network: AdamW, cosine schedule, clipping, masked loss,
early stopping on a validation score (MAE, or the distributional loss) with the best weights
restored, fixed seeds, time budget."""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from urbanflow.errors import ConfigError
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

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ConfigError("max_epochs, batch_size and learning_rate must be positive")
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


def predict_batches(
    network: nn.Module,
    series: SeriesTensors,
    times: np.ndarray,
    input_len: int,
    scaler: Scaler,
    batch_size: int = 256,
    loss: str = "mae",
    non_negative: bool = False,
) -> torch.Tensor:
    """``[b H n]`` forecasts in the original unit for samples at ``times``: the fitted mean for
    a distributional ``loss``, never below 0 when ``non_negative``."""
    network.eval()
    device = series.values.device
    out = []
    with torch.no_grad():
        for start in range(0, len(times), batch_size):
            batch = torch.as_tensor(times[start : start + batch_size], device=device)
            raw = scaler.inverse(network(*series.inputs(batch, input_len)))
            forecast = forecast_from_output(raw, loss)
            out.append((forecast.clamp_min(0.0) if non_negative else forecast).cpu())
    return torch.cat(out)


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
    zeros)."""
    forecast = predict_batches(
        network, series, times, input_len, scaler, loss=loss, non_negative=non_negative
    )
    target, mask = series.targets(torch.as_tensor(times, device=series.values.device), horizon)
    target, mask = target.cpu(), mask.cpu()
    if is_distributional(loss):
        dispersion = dispersion_of(network)
        return float(
            loss_at_mean(
                forecast,
                target,
                mask,
                loss,
                None if dispersion is None else dispersion.detach().cpu(),
            )
        )
    return float(((forecast - target).abs() * mask).sum() / mask.sum().clamp_min(1.0))


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
    before every batch: when the time left would not cover the next batch and a validation
    pass (each as long as the last one), the epoch ends there, is validated like any other, and
    training stops with the best weights so far (``stopped_by = "time_budget"``).
    """
    generator = seed_everything(options.seed)
    device = train_series.values.device
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_times) / options.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=options.learning_rate,
        total_steps=options.max_epochs * steps_per_epoch,
        pct_start=min(0.3, 5 / options.max_epochs),
        anneal_strategy="cos",
        div_factor=10.0,
        final_div_factor=100.0,
    )
    report = TrainingReport()
    best_state = copy.deepcopy(network.state_dict())
    started = time.perf_counter()
    deadline = None if options.time_budget_min is None else started + options.time_budget_min * 60
    batch_seconds = validation_seconds = 0.0  # the latest of each, to foresee the next
    epochs_without_gain = 0
    for epoch in range(1, options.max_epochs + 1):
        network.train()
        order = torch.as_tensor(train_times)[torch.randperm(len(train_times), generator=generator)]
        total, count = 0.0, 0
        out_of_time = False
        for start in range(0, len(order), options.batch_size):
            now = time.perf_counter()
            if (
                deadline is not None
                and (epoch > 1 or count)
                and (now + batch_seconds + validation_seconds > deadline)
            ):
                out_of_time = True
                break
            batch = order[start : start + options.batch_size].to(device)
            target, mask = train_series.targets(batch, horizon)
            raw = scaler.inverse(network(*train_series.inputs(batch, input_len)))
            loss = masked_loss(raw, target, mask, options.loss, scaler.std, dispersion_of(network))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), options.clip_norm)
            optimizer.step()
            schedule.step()
            total += loss.item() * batch.numel()
            count += batch.numel()
            batch_seconds = time.perf_counter() - now
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
        if on_epoch:
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
