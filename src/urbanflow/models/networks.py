"""The neural networks by name, and what every network receives and returns.

A network is an ``nn.Module`` built as ``Network(spec, **options)`` and called as
``network(x, tod, dow)``:

- ``x``: ``[b L n c]`` inputs, channel 0 the z-scored reading (0 where missing), channel 1
  the mask (1 = present); ``c = spec.in_channels``;
- ``tod``: ``[b L]`` int64 time-of-day slot of each input step, ``0 … steps_per_day-1``;
- ``dow``: ``[b L]`` int64 local weekday of each input step, Monday = 0;
- returns ``[b H n]``: z-scored forecasts for the next ``H = spec.horizon`` steps.

Graph operators come from ``urbanflow.graph.matrices`` (SciPy) through
``urbanflow.graph.operators`` (torch); a network that needs a dense ``[n n]`` matrix (an
adaptive adjacency) says so and documents its limit.

This module does not import torch: the table is read by the model registry, and a network's
module is imported only when one is built. To add a network, write its module and add one
row to ``NETWORKS``; the registry offers it as a model of the same name.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.graph.graph import SensorGraph

if TYPE_CHECKING:
    from torch import nn

IN_CHANNELS = 2  # z-scored value, presence mask

NETWORKS: Mapping[str, str] = MappingProxyType(
    {
        "stid": "urbanflow.models.stid:STID",
        "staeformer": "urbanflow.models.staeformer:STAEformer",
        "gwnet": "urbanflow.models.gwnet:GraphWaveNet",
        "agcrn": "urbanflow.models.agcrn:AGCRN",
        "stgcn": "urbanflow.models.stgcn:STGCN",
        "tgcn": "urbanflow.models.tgcn:TGCN",
    }
)


@dataclass(frozen=True)
class NetworkSpec:
    """The shapes and graph a network is built for.

    Parameters
    ----------
    num_sensors
        ``n``, the number of sensors.
    input_len
        ``L``, input steps per sample.
    horizon
        ``H``, steps forecast per sample.
    steps_per_day
        Time-of-day slots of the data's grid (size of a time-of-day embedding).
    in_channels
        ``c``, channels of ``x`` (reading and mask).
    graph
        The sensor graph; ``None`` or an empty graph means self loops only.
    weekdays
        Whether ``dow`` carries weekdays (default True); False when the training part does not
        hold every weekday twice (``urbanflow.data.calendar.weekdays_usable``): ``dow`` is then
        0 throughout and a network leaves its weekday embedding out.
    """

    num_sensors: int
    input_len: int
    horizon: int
    steps_per_day: int
    in_channels: int = IN_CHANNELS
    graph: SensorGraph | None = field(default=None, compare=False)
    weekdays: bool = True

    def require_graph(self) -> SensorGraph:
        """The graph, or one of self loops only when the spec has no edges."""
        if self.graph is None or self.graph.num_edges == 0:
            return SensorGraph.from_dense(np.eye(self.num_sensors, dtype=np.float32))
        return self.graph


def network_class(name: str) -> type[nn.Module]:
    """The network class registered as ``name`` (its module is imported here).

    Parameters
    ----------
    name
        A key of ``NETWORKS``.
    """
    if name not in NETWORKS:
        raise UnknownNameError(f"unknown network {name!r}; choose one of: {', '.join(NETWORKS)}")
    module_name, _, class_name = NETWORKS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_network(name: str, spec: NetworkSpec, options: Mapping[str, object]) -> nn.Module:
    """``Network(spec, **options)``; an option the network does not take is a ConfigError.

    Parameters
    ----------
    name
        A key of ``NETWORKS``.
    spec
        Shapes and graph to build for.
    options
        The network's keyword hyperparameters.
    """
    cls = network_class(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "spec")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"network {name!r} has no option {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(spec, **options)


def parameter_count(module: nn.Module) -> int:
    """Number of trainable numbers in ``module``.

    Parameters
    ----------
    module
        Any torch module.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
