"""STGCN: spatio-temporal graph convolutional network.

Yu, Yin and Zhu, "Spatio-Temporal Graph Convolutional Networks: A Deep Learning Framework for
Traffic Forecasting", IJCAI 2018. Two ST-Conv blocks, each a gated temporal convolution
(GLU), a Chebyshev graph convolution of order ``K`` over the scaled Laplacian
``2L/λmax - I`` and a second gated temporal convolution, then layer norm and dropout; an
output layer (a gated temporal convolution over the steps left, layer norm and two fully
connected layers) emits all ``H`` steps at once.

Shapes: ``x: [b L n c]``, ``tod, dow: [b L]`` → ``[b H n]``. Inside, features are
``[b t n f]``: the value, the mask, ``tod/steps_per_day`` and ``dow/7`` broadcast over sensors.
Every temporal convolution of kernel ``k`` shortens time by ``k - 1``, so the blocks need
``4(k - 1) + 1`` steps (9 for ``k = 3``); a shorter window is left-padded with missing steps.

Memory: the Laplacian is a sparse ``[n n]`` tensor, O(|E|); activations are O(b·L·n·C) with
``C = max(channels)``; layer norm holds ``2·n·C`` weights per norm (it normalises over sensors
and channels, as the paper's code does).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from urbanflow.errors import ConfigError
from urbanflow.graph.matrices import scaled_laplacian
from urbanflow.graph.operators import mix_sensors, to_torch_sparse
from urbanflow.models.networks import NetworkSpec

CALENDAR_CHANNELS = 2  # tod/steps_per_day, dow/7


class Align(nn.Module):
    """Match the channel count of ``[... f]`` for a residual: pad zeros or project down.

    Parameters
    ----------
    c_in
        Channels ``f`` of the input.
    c_out
        Channels wanted: more than ``c_in`` pads zeros, fewer projects with a linear map.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.project = nn.Linear(c_in, c_out) if c_in > c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[... c_in] -> [... c_out]``.

        Parameters
        ----------
        x
            ``[... c_in]`` features, channels last.
        """
        if self.project is not None:
            return self.project(x)
        return F.pad(x, (0, self.c_out - self.c_in))


class GatedTemporalConv(nn.Module):
    """``[b t n f]`` → ``[b t-k+1 n g]``: ``(P + residual) ⊙ σ(Q)`` with ``[P Q] = conv(x)``.

    Parameters
    ----------
    c_in
        ``f``, input channels.
    c_out
        ``g``, output channels.
    kernel
        ``k``, steps per convolution window; the output is ``k - 1`` steps shorter.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv2d(c_in, 2 * c_out, (kernel, 1))
        self.align = Align(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[b t n f] -> [b t-k+1 n g]``, the GLU of a causal convolution along time.

        Parameters
        ----------
        x
            ``[b t n f]`` features, channels last.
        """
        p, q = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).chunk(2, dim=-1)
        residual = self.align(x[:, self.kernel - 1 :])
        return (p + residual) * torch.sigmoid(q)


class ChebGraphConv(nn.Module):
    """``[b t n f]`` → ``[b t n g]``: ``ReLU(Σ_k T_k(L̃) x Θ_k + residual)``.

    Parameters
    ----------
    c_in
        ``f``, channels of the features mixed.
    c_out
        ``g``, channels after mixing.
    order
        ``K``, Chebyshev terms ``T_0 … T_{K-1}`` of the scaled Laplacian, ≥ 1 (1: no mixing across
        sensors).
    """

    def __init__(self, c_in: int, c_out: int, order: int) -> None:
        super().__init__()
        self.order = order
        self.theta = nn.Linear(order * c_in, c_out)
        self.align = Align(c_in, c_out)

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """``[b t n f] -> [b t n g]``.

        Parameters
        ----------
        x
            ``[b t n f]`` features, channels last.
        laplacian
            ``[n n]`` sparse scaled Laplacian ``L̃ = 2L/λmax - I``.
        """
        b, t, n, f = x.shape
        flat = x.reshape(b * t, n, f)
        terms = [flat]
        if self.order > 1:
            terms.append(mix_sensors(laplacian, flat, dim=1))
        for _ in range(2, self.order):
            terms.append(2 * mix_sensors(laplacian, terms[-1], dim=1) - terms[-2])
        mixed = self.theta(torch.cat(terms, dim=-1)).reshape(b, t, n, -1)
        return torch.relu(mixed + self.align(x))


class STConvBlock(nn.Module):
    """Temporal GLU → Chebyshev graph conv → temporal GLU → layer norm → dropout.

    Parameters
    ----------
    c_in
        Channels of the block's input.
    channels
        ``(temporal, spatial, temporal)`` output channels of its three convolutions.
    num_sensors
        ``n``: layer norm normalises over sensors and channels.
    order
        Chebyshev terms of the graph convolution.
    kernel
        ``k`` of both temporal convolutions; the block shortens time by ``2(k - 1)``.
    dropout
        Dropout probability at the end of the block.
    """

    def __init__(
        self,
        c_in: int,
        channels: tuple[int, int, int],
        num_sensors: int,
        order: int,
        kernel: int,
        dropout: float,
    ) -> None:
        super().__init__()
        c_t1, c_s, c_t2 = channels
        self.temporal_in = GatedTemporalConv(c_in, c_t1, kernel)
        self.spatial = ChebGraphConv(c_t1, c_s, order)
        self.temporal_out = GatedTemporalConv(c_s, c_t2, kernel)
        self.norm = nn.LayerNorm([num_sensors, c_t2])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """``[b t n c_in] -> [b t-2(k-1) n channels[2]]``.

        Parameters
        ----------
        x
            ``[b t n c_in]`` features, channels last.
        laplacian
            ``[n n]`` sparse scaled Laplacian.
        """
        x = self.temporal_out(self.spatial(self.temporal_in(x), laplacian))
        return self.dropout(self.norm(x))


class STGCN(nn.Module):
    """Two ST-Conv blocks and an output layer; see the module docstring.

    Parameters
    ----------
    spec
        Sensors, window length, horizon, slots per day and the graph (its scaled Laplacian is the
        graph operator).
    channels
        ``(temporal, spatial, temporal)`` channels of each ST-Conv block (default ``(64, 16, 64)``,
        the paper's).
    cheb_order
        ``K``, Chebyshev terms of the graph convolutions (default 3).
    kernel
        ``k``, width of every temporal convolution (default 3); windows shorter than
        ``4(k - 1) + 1`` steps are left-padded with missing steps.
    dropout
        Dropout probability after each block (default 0.3).
    """

    def __init__(
        self,
        spec: NetworkSpec,
        channels: tuple[int, int, int] = (64, 16, 64),
        cheb_order: int = 3,
        kernel: int = 3,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3 or min(channels) < 1:
            raise ConfigError(
                f"stgcn channels must be three positive sizes (temporal, spatial, temporal); "
                f"got {channels}, e.g. use (64, 16, 64)"
            )
        if cheb_order < 1 or kernel < 1:
            raise ConfigError(
                f"stgcn needs cheb_order ≥ 1 and kernel ≥ 1; got {cheb_order} and {kernel}"
            )
        # two blocks of two temporal convolutions consume 4(k-1) steps; a shorter window is
        # left-padded with missing steps (mask 0), as Graph WaveNet pads to its field
        self.steps = max(spec.input_len, 4 * (kernel - 1) + 1)
        remaining = self.steps - 4 * (kernel - 1)
        self.steps_per_day = spec.steps_per_day
        n = spec.num_sensors
        self.register_buffer(
            "laplacian", to_torch_sparse(scaled_laplacian(spec.require_graph())), persistent=False
        )
        c_in = spec.in_channels + CALENDAR_CHANNELS
        self.blocks = nn.ModuleList(
            [
                STConvBlock(c_in, channels, n, cheb_order, kernel, dropout),
                STConvBlock(channels[2], channels, n, cheb_order, kernel, dropout),
            ]
        )
        width = channels[2]
        self.out_temporal = GatedTemporalConv(width, width, remaining)
        self.out_norm = nn.LayerNorm([n, width])
        self.out_hidden = nn.Linear(width, width)
        self.out_head = nn.Linear(width, spec.horizon)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """STGCN: ``[b H n]`` z-scored forecasts of a batch of windows.

        Parameters
        ----------
        x, tod, dow
            STGCN convolves the ``[b L n c]`` readings and mask; the ``[b L]`` calendar
            is not used (the inputs are described in ``urbanflow.models.networks``).
        """
        pad = self.steps - x.shape[1]
        if pad > 0:
            x = nn.functional.pad(x, (0, 0, 0, 0, pad, 0))
            tod = torch.cat([tod[:, :1].expand(-1, pad), tod], dim=1)
            dow = torch.cat([dow[:, :1].expand(-1, pad), dow], dim=1)
        b, steps, n, _ = x.shape
        calendar = torch.stack([tod.float() / self.steps_per_day, dow.float() / 7.0], dim=-1)
        h = torch.cat([x, calendar[:, :, None, :].expand(b, steps, n, 2)], dim=-1)
        for block in self.blocks:
            h = block(h, self.laplacian)
        h = self.out_norm(self.out_temporal(h))  # [b 1 n C]
        out = self.out_head(torch.relu(self.out_hidden(h)))  # [b 1 n H]
        return out[:, 0].transpose(1, 2)
