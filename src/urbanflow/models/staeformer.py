"""STAEformer: a vanilla transformer over time, then over sensors, on rich input embeddings.

Liu, Dong, Jiang, Deng, Deng, Chen and Song, "Spatio-Temporal Adaptive Embedding Makes Vanilla
Transformer SOTA for Traffic Forecasting", CIKM 2023.

Every input step of every sensor becomes one token: a linear projection of its channels
(reading and mask), the embeddings of its time-of-day slot and weekday, and a learned
spatio-temporal adaptive embedding indexed by (step, sensor). Post-norm transformer layers
attend first along the ``L`` steps of each sensor, then across the ``n`` sensors of each step.
A linear map mixes each sensor's ``L`` tokens into its ``H`` forecasts.

Shapes: ``x: [b L n c]``, ``tod, dow: [b L]`` -> tokens ``[b L n d]`` with
``d = input_dim + tod_dim + dow_dim + adaptive_dim`` -> ``[b n (L d)]`` -> forecasts ``[b H n]``.

Memory: spatial attention scores are O(b·L·n²) per layer and head (``[(b L) heads n n]``, fewer
with a fused attention kernel); temporal attention is O(b·n·L²). The adaptive embedding is
``[L n adaptive_dim]``, so a trained network is tied to its window length and sensor set.
Defaults are smaller than the paper's (24/24/24/80, 3 layers, feed-forward 256) to train on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from urbanflow.errors import ConfigError
from urbanflow.models.networks import NetworkSpec


class TransformerLayer(nn.Module):
    """Post-norm self-attention and feed-forward over the sequence axis of ``[B s d]``.

    Parameters
    ----------
    dim
        ``d``, token width.
    heads
        Attention heads; must divide ``dim``.
    feed_forward
        Hidden width of the feed-forward block.
    dropout
        Dropout probability after attention and after the feed-forward block.
    """

    def __init__(self, dim: int, heads: int, feed_forward: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, feed_forward), nn.ReLU(), nn.Linear(feed_forward, dim)
        )
        self.norm_attention = nn.LayerNorm(dim)
        self.norm_feed_forward = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B s d] -> [B s d]``: every token attends to the ``s`` tokens of its sequence.

        Parameters
        ----------
        x
            ``[B s d]`` tokens, ``B`` sequences of ``s`` tokens.
        """
        attended, _ = self.attention(x, x, x, need_weights=False)
        x = self.norm_attention(x + self.dropout(attended))
        return self.norm_feed_forward(x + self.dropout(self.feed_forward(x)))


def along(layer: TransformerLayer, x: torch.Tensor, axis: int) -> torch.Tensor:
    """Apply ``layer`` along ``axis`` (1 = steps, 2 = sensors) of ``x: [b L n d]``.

    Parameters
    ----------
    layer
        The transformer layer to apply.
    x
        ``[b L n d]`` tokens.
    axis
        The sequence axis: 1 attends along the steps of each sensor, 2 across the sensors of each
        step.
    """
    moved = x.movedim(axis, 2)  # [b other seq d]
    batch, other, length, dim = moved.shape
    out = layer(moved.reshape(batch * other, length, dim))
    return out.reshape(batch, other, length, dim).movedim(2, axis)


class STAEformer(nn.Module):
    """Spatio-temporal adaptive embedding transformer; see the module docstring.

    Parameters
    ----------
    spec
        Sensors, window length, horizon and slots per day.
    input_dim
        Width of the linear projection of each token's channels (default 16).
    tod_dim
        Width of the time-of-day embedding over ``spec.steps_per_day`` slots (default 16).
    dow_dim
        Width of the day-of-week embedding over 7 days (default 16).
    adaptive_dim
        Width of the learned ``[L n adaptive_dim]`` spatio-temporal embedding (default 48); it
        ties the network to its window length and sensor set.
    heads
        Attention heads (default 4); must divide the token width
        ``d = input_dim + tod_dim + dow_dim + adaptive_dim``.
    num_layers
        Temporal layers, and as many spatial layers after them (default 2).
    feed_forward
        Hidden width of each layer's feed-forward block (default 128).
    dropout
        Dropout after attention and after the feed-forward block (default 0.1).
    """

    def __init__(
        self,
        spec: NetworkSpec,
        input_dim: int = 16,
        tod_dim: int = 16,
        dow_dim: int = 16,
        adaptive_dim: int = 48,
        heads: int = 4,
        num_layers: int = 2,
        feed_forward: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        dim = input_dim + tod_dim + dow_dim + adaptive_dim
        if dim % heads:
            raise ConfigError(
                f"STAEformer token width {dim} (input_dim + tod_dim + dow_dim + adaptive_dim) "
                f"is not divisible by heads={heads}; change heads or one of the widths"
            )
        self.horizon = spec.horizon
        self.input_proj = nn.Linear(spec.in_channels, input_dim)
        self.tod = nn.Embedding(spec.steps_per_day, tod_dim)
        self.dow = nn.Embedding(7, dow_dim)
        self.adaptive = nn.Parameter(torch.empty(spec.input_len, spec.num_sensors, adaptive_dim))
        nn.init.xavier_uniform_(self.adaptive)
        self.temporal = nn.ModuleList(
            TransformerLayer(dim, heads, feed_forward, dropout) for _ in range(num_layers)
        )
        self.spatial = nn.ModuleList(
            TransformerLayer(dim, heads, feed_forward, dropout) for _ in range(num_layers)
        )
        self.output_proj = nn.Linear(spec.input_len * dim, spec.horizon)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """STAEformer: ``[b H n]`` z-scored forecasts of a batch of windows.

        Parameters
        ----------
        x, tod, dow
            STAEformer embeds each step's ``[b L n c]`` readings and its ``[b L]``
            time of day and weekday (inputs as ``urbanflow.models.networks`` says).
        """
        batch, _, sensors, _ = x.shape
        calendar = torch.cat([self.tod(tod), self.dow(dow)], dim=-1)  # [b L (tod+dow)]
        tokens = torch.cat(
            [
                self.input_proj(x),
                calendar.unsqueeze(2).expand(-1, -1, sensors, -1),
                self.adaptive.expand(batch, -1, -1, -1),
            ],
            dim=-1,
        )  # [b L n d]
        for layer in self.temporal:
            tokens = along(layer, tokens, axis=1)
        for layer in self.spatial:
            tokens = along(layer, tokens, axis=2)
        mixed = tokens.permute(0, 2, 1, 3).reshape(batch, sensors, -1)  # [b n (L d)]
        return self.output_proj(mixed).transpose(1, 2)  # [b H n]
