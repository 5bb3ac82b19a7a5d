"""The table of neural networks by name, imported only when one is built."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from types import MappingProxyType

from torch import nn

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.models.network import NetworkSpec

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


def network_class(name: str) -> type[nn.Module]:
    if name not in NETWORKS:
        raise UnknownNameError(f"unknown network {name!r}; choose one of: {', '.join(NETWORKS)}")
    module_name, _, class_name = NETWORKS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_network(name: str, spec: NetworkSpec, options: Mapping[str, object]) -> nn.Module:
    """``Network(spec, **options)``; an option the network does not take is a ConfigError."""
    cls = network_class(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "spec")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"network {name!r} has no option {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(spec, **options)
