"""The neural networks by name, and what every network receives and returns.

A network is an ``nn.Module`` built as ``Network(spec, **options)`` and called as
``network(x, tod, dow)``:

- ``x``: ``[b L n c]`` inputs, channel 0 the z-scored reading (0 where missing), channel 1
  the mask (1 = present); ``c = spec.in_channels``;
- ``tod``: ``[b L]`` int64 time-of-day slot of each input step, ``0 … steps_per_day-1``;
- ``dow``: ``[b L]`` int64 local weekday of each input step, Monday = 0;
- returns ``[b H n]``: z-scored forecasts for the next ``H = spec.horizon`` steps.

A network whose sensors are forecast independently given the inputs (STID) sets the class
attribute ``sensor_subsets = True`` and takes ``network(x, tod, dow, sensors=s)``: ``x`` still
holds every sensor, ``s`` is ``[k]`` int64 sensor indices, and it returns ``[b H k]``. Training
on a large city then steps over blocks of sensors (``urbanflow.training.engine``).

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
import os
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


def _adjacency_bytes(spec: NetworkSpec, options: Mapping[str, object], batch: int) -> int:
    # gwnet: the adaptive [n n] adjacency, its softmax and their gradients (float32)
    return 16 * spec.num_sensors**2


def _supports_bytes(spec: NetworkSpec, options: Mapping[str, object], batch: int) -> int:
    # agcrn: cheb_k adaptive [n n] supports, their softmax and gradients (float32)
    return 16 * int(options.get("cheb_k", 2)) * spec.num_sensors**2


def _attention_bytes(spec: NetworkSpec, options: Mapping[str, object], batch: int) -> int:
    # staeformer: spatial attention scores [b heads L n n] per layer, kept with their softmax
    # and gradients (float32)
    heads, layers = int(options.get("heads", 4)), int(options.get("num_layers", 2))
    return 12 * batch * heads * spec.input_len * layers * spec.num_sensors**2


DENSE_MEMORY = MappingProxyType(
    {"gwnet": _adjacency_bytes, "agcrn": _supports_bytes, "staeformer": _attention_bytes}
)
"""Networks whose memory grows with the square of the sensors, and an estimate of the bytes
their dense ``[n n]`` parts take in training. The others are O(n)."""
SCALABLE = ("stid-graph", "stid")  # named when a dense network is refused


def machine_memory_bytes() -> int:
    """This machine's physical memory in bytes (0 when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_dense_memory(
    name: str,
    spec: NetworkSpec,
    options: Mapping[str, object],
    batch_size: int,
    memory_bytes: int | None = None,
) -> None:
    """A ConfigError, naming a model that scales, when an O(n²) network's dense parts would
    take more than a quarter of the machine's memory: refused before training, instead of
    running out of memory.

    Parameters
    ----------
    name
        A key of ``NETWORKS``.
    spec
        Shapes the network would be built for.
    options
        Its keyword hyperparameters.
    batch_size
        Samples per optimiser step.
    memory_bytes
        The machine's memory; None (default): :func:`machine_memory_bytes`.
    """
    estimate = DENSE_MEMORY.get(name)
    memory = machine_memory_bytes() if memory_bytes is None else memory_bytes
    if estimate is None or memory <= 0:
        return
    needed = estimate(spec, options, batch_size)
    if needed > memory / 4:
        raise ConfigError(
            f"{name} holds dense {spec.num_sensors:,} × {spec.num_sensors:,} matrices (memory "
            f"grows with the square of the sensors): about {needed / 2**30:,.1f} GiB, more than "
            f"a quarter of this machine's {memory / 2**30:,.1f} GiB; use "
            f"{' or '.join(SCALABLE)}, whose memory grows linearly"
        )


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
