"""AGCRN: GRU cells whose graph convolutions use a learned adjacency and per-sensor weights.

Bai, Yao, Li, Wang and Wang, "Adaptive Graph Convolutional Recurrent Network for Traffic
Forecasting", NeurIPS 2020.

Each sensor has a learned embedding ``E: [n d]``. The adjacency is inferred from it, not
given: ``A = softmax(relu(E Eᵀ))`` (row softmax), and the graph convolution is a Chebyshev
polynomial of ``A`` with ``cheb_k`` terms ``[x, A x, (2A² - I) x, …]``. Node-adaptive parameter
learning generates every sensor's weights from its embedding, ``W_i = E_i · pool`` with a
shared pool ``[d (k f) o]``, so sensors get their own filters at the cost of ``d`` times the
parameters of one filter. These graph convolutions replace the matrix products of a GRU
cell; ``layers`` such GRUs are stacked and a linear map reads the ``H`` forecasts from the
last hidden state of the top layer.

The input half of each graph convolution (the terms of ``x``) does not depend on the state,
so it is computed for the whole window at once; only the state half runs step by step. This
is the same map as convolving the concatenation ``[x, h]``, split in two.

Shapes: ``x: [b L n c]``, ``tod, dow: [b L]`` -> features ``[n b L (c+2)]`` -> hidden states
``[n b L hidden]`` per layer -> last state ``[n b hidden]`` -> forecasts ``[b H n]``.

Memory: the adjacency is dense, ``[n n]`` (4·n² bytes: 170 KB for 207 sensors, 400 MB for
10,000), and it is applied at every step of every layer, O(L·layers·b·hidden·n²) time; the
generated weights take ``n · k(f + hidden) · 3·hidden`` floats per layer. The given graph
is not used. The embeddings tie a trained network to the sensor set it was built for.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from urbanflow.errors import ConfigError
from urbanflow.models.networks import NetworkSpec

CALENDAR_CHANNELS = 2  # time of day / steps_per_day, weekday / 7


def chebyshev_terms(adjacency: torch.Tensor, x: torch.Tensor, order: int) -> torch.Tensor:
    """``[T_0 x, …, T_{k-1} x]`` concatenated on the last axis: ``[n m f] -> [n m (k f)]``.

    Parameters
    ----------
    adjacency
        ``[n n]`` dense adjacency ``A`` (row-stochastic).
    x
        ``[n m f]`` features, sensors first, ``m`` any flattened batch.
    order
        ``k``, number of terms ``T_0 x = x``, ``T_1 x = A x``, ``T_j x = 2A T_{j-1} x - T_{j-2} x``,
        ≥ 1.
    """
    terms = [x]
    for j in range(1, order):
        mixed = (adjacency @ terms[-1].reshape(x.shape[0], -1)).reshape(x.shape)
        terms.append(mixed if j == 1 else 2 * mixed - terms[-2])
    return torch.cat(terms, dim=-1)


class NodeAdaptivePool(nn.Module):
    """A weight pool ``[d i o]`` from which each sensor's ``[i o]`` weight is generated.

    Parameters
    ----------
    embed_dim
        ``d``, width of the node embeddings the weights are generated from.
    in_features
        ``i``, input width of each generated weight.
    out_features
        ``o``, output width of each generated weight.
    bias
        Also generate a per-sensor bias from a ``[d o]`` pool.
    """

    def __init__(self, embed_dim: int, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        scale = 1.0 / math.sqrt(embed_dim * in_features)  # E ~ N(0, 1): Var(W) ≈ 1 / i
        self.weight = nn.Parameter(torch.randn(embed_dim, in_features, out_features) * scale)
        self.bias = nn.Parameter(torch.zeros(embed_dim, out_features)) if bias else None

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-sensor weights ``[n i o]`` and biases ``[n 1 o]`` (or None).

        Parameters
        ----------
        embedding
            ``[n d]`` learned node embedding ``E``.
        """
        weight = torch.einsum("nd,dio->nio", embedding, self.weight)
        bias = None if self.bias is None else (embedding @ self.bias)[:, None]
        return weight, bias


class AdaptiveGRU(nn.Module):
    """One recurrent layer over a window: ``[n b L f] -> [n b L hidden]``.

    Parameters
    ----------
    in_features
        ``f``, input features per sensor and step.
    hidden
        GRU state width.
    embed_dim
        ``d``, width of the node embeddings the weights are generated from.
    cheb_k
        Chebyshev terms of each graph convolution.
    """

    def __init__(self, in_features: int, hidden: int, embed_dim: int, cheb_k: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.cheb_k = cheb_k
        # input halves of the gate (2·hidden) and candidate (hidden) convolutions, one pool
        self.input_pool = NodeAdaptivePool(embed_dim, cheb_k * in_features, 3 * hidden, True)
        self.gate_pool = NodeAdaptivePool(embed_dim, cheb_k * hidden, 2 * hidden, False)
        self.candidate_pool = NodeAdaptivePool(embed_dim, cheb_k * hidden, hidden, False)

    def forward(
        self, x: torch.Tensor, adjacency: torch.Tensor, embedding: torch.Tensor
    ) -> torch.Tensor:
        """``[n b L hidden]`` state after each step, from a zero initial state.

        Parameters
        ----------
        x
            ``[n b L f]`` inputs, sensors first.
        adjacency
            ``[n n]`` dense adaptive adjacency ``A``.
        embedding
            ``[n d]`` learned node embedding ``E``.
        """
        nodes, batch, steps, _ = x.shape
        weight, bias = self.input_pool(embedding)
        terms = chebyshev_terms(adjacency, x.reshape(nodes, batch * steps, -1), self.cheb_k)
        inputs = torch.baddbmm(bias, terms, weight).reshape(nodes, batch, steps, -1)
        gate_weight, _ = self.gate_pool(embedding)
        candidate_weight, _ = self.candidate_pool(embedding)
        state = x.new_zeros(nodes, batch, self.hidden)
        states = []
        for step_inputs in inputs.unbind(dim=2):  # one backward for all steps, not one per step
            gate_in, candidate_in = step_inputs.split([2 * self.hidden, self.hidden], -1)
            gate_state = chebyshev_terms(adjacency, state, self.cheb_k) @ gate_weight
            reset, update = torch.sigmoid(gate_in + gate_state).chunk(2, dim=-1)
            candidate_state = chebyshev_terms(adjacency, reset * state, self.cheb_k)
            candidate = torch.tanh(candidate_in + candidate_state @ candidate_weight)
            state = update * state + (1 - update) * candidate
            states.append(state)
        return torch.stack(states, dim=2)


class AGCRN(nn.Module):
    """Adaptive graph convolutional recurrent network; see the module docstring.

    The defaults are sized for a small CPU (the paper used ``hidden=64, embed_dim=10``); 207
    sensors, batch 32, 12 steps take about 0.7 s per forward and backward pass on one CPU
    core (0.4 s with ``hidden=24``).

    Parameters
    ----------
    spec
        Sensors, window length, horizon and slots per day (the graph is not used).
    hidden
        GRU state width (default 32).
    embed_dim
        Width ``d`` of the node embeddings (adjacency and weight generation) (default 8).
    layers
        Stacked recurrent layers (default 2).
    cheb_k
        Chebyshev terms of the adaptive adjacency (default 2: ``[x, A x]``).
    """

    def __init__(
        self,
        spec: NetworkSpec,
        hidden: int = 32,
        embed_dim: int = 8,
        layers: int = 2,
        cheb_k: int = 2,
    ) -> None:
        super().__init__()
        if min(hidden, embed_dim, layers, cheb_k) < 1:
            raise ConfigError(
                f"agcrn: hidden, embed_dim, layers and cheb_k must be ≥ 1; got {hidden}, "
                f"{embed_dim}, {layers}, {cheb_k}"
            )
        self.steps_per_day = spec.steps_per_day
        self.node_embedding = nn.Parameter(torch.randn(spec.num_sensors, embed_dim))
        widths = [spec.in_channels + CALENDAR_CHANNELS] + [hidden] * (layers - 1)
        self.layers = nn.ModuleList(AdaptiveGRU(w, hidden, embed_dim, cheb_k) for w in widths)
        self.head = nn.Linear(hidden, spec.horizon)

    def adjacency(self) -> torch.Tensor:
        """``softmax(relu(E Eᵀ))`` by rows: ``[n n]``, dense."""
        embedding = self.node_embedding
        return torch.softmax(F.relu(embedding @ embedding.T), dim=1)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """AGCRN: ``[b H n]`` z-scored forecasts of a batch of windows.

        Parameters
        ----------
        x, tod, dow
            AGCRN feeds the ``[b L n c]`` readings and mask and the scaled ``[b L]``
            calendar to its recurrent cells (see ``urbanflow.models.networks``).
        """
        batch, steps, nodes, _ = x.shape
        calendar = torch.stack([tod.float() / self.steps_per_day, dow.float() / 7.0], dim=-1)
        calendar = calendar[None].expand(nodes, batch, steps, CALENDAR_CHANNELS)
        h = torch.cat([x.permute(2, 0, 1, 3), calendar.to(x.dtype)], dim=-1)  # [n b L c]
        adjacency = self.adjacency()
        for layer in self.layers:
            h = layer(h, adjacency, self.node_embedding)
        return self.head(h[:, :, -1]).permute(1, 2, 0)  # [n b H] -> [b H n]
