"""The model registry: every name the CLI, the API and the benchmark can ask for.

``MODELS`` is a plain table ``name -> ModelEntry``: where the class lives (``"module:Class"``,
imported only when the model is made, so torch loads only for neural models) and the preset
hyperparameters that distinguish a variant (``ridge-per-sensor`` is ``ridge`` with
``per_sensor=True``). Every network of ``urbanflow.models.networks.NETWORKS`` is a model of
the same name; a new network needs no row here.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.models.base import Forecaster
from urbanflow.models.networks import NETWORKS

_BASELINES = "urbanflow.models.baselines"
_NEURAL = "urbanflow.models.neural:NeuralForecaster"


@dataclass(frozen=True)
class ModelEntry:
    """Where a model's class lives and the hyperparameters its registry name presets.

    Parameters
    ----------
    target
        ``"package.module:ClassName"``.
    presets
        Hyperparameters the name sets; a caller's own hyperparameters override them.
    """

    target: str
    presets: Mapping[str, object] = field(default_factory=dict)

    def load(self) -> type[Forecaster]:
        """Import and return the class (the import happens here, not when listing names)."""
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)

    @property
    def is_neural(self) -> bool:
        """Whether the model is a trained network (it has weights to bundle)."""
        return self.target == _NEURAL


MODELS: Mapping[str, ModelEntry] = MappingProxyType(
    {
        "last-value": ModelEntry(f"{_BASELINES}:LastValue"),
        "historical-average": ModelEntry(f"{_BASELINES}:HistoricalAverage"),
        "seasonal-naive": ModelEntry(f"{_BASELINES}:SeasonalNaive", {"season": "day"}),
        "seasonal-naive-week": ModelEntry(f"{_BASELINES}:SeasonalNaive", {"season": "week"}),
        "ridge": ModelEntry(f"{_BASELINES}:Ridge"),
        "ridge-per-sensor": ModelEntry(f"{_BASELINES}:Ridge", {"per_sensor": True}),
        **{name: ModelEntry(_NEURAL, {"network": name}) for name in NETWORKS},
        # urbanflow's recommended model: STID that also reads its graph neighbours' windows,
        # with a linear highway, averaged over three seeds (docs/models.md). Weekdays, the
        # loss and the horizons follow the data by rule (weekdays_usable, DEFAULT_LOSSES,
        # default_horizons), never by what works on one city.
        "stid-graph": ModelEntry(
            _NEURAL,
            {
                "network": "stid",
                "network_options": {"neighbours": True, "highway": True},
                "ensemble": 3,
                "max_epochs": 60,
            },
        ),
    }
)


RECOMMENDED = "stid-graph"
"""The model urbanflow recommends for any city and kind of flow (docs/models.md)."""


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def neural_names() -> list[str]:
    """The registered names of trained networks, sorted."""
    return [name for name in model_names() if MODELS[name].is_neural]


def model_entry(name: str) -> ModelEntry:
    """The registry row of ``name``; an unknown name lists the valid ones.

    Parameters
    ----------
    name
        A registered model name (``urbanflow models``).
    """
    entry = MODELS.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(
            f"unknown model {name!r}; choose one of: {', '.join(model_names())}{hint}"
        )
    return entry


def hyperparameter_names(model_class: type[Forecaster]) -> list[str]:
    """Keyword hyperparameters a model class takes besides ``input_len`` and ``horizon``.

    Parameters
    ----------
    model_class
        A forecaster class.
    """
    parameters = inspect.signature(model_class.__init__).parameters
    return [
        name
        for name, parameter in parameters.items()
        if name not in {"self", "input_len", "horizon"}
        and parameter.kind in {parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD}
    ]


def make_model(
    name: str, *, input_len: int = 12, horizon: int = 12, **hyperparameters: object
) -> Forecaster:
    """An unfitted model by registry name; ``hyperparameters`` override the name's presets.

    Parameters
    ----------
    name
        A registered model name (``urbanflow models``).
    input_len
        ``L``, input steps per sample.
    horizon
        ``H``, steps forecast per sample.
    hyperparameters
        Keyword hyperparameters of the model's class; an unknown one is a ConfigError.
    """
    entry = model_entry(name)
    model_class = entry.load()
    valid = hyperparameter_names(model_class)
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        takes = f"takes only {', '.join(valid)}" if valid else "takes no hyperparameters"
        raise ConfigError(
            f"model {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; it {takes}"
        )
    return model_class(input_len=input_len, horizon=horizon, **{**entry.presets, **hyperparameters})
