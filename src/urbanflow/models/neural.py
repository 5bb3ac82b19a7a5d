"""NeuralForecaster: any network of the table, trained by the engine, behind the contract."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from urbanflow.data.calendar import weekdays_usable
from urbanflow.data.dataset import CityDataset
from urbanflow.data.windows import hold_out, sample_times
from urbanflow.errors import ConfigError
from urbanflow.models.base import FitProgress, Forecaster
from urbanflow.models.networks import (
    NetworkSpec,
    build_network,
    check_dense_memory,
    parameter_count,
)
from urbanflow.training import distributed
from urbanflow.training.engine import (
    EpochReport,
    TrainingOptions,
    TrainingReport,
    choose_device,
    predict_batches,
    train,
    validation_criterion,
)
from urbanflow.training.losses import LOSSES, is_distributional
from urbanflow.training.tensors import Scaler, SeriesTensors

DEFAULT_LOSSES = {"level": "mae", "count": "poisson", "occupancy": "mae"}
"""The loss a network trains with when none is given, by the data's kind (docs/models.md)."""


class Ensemble(nn.Module):
    """Networks whose ``[b H n]`` forecasts are averaged.

    Parameters
    ----------
    members
        Networks built for the same ``NetworkSpec`` (one or more), each called as
        ``network(x, tod, dow)``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """``[b H n]`` mean of the members' z-scored forecasts.

        Parameters
        ----------
        x, tod, dow
            ``[b L n c]``, ``[b L]``, ``[b L]``: the inputs every network takes
            (``urbanflow.models.networks``). Passed unchanged to every member network.
        """
        return torch.stack([member(x, tod, dow) for member in self.members]).mean(dim=0)


class NeuralForecaster(Forecaster):
    """A network trained with a masked loss, early-stopped on a validation score.

    Training (``urbanflow.training.engine``): AdamW with a one-cycle cosine schedule, gradient
    clipping, a loss over present targets only, and the weights of the best validation epoch
    restored at the end. Without a validation part the last 10 % of the training samples are
    held out (with a gap of ``horizon`` steps) for early stopping.

    Parameters
    ----------
    input_len
        ``L``, input steps per sample (default 12).
    horizon
        ``H``, steps forecast ahead (default 12).
    network
        Name of the network in ``urbanflow.models.networks.NETWORKS`` (default ``"stid"``):
        ``stid``, ``staeformer``, ``gwnet``, ``agcrn``, ``stgcn`` or ``tgcn``.
    network_options
        That network's keyword hyperparameters (see its class); ``None`` (default): its
        defaults. An option it does not take is a ConfigError.
    max_epochs
        Most passes over the training samples (default 100); also the length of the
        learning-rate schedule.
    time_budget_min
        Wall-clock limit of the whole fit in minutes, building the training tensors
        included. The networks train one after the other, each with what is left of the
        budget; another network starts only while the time left is at least what the first
        one took, so a tight budget trains fewer networks to convergence rather than several
        half-trained ones (``ensemble`` then records how many were trained). The budget is
        checked between batches (``training.engine.train``).
        ``None`` (default): no limit.
    batch_size
        Samples per optimiser step (default 32).
    learning_rate
        Peak learning rate of the one-cycle schedule (default 2e-3).
    weight_decay
        AdamW decoupled weight decay (default 1e-4).
    patience
        Epochs without a better validation MAE before training stops early (default 15).
    loss
        Training loss over present targets (``urbanflow.training.losses``): ``mae``,
        ``huber``, ``poisson``, ``negative-binomial`` or ``tweedie``. ``None`` (default): by
        the data's kind (:data:`DEFAULT_LOSSES`): ``mae`` for levels and occupancies,
        ``poisson`` for counts, whose forecast is then the Poisson mean.
    seed
        Seed of weight initialisation and sample order (default 0); network ``m`` of the
        ensemble uses ``seed·ensemble + m``, so different seeds never share a network.
    ensemble
        Number of networks trained (≥ 1, default 1) whose forecasts are averaged.
    """

    name: ClassVar[str] = "neural"
    requires_graph: ClassVar[bool] = True

    def __init__(
        self,
        input_len: int = 12,
        horizon: int = 12,
        network: str = "stid",
        network_options: Mapping[str, object] | None = None,
        max_epochs: int = 100,
        time_budget_min: float | None = None,
        batch_size: int = 32,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        patience: int = 15,
        loss: str | None = None,
        seed: int = 0,
        ensemble: int = 1,
    ) -> None:
        super().__init__(input_len, horizon)
        self.network = network
        self.network_options = dict(network_options or {})
        self.max_epochs = max_epochs
        self.time_budget_min = time_budget_min
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.loss = loss
        self.seed = seed
        self.ensemble = ensemble

    def training_options(
        self, member: int = 0, minutes_left: float | None = None
    ) -> TrainingOptions:
        """The engine's options for one network of the ensemble.

        Parameters
        ----------
        member
            Index of the network in the ensemble, ``0 … ensemble-1`` (default 0); it sets the
            seed.
        minutes_left
            What is left of ``time_budget_min`` for this network (the budget is the whole
            ensemble's); None (default): no limit.
        """
        return TrainingOptions(
            max_epochs=self.max_epochs,
            time_budget_min=minutes_left,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            patience=self.patience,
            loss=self.loss_,
            seed=self.member_seed(member),
            non_negative=self.non_negative_,
        )

    def member_seed(self, member: int) -> int:
        """Seeds ``seed·ensemble + member``: two seeds of an ensemble share no network.

        Parameters
        ----------
        member
            Index of the network in the ensemble, ``0 … ensemble-1``.
        """
        return self.seed * self.ensemble + member

    def build(
        self,
        spec: NetworkSpec,
        scaler: Scaler,
        device: torch.device,
        loss: str = "mae",
        non_negative: bool = False,
    ) -> None:
        """Create the (untrained) networks for ``spec``: used by fit and by bundle loading.

        Parameters
        ----------
        spec
            Shapes and graph the networks are built for.
        scaler
            Z-score of the target channel (training mean and std), kept as ``scaler_``.
        device
            Torch device the networks are moved to (``choose_device()``: CUDA when present).
        loss
            The training loss (resolved, never None), kept as ``loss_``; the
            negative-binomial loss gives each network a ``log_dispersion [n]`` parameter.
        non_negative
            Whether forecasts are floored at 0 (counts and occupancies), kept as
            ``non_negative_``.
        """
        if loss not in LOSSES:
            raise ConfigError(f"loss {loss!r} is unknown; choose one of {', '.join(LOSSES)}")
        if self.ensemble < 1:
            raise ConfigError(f"ensemble must be at least 1, got {self.ensemble}")
        self.spec_ = spec
        self.scaler_ = scaler
        self.device_ = device
        self.loss_ = loss
        self.non_negative_ = non_negative
        members = []
        for member in range(self.ensemble):
            torch.manual_seed(self.member_seed(member))
            network = build_network(self.network, spec, self.network_options)
            if loss == "negative-binomial":
                network.log_dispersion = nn.Parameter(torch.zeros(spec.num_sensors))
            members.append(network)
        self.network_ = Ensemble(members).to(device)

    def network_spec(self, dataset: CityDataset) -> NetworkSpec:
        """The shapes, graph and weekday rule the networks are built for to fit ``dataset``.

        Parameters
        ----------
        dataset
            The training readings (their sensors, graph, grid and calendar).
        """
        return NetworkSpec(
            num_sensors=dataset.num_sensors,
            input_len=self.input_len,
            horizon=self.horizon,
            steps_per_day=dataset.steps_per_day,
            graph=dataset.graph,
            weekdays=weekdays_usable(dataset.timestamps),
        )

    def parameter_count(self) -> int:
        return parameter_count(self.network_) if hasattr(self, "network_") else 0

    def _fit(
        self, dataset: CityDataset, validation: CityDataset | None, progress: FitProgress | None
    ) -> None:
        started = time.perf_counter()  # the budget also pays for building the tensors
        device = choose_device()
        spec = self.network_spec(dataset)
        check_dense_memory(self.network, spec, self.network_options, self.batch_size)
        loss = self.loss or DEFAULT_LOSSES[dataset.kind]
        if is_distributional(loss) and not dataset.non_negative:
            raise ConfigError(
                f"the {loss} loss fits counts, but {dataset.metadata.name} holds {dataset.kind} "
                "readings (negative values are possible); use mae or huber, or declare "
                'kind = "count" in dataset.toml'
            )
        self.build(spec, Scaler.fit(dataset.readings[..., 0]), device, loss, dataset.non_negative)
        train_series = self.series(dataset)
        train_times = sample_times(dataset.num_steps, self.input_len, self.horizon)
        if validation is not None:
            validation_series = self.series(validation)
            validation_times = sample_times(validation.num_steps, self.input_len, self.horizon)
        else:  # hold out the last samples, with a gap of H so no target is shared
            train_times, validation_times = hold_out(train_times, self.horizon)
            validation_series = train_series

        criterion = validation_criterion(self.loss_)
        self.training_reports_: list[TrainingReport] = []
        for member, network in enumerate(self.network_.members):
            minutes_left = None
            if self.time_budget_min is not None:
                minutes_left = self.time_budget_min - (time.perf_counter() - started) / 60
                first = self.training_reports_[0].seconds / 60 if member else 0.0
                # no time for a network as good as the first (on any rank: all stop together)
                if member and distributed.any_rank(minutes_left < first):
                    self._keep_members(member)
                    break
                # spent on the tensors already: the first network still takes one step
                minutes_left = max(minutes_left, 1e-9)
            label = f"network {member + 1}/{self.ensemble} · " if self.ensemble > 1 else ""

            def on_epoch(report: EpochReport, label: str = label) -> None:
                if progress:
                    progress(
                        report.epoch,
                        report.max_epochs,
                        f"{label}loss {report.train_loss:.4f} · val {criterion} "
                        f"{report.validation_score:.3f} (best {report.best_validation_score:.3f})",
                    )

            self.training_reports_.append(
                train(
                    network,
                    train_series,
                    train_times,
                    validation_series,
                    validation_times,
                    self.input_len,
                    self.horizon,
                    self.scaler_,
                    self.training_options(member, minutes_left),
                    on_epoch,
                )
            )
        self.training_report_ = self.training_reports_[0]

    def forecast_distribution(self) -> tuple[str, np.ndarray | None]:
        if not is_distributional(self.loss_):
            return "none", None
        if self.loss_ != "negative-binomial":
            return self.loss_, None
        alphas = [
            member.log_dispersion.detach().exp().cpu().numpy() for member in self.network_.members
        ]
        return self.loss_, np.mean(alphas, axis=0).astype(np.float64)

    def _keep_members(self, count: int) -> None:
        """Keep the first ``count`` networks: a time budget ended the ensemble early (the
        bundle then records ``ensemble = count``)."""
        self.network_.members = self.network_.members[:count]
        self.ensemble = count

    def _predict(self, dataset: CityDataset, times: np.ndarray) -> np.ndarray:
        if times.size == 0:
            return np.zeros((0, self.horizon, dataset.num_sensors), dtype=np.float32)
        series, rows = self.input_series(dataset, times)
        forecasts = [  # each member's own forecast (its mean), then their average
            predict_batches(
                member,
                series,
                rows,
                self.input_len,
                self.scaler_,
                loss=self.loss_,
                non_negative=self.non_negative_,
            )
            for member in self.network_.members
        ]
        return torch.stack(forecasts).mean(dim=0).numpy()

    def series(self, dataset: CityDataset) -> SeriesTensors:
        """``dataset`` as tensors on the model's device, with its scaler and weekday rule.

        Parameters
        ----------
        dataset
            Readings of the sensors the model was built for.
        """
        return SeriesTensors.build(
            dataset, self.scaler_, self.horizon, self.device_, self.spec_.weekdays
        )

    def input_series(
        self, dataset: CityDataset, times: np.ndarray
    ) -> tuple[SeriesTensors, np.ndarray]:
        """``(series, rows)``: only the input windows of the samples at ``times`` as tensors,
        and each sample as a row of them (:meth:`SeriesTensors.for_inputs`), so that a
        forecast costs the same on a week of readings as on five years.

        Parameters
        ----------
        dataset
            Readings of the sensors the model was built for.
        times
            ``[b]`` int sample times: inputs ``t - input_len … t - 1``.
        """
        return SeriesTensors.for_inputs(
            dataset,
            times,
            self.input_len,
            self.scaler_,
            self.horizon,
            self.device_,
            self.spec_.weekdays,
        )
