"""Graph WaveNet: gated dilated temporal convolutions interleaved with diffusion graph convolutions.

Wu, Pan, Long, Jiang and Zhang, "Graph WaveNet for Deep Spatial-Temporal Graph Modeling",
IJCAI 2019.

A 1×1 convolution lifts each sensor's inputs (reading, mask, time of day, weekday) to
``channels``. Each layer then applies a gated dilated convolution along time
(``tanh(filter) * sigmoid(gate)``, kernel ``k``, dilations ``1, 2, …, 2^(layers-1)`` in every
block), sends a skip branch to the output, mixes sensors by diffusion over the forward and
backward transition matrices of the dataset graph (and an adaptive adjacency
``softmax(relu(E1 E2))`` learned from node embeddings), adds the residual and batch-normalises.
The summed skips go through two ReLU + 1×1 convolutions that read the ``H`` forecasts. The
last layer keeps only its skip branch: its residual output would feed nothing.

The receptive field is ``1 + blocks · (k-1) · (2^layers - 1)`` steps (13 with the defaults); a
shorter window is left-padded with zeros, which the mask channel marks as missing, as the
original pads its 12-step input to 13. With a longer window only the last output step is read.

Features are laid out sensors first and channels last, so every 1×1 and dilated convolution
is one matrix product (a dilated convolution of width ``k`` is a linear map of ``k`` shifted
slices, concatenated) and so is every graph mixing step, without transposes.

Shapes: ``x: [b L n c]``, ``tod, dow: [b L]`` -> features ``[n b L (c+2)]`` -> layers
``[n b t channels]`` -> skips ``[n b 1 skip_channels]`` -> forecasts ``[b H n]``.

Memory: the transition matrices are sparse (O(edges)). The adaptive adjacency is dense: its
``[n n]`` matrix, its softmax and their gradients cost O(n²) memory (4·n² bytes each: 170 KB
for 207 sensors, 400 MB for 10,000), and mixing with it O(b·t·channels·n²) time. For more than
a few thousand sensors pass ``adaptive=False`` to diffuse over the sparse graph only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from urbanflow.errors import ConfigError
from urbanflow.graph.matrices import transition_matrices
from urbanflow.graph.operators import mix_sensors, to_torch_sparse
from urbanflow.models.networks import NetworkSpec

CALENDAR_CHANNELS = 2  # time of day / steps_per_day, weekday / 7


class DiffusionConv(nn.Module):
    """``[n b t f] -> [n b t f]``: ``W [x, P x, P² x, …]`` over every operator ``P``.

    Parameters
    ----------
    channels
        ``f``, feature channels in and out.
    operators
        Number of sensor-mixing operators ``P`` it will be given (2, or 3 with the adaptive
        adjacency).
    steps
        Powers ``P, P², …`` of each operator concatenated before the linear map.
    dropout
        Dropout probability on the output, while training.
    """

    def __init__(self, channels: int, operators: int, steps: int, dropout: float) -> None:
        super().__init__()
        self.steps = steps
        self.dropout = dropout
        self.mlp = nn.Linear(channels * (1 + operators * steps), channels)

    def forward(self, x: torch.Tensor, operators: list[torch.Tensor]) -> torch.Tensor:
        """``[n b t f] -> [n b t f]`` diffused and mixed features.

        Parameters
        ----------
        x
            ``[n b t f]`` features, sensors first.
        operators
            The ``[n n]`` sensor-mixing matrices (sparse transition matrices, dense adaptive
            adjacency), as many as built for.
        """
        terms = [x]
        for operator in operators:
            diffused = x
            for _ in range(self.steps):
                diffused = mix_sensors(operator, diffused)
                terms.append(diffused)
        out = self.mlp(torch.cat(terms, dim=-1))
        return F.dropout(out, self.dropout, self.training)


class GatedLayer(nn.Module):
    """One layer: ``[n b t f] -> ([n b t' f], skip [n b t' s])`` with ``t' = t - d·(k-1)``.

    Parameters
    ----------
    channels
        ``f``, residual channels in and out.
    skip_channels
        ``s``, channels of the skip branch.
    kernel_size
        ``k``, taps of the dilated temporal convolution.
    dilation
        ``d``, steps between taps.
    diffusion
        The graph convolution applied after the gate, followed by the residual and batch norm;
        ``None`` for the last layer, which returns its gated output unmixed.
    """

    def __init__(
        self,
        channels: int,
        skip_channels: int,
        kernel_size: int,
        dilation: int,
        diffusion: DiffusionConv | None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        # filter and gate of all k taps in one linear map, split along channels
        self.temporal = nn.Linear(kernel_size * channels, 2 * channels)
        self.skip = nn.Linear(channels, skip_channels)
        self.diffusion = diffusion
        self.norm = None if diffusion is None else nn.BatchNorm1d(channels)

    def forward(
        self, x: torch.Tensor, operators: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gated output and skip branch, both ``t' = t - d·(k-1)`` steps long.

        Parameters
        ----------
        x
            ``[n b t f]`` features, sensors first.
        operators
            The ``[n n]`` sensor-mixing matrices passed to the diffusion convolution.
        """
        steps = x.shape[2] - self.dilation * (self.kernel_size - 1)
        taps = [
            x[:, :, j * self.dilation : j * self.dilation + steps] for j in range(self.kernel_size)
        ]
        filt, gate = self.temporal(torch.cat(taps, dim=-1)).chunk(2, dim=-1)
        h = torch.tanh(filt) * torch.sigmoid(gate)
        skip = self.skip(h)
        if self.diffusion is None or self.norm is None:
            return h, skip
        h = self.diffusion(h, operators) + x[:, :, -steps:]
        return self.norm(h.reshape(-1, h.shape[-1])).reshape(h.shape), skip


class GraphWaveNet(nn.Module):
    """Graph WaveNet; see the module docstring.

    The defaults are sized for a small CPU: 16 channels halve the cost of the paper's 32 (which
    used 256 skip and 512 end channels); 207 sensors, batch 32, 12 steps take about 0.8 s
    (channels=16) or 1.7 s (channels=32) per forward and backward pass on one CPU core.

    Parameters
    ----------
    spec
        Sensors, window length, horizon, slots per day and the graph (its forward and backward
        random-walk matrices are the fixed diffusion operators).
    channels
        Residual (and diffusion) channels (default 16).
    skip_channels
        Channels of the skip branches summed into the output (default 64).
    end_channels
        Hidden channels of the output head (default 128).
    blocks
        Repeats of the dilation pattern ``1, 2, …, 2^(layers-1)`` (default 4).
    layers
        Gated layers per block (default 2).
    kernel_size
        Temporal kernel width ``k`` (default 2); with ``blocks`` and ``layers`` it sets the
        receptive field ``1 + blocks · (k-1) · (2^layers - 1)`` steps.
    diffusion_steps
        Powers ``P, P², …`` of each operator used in a graph convolution (default 2).
    adaptive
        Learn the dense adaptive adjacency (default True); it costs O(n²) memory, so turn it off
        for graphs of more than a few thousand sensors.
    embed_dim
        Width of the two node embeddings ``E1: [n e]``, ``E2: [e n]`` of the adaptive adjacency
        (default 10; unused when ``adaptive`` is off).
    dropout
        Dropout after each graph convolution (default 0.3).
    """

    def __init__(
        self,
        spec: NetworkSpec,
        channels: int = 16,
        skip_channels: int = 64,
        end_channels: int = 128,
        blocks: int = 4,
        layers: int = 2,
        kernel_size: int = 2,
        diffusion_steps: int = 2,
        adaptive: bool = True,
        embed_dim: int = 10,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if min(blocks, layers, kernel_size) < 1:
            raise ConfigError(
                f"gwnet: blocks, layers and kernel_size must be ≥ 1; got {blocks}, {layers}, "
                f"{kernel_size}"
            )
        self.steps_per_day = spec.steps_per_day
        forward_walk, backward_walk = map(
            to_torch_sparse, transition_matrices(spec.require_graph())
        )
        # rebuilt from the graph on load, never saved: safetensors holds dense tensors only
        self.register_buffer("forward_walk", forward_walk, persistent=False)
        self.register_buffer("backward_walk", backward_walk, persistent=False)
        self.adaptive = adaptive
        if adaptive:
            self.source_embedding = nn.Parameter(torch.randn(spec.num_sensors, embed_dim))
            self.target_embedding = nn.Parameter(torch.randn(embed_dim, spec.num_sensors))
        dilations = [2**j for _ in range(blocks) for j in range(layers)]
        self.receptive_field = 1 + (kernel_size - 1) * sum(dilations)
        mixers = 2 + int(adaptive)  # diffusion operators: forward, backward, adaptive
        last = len(dilations) - 1  # its residual output would feed nothing: skip branch only
        self.start = nn.Linear(spec.in_channels + CALENDAR_CHANNELS, channels)
        self.layers = nn.ModuleList()
        for i, dilation in enumerate(dilations):
            graph = None if i == last else DiffusionConv(channels, mixers, diffusion_steps, dropout)
            self.layers.append(GatedLayer(channels, skip_channels, kernel_size, dilation, graph))
        self.end = nn.Sequential(
            nn.ReLU(),
            nn.Linear(skip_channels, end_channels),
            nn.ReLU(),
            nn.Linear(end_channels, spec.horizon),
        )

    def operators(self) -> list[torch.Tensor]:
        """Forward and backward transition matrices (sparse ``[n n]``), then the adaptive
        adjacency ``softmax(relu(E1 E2))`` (dense ``[n n]``) when it is learned."""
        result = [self.forward_walk, self.backward_walk]
        if self.adaptive:
            scores = F.relu(self.source_embedding @ self.target_embedding)
            result.append(torch.softmax(scores, dim=1))
        return result

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """Graph WaveNet: ``[b H n]`` z-scored forecasts of a batch of windows.

        Parameters
        ----------
        x, tod, dow
            Graph WaveNet lifts the ``[b L n c]`` readings and mask together with the
            scaled ``[b L]`` calendar (inputs as in ``urbanflow.models.networks``).
        """
        batch, steps, nodes, _ = x.shape
        calendar = torch.stack([tod.float() / self.steps_per_day, dow.float() / 7.0], dim=-1)
        calendar = calendar[None].expand(nodes, batch, steps, CALENDAR_CHANNELS)
        h = torch.cat([x.permute(2, 0, 1, 3), calendar.to(x.dtype)], dim=-1)  # [n b L c]
        if steps < self.receptive_field:
            h = F.pad(h, (0, 0, self.receptive_field - steps, 0))
        h = self.start(h)
        operators = self.operators()
        h, skips = self.layers[0](h, operators)
        for layer in self.layers[1:]:
            h, skip = layer(h, operators)
            skips = skip + skips[:, :, -skip.shape[2] :]
        return self.end(skips[:, :, -1]).permute(1, 2, 0)  # [n b H] -> [b H n]
