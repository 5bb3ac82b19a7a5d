"""T-GCN: a GRU whose gates are graph convolutions.

Zhao, Song, Zhang, Liu, Wang, Lin, Deng and Li, "T-GCN: A Temporal Graph Convolutional
Network for Traffic Prediction", IEEE T-ITS 2019. At every input step the GRU's gates and
candidate state are graph convolutions of the input and the state, with
``Â = D^-1/2 (A + I) D^-1/2`` the renormalised adjacency of the symmetric graph:

    g(z) = [Â z, z]                       (self_weights=True, the default)
    g(z) = Â z                            (self_weights=False: the authors' cell)
    r, u = σ(g([x_t, h]) W_g + b_g)
    c    = tanh(g([x_t, r ⊙ h]) W_c + b_c)
    h    = u ⊙ h + (1 - u) ⊙ c

after the ``L`` steps a linear map takes each sensor's hidden state to its ``H`` forecasts.
Weights start Xavier-uniform as in the authors' code. ``self_weights=False`` is their cell
exactly (gate biases start at 1, as there). The default adds a weight for each sensor's own
features beside the ``Â``-mixed ones (gate biases start at 0): with ``Â`` alone a sensor
sees its own history only averaged with its neighbours', and undoing that average takes
large weights that training reaches slowly (urbanflow's one-batch contract test fails).

Shapes: ``x: [b L n c]``, ``tod, dow: [b L]`` → ``[b H n]``. The per-step input ``x_t: [b n f]``
is the value and the mask (the paper uses the value alone); ``calendar=True`` adds
``tod/steps_per_day`` and ``dow/7`` broadcast over sensors (off by default, as in the paper).

Memory: ``Â`` is a sparse ``[n n]`` tensor, O(|E|); activations kept for the backward pass are
O(b·L·n·C) with ``C = hidden``.
"""

from __future__ import annotations

import torch
from torch import nn

from urbanflow.errors import ConfigError
from urbanflow.graph.matrices import gcn_normalised
from urbanflow.graph.operators import mix_sensors, to_torch_sparse
from urbanflow.models.networks import NetworkSpec

CALENDAR_CHANNELS = 2  # tod/steps_per_day, dow/7


class TGCNCell(nn.Module):
    """One GRU step: ``g(x_t) [b n F]`` (mixed beforehand) and ``h [b n C]`` → new ``h``.

    Parameters
    ----------
    features
        ``F``, width of the mixed input ``g(x_t)`` (doubled by the caller when ``self_weights``).
    hidden
        ``C``, GRU state width.
    self_weights
        Concatenate each sensor's own state beside its ``Â``-mixed state, ``g(z) = [Â z, z]``;
        ``False``: ``Â z`` alone, the authors' cell (gate biases start at 1).
    """

    def __init__(self, features: int, hidden: int, self_weights: bool) -> None:
        super().__init__()
        self.self_weights = self_weights
        width = (2 if self_weights else 1) * hidden + features
        self.gates = nn.Linear(width, 2 * hidden)
        self.candidate = nn.Linear(width, hidden)
        for layer in (self.gates, self.candidate):
            nn.init.xavier_uniform_(layer.weight)
        nn.init.constant_(self.gates.bias, 0.0 if self_weights else 1.0)
        nn.init.zeros_(self.candidate.bias)

    def conv(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """``g(h)``: ``[b n C] -> [b n 2C]`` (``[Â h, h]``) with self weights, else ``[b n C]``
        (``Â h``).

        Parameters
        ----------
        h
            ``[b n C]`` state (or reset-gated state).
        adjacency
            ``[n n]`` sparse renormalised adjacency ``Â``.
        """
        mixed = mix_sensors(adjacency, h, dim=1)
        return torch.cat([mixed, h], dim=-1) if self.self_weights else mixed

    def forward(self, gx: torch.Tensor, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """The next state ``[b n C]``.

        Parameters
        ----------
        gx
            ``[b n F]`` graph-convolved input of this step, ``g(x_t)``.
        h
            ``[b n C]`` previous state.
        adjacency
            ``[n n]`` sparse renormalised adjacency ``Â``.
        """
        gates = torch.sigmoid(self.gates(torch.cat([gx, self.conv(h, adjacency)], dim=-1)))
        r, u = gates.chunk(2, dim=-1)
        c = torch.tanh(self.candidate(torch.cat([gx, self.conv(r * h, adjacency)], dim=-1)))
        return u * h + (1.0 - u) * c


class TGCN(nn.Module):
    """Graph-convolutional GRU over the input window, linear head; see the module docstring.

    Parameters
    ----------
    spec
        Sensors, window length, horizon, slots per day and the graph (made symmetric and
        renormalised into ``Â``).
    hidden
        ``C``, GRU state width (default 64, the paper's).
    calendar
        Add ``tod/steps_per_day`` and ``dow/7`` as input channels (default False, as in the paper).
    self_weights
        Give each sensor's own features a weight beside the ``Â``-mixed ones (default True);
        ``False`` is the authors' cell exactly.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        hidden: int = 64,
        calendar: bool = False,
        self_weights: bool = True,
    ) -> None:
        super().__init__()
        if hidden < 1:
            raise ConfigError(f"tgcn needs hidden ≥ 1, got {hidden}; the paper uses 64")
        self.hidden = hidden
        self.calendar = calendar
        self.self_weights = self_weights
        self.steps_per_day = spec.steps_per_day
        self.register_buffer(
            "adjacency", to_torch_sparse(gcn_normalised(spec.require_graph())), persistent=False
        )
        features = spec.in_channels + (CALENDAR_CHANNELS if calendar else 0)
        self.cell = TGCNCell((2 if self_weights else 1) * features, hidden, self_weights)
        self.head = nn.Linear(hidden, spec.horizon)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """T-GCN: ``[b H n]`` z-scored forecasts of a batch of windows.

        Parameters
        ----------
        x, tod, dow
            T-GCN runs its recurrent cell over the ``[b L n c]`` readings and mask;
            ``tod`` and ``dow`` are unused (``urbanflow.models.networks`` has the shapes).
        """
        b, steps, n, _ = x.shape
        if self.calendar:
            calendar = torch.stack([tod.float() / self.steps_per_day, dow.float() / 7.0], dim=-1)
            x = torch.cat([x, calendar[:, :, None, :].expand(b, steps, n, 2)], dim=-1)
        # g(x_t) does not depend on the state: mix every step in one sparse product.
        by_sensor = x.permute(0, 2, 1, 3)  # [b n L f]
        features = x.shape[-1]
        mixed = mix_sensors(self.adjacency, by_sensor.reshape(b, n, steps * features), dim=1)
        gx = mixed.reshape(b, n, steps, features)
        if self.self_weights:
            gx = torch.cat([gx, by_sensor], dim=-1)
        h = x.new_zeros(b, n, self.hidden)
        for t in range(steps):
            h = self.cell(gx[:, :, t], h, self.adjacency)
        return self.head(h).transpose(1, 2)  # [b n H] -> [b H n]
