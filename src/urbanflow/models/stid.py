"""STID: an MLP over each sensor's input window plus learned spatial and calendar identities.

Shao, Zhang, Wang, Wei and Xu, "Spatial-Temporal Identity: A Simple yet Effective Baseline for
Multivariate Time Series Forecasting", CIKM 2022.

Each sensor's window (reading and mask channels, flattened) is embedded by one linear map and
concatenated with three learned identities: the sensor's own vector, the time-of-day slot and
the weekday of the last input step. Residual two-layer MLPs transform the concatenation and a
linear head reads the ``H`` forecasts from it. Sensors never exchange information directly;
the identities let the shared MLP specialise per place and per calendar position.

Shapes: ``x: [b L n c]``, ``tod, dow: [b L]`` -> window ``[b n (L c)]`` -> hidden ``[b n h]``
with ``h = embed_dim + node_dim + tod_dim + dow_dim`` -> forecasts ``[b H n]``.

Memory is O(n): the node table is ``[n node_dim]`` and activations ``[b n h]``; there is no
adjacency. The node table ties a trained network to the sensor set it was built for.

Sensors are forecast independently given their (and, with ``neighbours``, their neighbours')
windows, so STID can forecast any subset of the sensors (``sensors=``): training on a large
city then takes steps over blocks of sensors whose cost does not grow with the city
(``urbanflow.training.engine``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from urbanflow.graph.matrices import transition_matrices
from urbanflow.graph.operators import mix_sensor_rows, mix_sensors, to_torch_sparse
from urbanflow.models.networks import NetworkSpec


class ResidualMLP(nn.Module):
    """``[... h] -> [... h]``: ``x + W2 dropout(relu(W1 x))``.

    Parameters
    ----------
    hidden
        ``h``, width of the input, the inner layer and the output.
    dropout
        Dropout probability after the inner ReLU.
    """

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[... h]``: ``x`` plus the two-layer MLP of ``x``.

        Parameters
        ----------
        x
            ``[... h]`` features, any leading shape.
        """
        return x + self.body(x)


class STID(nn.Module):
    """Spatial-temporal identity MLP; see the module docstring.

    Parameters
    ----------
    spec
        Sensors, window length, horizon and slots per day; the graph only with ``neighbours``.
    embed_dim
        Width of the linear embedding of each sensor's input window (default 32).
    node_dim
        Width of the learned per-sensor (spatial identity) vector (default 32).
    tod_dim
        Width of the time-of-day embedding over ``spec.steps_per_day`` slots (default 32).
    dow_dim
        Width of the day-of-week embedding over 7 days (default 32); 0 leaves it out. It is
        left out too when ``spec.weekdays`` is False (the training part does not hold every
        weekday twice, so some weekday's embedding would stay at its random start).
    num_layers
        Residual MLP layers (default 3).
    dropout
        Dropout inside each MLP layer (default 0.15).
    neighbours
        Also embed the window averaged over each sensor's graph neighbours (one hop of the
        row-normalised adjacency, sparse) (default False); an urbanflow addition to the paper's
        model that lets a sensor see upstream and downstream readings.
    highway
        Add a linear map from the window straight to the forecasts beside the MLP (default
        False; an urbanflow addition): short horizons, which depend mostly on the latest
        readings, get an easy linear path.
    """

    sensor_subsets: ClassVar[bool] = True  # forward(..., sensors=) forecasts those only

    def __init__(
        self,
        spec: NetworkSpec,
        embed_dim: int = 32,
        node_dim: int = 32,
        tod_dim: int = 32,
        dow_dim: int = 32,
        num_layers: int = 3,
        dropout: float = 0.15,
        neighbours: bool = False,
        highway: bool = False,
    ) -> None:
        super().__init__()
        self.horizon = spec.horizon
        self.neighbours = neighbours
        width = spec.input_len * spec.in_channels * (2 if neighbours else 1)
        self.window = nn.Linear(width, embed_dim)
        if neighbours:
            forward_walk = to_torch_sparse(transition_matrices(spec.require_graph())[0])
            self.register_buffer("walk", forward_walk, persistent=False)
        self.node = nn.Parameter(torch.empty(spec.num_sensors, node_dim))
        self.tod = nn.Embedding(spec.steps_per_day, tod_dim)
        dow_dim = dow_dim if spec.weekdays else 0
        self.dow = nn.Embedding(7, dow_dim) if dow_dim > 0 else None
        hidden = embed_dim + node_dim + tod_dim + dow_dim
        self.encoder = nn.Sequential(*(ResidualMLP(hidden, dropout) for _ in range(num_layers)))
        self.head = nn.Linear(hidden, spec.horizon)
        self.highway = nn.Linear(width, spec.horizon) if highway else None
        for table in (self.node, self.tod.weight, *([self.dow.weight] if self.dow else [])):
            nn.init.xavier_uniform_(table)

    def forward(
        self,
        x: torch.Tensor,
        tod: torch.Tensor,
        dow: torch.Tensor,
        sensors: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """STID: ``[b H n]`` z-scored forecasts of a batch of windows (``[b H s]`` for
        ``s`` chosen sensors).

        Parameters
        ----------
        x, tod, dow
            STID reads each sensor's whole ``[b L n c]`` window and the ``[b L]`` calendar
            of the last step (inputs as in ``urbanflow.models.networks``); ``x`` always holds
            every sensor, since a sensor's neighbours may lie outside ``sensors``.
        sensors
            ``[s]`` int64 indices of the sensors to forecast, in the order returned; None
            (default): all ``n``.
        """
        batch = x.shape[0]
        own = x if sensors is None else x[:, :, sensors]  # [b L s c]
        window = own.permute(0, 2, 1, 3).reshape(batch, own.shape[2], -1)  # [b s (L c)]
        if self.neighbours and sensors is None:
            window = torch.cat([window, mix_sensors(self.walk, window, dim=1)], dim=-1)
        elif self.neighbours:  # only the block's rows of the walk, and the sensors they reach
            mixed = mix_sensor_rows(self.walk, x, sensors, dim=2)
            window = torch.cat([window, mixed.permute(0, 2, 1, 3).reshape_as(window)], dim=-1)
        node = self.node if sensors is None else self.node[sensors]
        count = window.shape[1]
        parts = [
            self.window(window),
            node.expand(batch, -1, -1),
            self.tod(tod[:, -1]).unsqueeze(1).expand(-1, count, -1),
        ]
        if self.dow is not None:
            parts.append(self.dow(dow[:, -1]).unsqueeze(1).expand(-1, count, -1))
        hidden = self.encoder(torch.cat(parts, dim=-1))  # [b n h]
        forecast = self.head(hidden)  # [b n H]
        if self.highway is not None:
            forecast = forecast + self.highway(window)
        return forecast.transpose(1, 2)  # [b H n]
