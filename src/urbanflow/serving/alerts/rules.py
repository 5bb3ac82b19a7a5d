"""Alert rules: a TOML file of ``[[rule]]`` tables, checked against the model it watches.

A rule names a set of sensors, a condition and what to do when it fires::

    [[rule]]
    name = "jam-downtown"
    sensors = {bbox = [34.00, -118.30, 34.10, -118.20]}   # south, west, north, east
    condition = "below"              # "below" | "above" | "drift"
    threshold = 40.0                 # in the data's unit
    within_minutes = 30              # the steps k with k·step ≤ 30 minutes
    probability = 0.7                # fire when some step's probability reaches 0.7
    for = 1                          # issues it must hold after the first (default 0)
    resolve_after = 2                # clear issues before it resolves (default 1)
    webhooks = ["https://ops.example.org/hooks/urbanflow"]

``sensors`` is ``"all"``, a list of ids, or ``{bbox = [south, west, north, east]}`` in
degrees (a sensor without coordinates is never inside a box). ``condition = "drift"`` takes
``factor`` instead of ``threshold``/``within_minutes``/``probability``: it holds for a sensor
whose live error exceeds ``factor`` × its validation error. ``condition = "above_capacity"``
takes ``within_minutes`` and ``probability`` only: the reading reaches the sensor's capacity
(occupancy data with capacities; a model without them is refused).

Every problem raises :class:`~urbanflow.errors.ConfigError` with one line naming the file,
the rule (by name, or by position when it has none) and the field, and saying how to fix it.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from urbanflow.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

THRESHOLD_KEYS = ("threshold", "within_minutes", "probability")
CAPACITY_KEYS = ("within_minutes", "probability")
DRIFT_KEYS = ("factor",)
RULE_KEYS = (
    "name",
    "sensors",
    "condition",
    *THRESHOLD_KEYS,
    *DRIFT_KEYS,
    "for",
    "resolve_after",
    "webhooks",
)
CONDITIONS = ("below", "above", "above_capacity", "drift")
URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


@dataclass(frozen=True)
class RuleScope:
    """What rules are checked against: the model's sensors and horizon.

    Parameters
    ----------
    ids
        ``[n]`` sensor ids in the order of the forecast's sensor axis.
    latitude
        ``[n]`` degrees north, NaN where unknown.
    longitude
        ``[n]`` degrees east, NaN where unknown.
    horizon
        Steps the model forecasts (12 for Los-loop).
    step_minutes
        Minutes between two steps of the data (5 for Los-loop).
    capacity
        ``[n]`` each sensor's capacity, NaN where unknown, or None (the default) when the
        model's data have no capacities: ``above_capacity`` rules need them.
    """

    ids: tuple[str, ...]
    latitude: np.ndarray = field(repr=False)
    longitude: np.ndarray = field(repr=False)
    horizon: int
    step_minutes: float
    capacity: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(str(i) for i in self.ids))
        object.__setattr__(self, "latitude", np.asarray(self.latitude, dtype=np.float64))
        object.__setattr__(self, "longitude", np.asarray(self.longitude, dtype=np.float64))
        if self.capacity is not None:
            object.__setattr__(self, "capacity", np.asarray(self.capacity, dtype=np.float64))

    @classmethod
    def of(cls, sensors: Any, horizon: int, step: Any) -> RuleScope:
        """The scope of a model: ``sensors`` is a :class:`~urbanflow.data.dataset.Sensors`
        (``ids``, ``latitude``, ``longitude``, ``capacity``), ``step`` a ``pd.Timedelta`` or
        minutes.

        Parameters
        ----------
        sensors
            The model's sensors.
        horizon
            The model's horizon in steps.
        step
            The data's step: a timedelta or a number of minutes.
        """
        minutes = step.total_seconds() / 60 if hasattr(step, "total_seconds") else float(step)
        capacity = getattr(sensors, "capacity", None)
        return cls(
            sensors.ids, sensors.latitude, sensors.longitude, int(horizon), minutes, capacity
        )


@dataclass(frozen=True)
class ThresholdCondition:
    """Value below (or above) ``threshold`` within ``within_minutes`` with probability ≥ p.

    Parameters
    ----------
    kind
        ``"below"`` or ``"above"``.
    threshold
        The value, in the data's unit.
    within_minutes
        The window: the forecast steps ``k`` with ``k·step ≤ within_minutes``.
    probability
        ``p`` in (0, 1]: the rule holds for a sensor when the largest probability over the
        window's steps reaches it.
    steps
        How many steps the window covers (``floor(within_minutes / step)``, at least 1).
    """

    kind: Literal["below", "above"]
    threshold: float
    within_minutes: float
    probability: float
    steps: int


@dataclass(frozen=True)
class DriftCondition:
    """Live error above ``factor`` × validation error: the model no longer fits the city.

    Parameters
    ----------
    factor
        ``k`` > 0.
    """

    factor: float
    kind: Literal["drift"] = "drift"


@dataclass(frozen=True)
class CapacityCondition:
    """The reading reaches its sensor's capacity within ``within_minutes`` with probability
    ≥ p (occupancy data with capacities).

    Parameters
    ----------
    within_minutes
        The window: the forecast steps ``k`` with ``k·step ≤ within_minutes``.
    probability
        ``p`` in (0, 1]: the rule holds for a sensor when the largest probability over the
        window's steps reaches it.
    steps
        How many steps the window covers.
    """

    within_minutes: float
    probability: float
    steps: int
    kind: Literal["above_capacity"] = "above_capacity"


Condition = ThresholdCondition | CapacityCondition | DriftCondition


@dataclass(frozen=True)
class Rule:
    """One alert rule, validated against a :class:`RuleScope`.

    Parameters
    ----------
    name
        Unique name of the rule.
    sensor_ids
        The sensors it watches, in the model's order (never empty).
    condition
        A :class:`ThresholdCondition`, :class:`CapacityCondition` or :class:`DriftCondition`.
    for_issues
        ``for``: issues after the first on which the condition must still hold before the
        alert fires (0: it fires on the first issue where the condition holds).
    resolve_after
        Consecutive issues with the condition false before a firing alert resolves (≥ 1).
    webhooks
        http(s) URLs notified when an alert of this rule fires or resolves.
    sensors
        The ``sensors`` value as written (``"all"``, a tuple of ids, or a bbox tuple), for
        listing rules.
    """

    name: str
    sensor_ids: tuple[str, ...]
    condition: Condition
    for_issues: int = 0
    resolve_after: int = 1
    webhooks: tuple[str, ...] = ()
    sensors: str | tuple[str, ...] | tuple[float, float, float, float] = "all"

    def describe(self) -> dict[str, Any]:
        """The rule as JSON-ready values (for ``GET /v1/alerts/rules``)."""
        condition = self.condition
        out: dict[str, Any] = {"name": self.name, "condition": condition.kind}
        if isinstance(condition, ThresholdCondition):
            out |= {
                "threshold": condition.threshold,
                "within_minutes": condition.within_minutes,
                "probability": condition.probability,
            }
        elif isinstance(condition, CapacityCondition):
            out |= {
                "within_minutes": condition.within_minutes,
                "probability": condition.probability,
            }
        else:
            out["factor"] = condition.factor
        sensors: Any = self.sensors
        if isinstance(sensors, tuple) and sensors and isinstance(sensors[0], float):
            sensors = {"bbox": list(sensors)}
        elif isinstance(sensors, tuple):
            sensors = list(sensors)
        return out | {
            "sensors": sensors,
            "sensor_count": len(self.sensor_ids),
            "for": self.for_issues,
            "resolve_after": self.resolve_after,
            "webhooks": list(self.webhooks),
        }


def load_rules(path: str | Path, scope: RuleScope) -> tuple[Rule, ...]:
    """The rules of a TOML file, validated against ``scope``.

    Parameters
    ----------
    path
        The rules file.
    scope
        The model's sensors and horizon.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such rules file; give the path of a TOML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the rules file ({error}); fix the file") from None
    return parse_rules(text, scope, source=str(path))


def parse_rules(text: str, scope: RuleScope, source: str = "rules") -> tuple[Rule, ...]:
    """The rules of TOML ``text``, validated against ``scope``.

    Parameters
    ----------
    text
        TOML with ``[[rule]]`` tables.
    scope
        The model's sensors and horizon.
    source
        The file's name, for messages.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML ({error}); fix the file") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
            "write each rule as a [[rule]] table"
        )
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{source}: `rule` must be [[rule]] tables; write [[rule]] headers")
    if not tables:
        raise ConfigError(f"{source}: no rules; add at least one [[rule]] table")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        rule = _RuleReader(table, index, scope, source).read()
        if rule.name in seen:
            raise ConfigError(
                f"{source}: rule [{index}] `name`: {rule.name!r} is used by an earlier rule; "
                "give each rule a unique name"
            )
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)


class _RuleReader:
    """Reads one ``[[rule]]`` table; every error names the rule and the field."""

    def __init__(self, table: Mapping[str, Any], index: int, scope: RuleScope, source: str) -> None:
        self.table = table
        self.scope = scope
        name = table.get("name")
        label = f"rule {name!r}" if isinstance(name, str) and name.strip() else f"rule [{index}]"
        self.where = f"{source}: {label}"

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where} `{key}`: {problem}")

    def number(self, key: str, fix: str) -> float:
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"{value!r} is not a number; {fix}")
        if not math.isfinite(value):
            raise self.fail(key, f"{value!r} is not finite; {fix}")
        return float(value)

    def count(self, key: str, default: int, least: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise self.fail(key, f"{value!r} must be a whole number ≥ {least}")
        return value

    def read(self) -> Rule:
        unknown = sorted(set(self.table) - set(RULE_KEYS))
        if unknown:
            raise self.fail(unknown[0], f"unknown key; valid keys: {', '.join(RULE_KEYS)}")
        for key in ("name", "sensors", "condition"):
            if key not in self.table:
                raise self.fail(key, "missing; every rule needs name, sensors and condition")
        name = self.table["name"]
        if not isinstance(name, str) or not name.strip():
            raise self.fail("name", f"{name!r} must be a non-empty string")
        ids, sensors = self.sensors()
        condition = self.condition()
        if isinstance(condition, CapacityCondition):
            self.require_capacity(ids)
        return Rule(
            name=name,
            sensor_ids=ids,
            condition=condition,
            for_issues=self.count("for", 0, 0),
            resolve_after=self.count("resolve_after", 1, 1),
            webhooks=self.webhooks(),
            sensors=sensors,
        )

    def sensors(self) -> tuple[tuple[str, ...], Any]:
        value = self.table["sensors"]
        scope = self.scope
        if value == "all":
            return scope.ids, "all"
        if isinstance(value, list):
            if not value or not all(isinstance(v, (str, int)) for v in value):
                raise self.fail("sensors", 'give a non-empty list of sensor ids, "all" or a bbox')
            wanted = [str(v) for v in value]
            known = set(scope.ids)
            missing = [v for v in wanted if v not in known]
            if missing:
                raise self.fail(
                    "sensors", f"unknown sensor id(s) {', '.join(missing[:5])}; use the model's ids"
                )
            chosen = set(wanted)
            return tuple(i for i in scope.ids if i in chosen), tuple(wanted)
        if isinstance(value, dict):
            return self.bbox(value)
        raise self.fail(
            "sensors", f'{value!r}: give "all", a list of ids or {{bbox = [s, w, n, e]}}'
        )

    def bbox(self, value: Mapping[str, Any]) -> tuple[tuple[str, ...], Any]:
        box = value.get("bbox")
        if set(value) != {"bbox"} or not isinstance(box, list) or len(box) != 4:
            raise self.fail("sensors", "a box is {bbox = [south, west, north, east]} in degrees")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
            raise self.fail("sensors", f"bbox {box!r} must be four numbers (degrees)")
        south, west, north, east = (float(v) for v in box)
        if not (-90 <= south <= north <= 90 and -180 <= west <= east <= 180):
            raise self.fail(
                "sensors",
                f"bbox {box!r} must be [south, west, north, east] with south ≤ north and "
                "west ≤ east, in degrees",
            )
        lat, lon = self.scope.latitude, self.scope.longitude
        with np.errstate(invalid="ignore"):
            inside = (lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)
        if not inside.any():
            raise self.fail("sensors", f"bbox {box!r} contains no sensor of the model; widen it")
        ids = tuple(i for i, keep in zip(self.scope.ids, inside, strict=True) if keep)
        return ids, (south, west, north, east)

    def require_capacity(self, ids: tuple[str, ...]) -> None:
        capacity = self.scope.capacity
        if capacity is None:
            raise self.fail(
                "condition",
                '"above_capacity" needs sensor capacities, which this model lacks; train it on '
                'occupancy data (dataset.toml kind = "occupancy", a capacity column in '
                'sensors.csv) or use condition = "above" with a threshold',
            )
        index = {sensor: i for i, sensor in enumerate(self.scope.ids)}
        if not np.isfinite(capacity[[index[i] for i in ids]]).any():
            raise self.fail(
                "sensors",
                'none of the rule\'s sensors has a capacity, which "above_capacity" needs; '
                "choose sensors with one (sensors.csv `capacity`)",
            )

    def condition(self) -> Condition:
        kind = self.table["condition"]
        if kind not in CONDITIONS:
            raise self.fail("condition", f"{kind!r}: use one of {', '.join(CONDITIONS)}")
        wanted = {"drift": DRIFT_KEYS, "above_capacity": CAPACITY_KEYS}.get(kind, THRESHOLD_KEYS)
        for key in (*THRESHOLD_KEYS, *DRIFT_KEYS):
            if key in self.table and key not in wanted:
                raise self.fail(key, f"does not apply to condition = {kind!r}; remove it")
        for key in wanted:
            if key not in self.table:
                raise self.fail(key, f"missing; condition = {kind!r} needs {', '.join(wanted)}")
        if kind == "drift":
            factor = self.number("factor", "give k in live error > k × validation error")
            if factor <= 0:
                raise self.fail("factor", f"{factor:g} must be > 0, e.g. 1.5")
            return DriftCondition(factor)
        threshold = (
            self.number("threshold", "give the value in the data's unit")
            if kind != "above_capacity"
            else math.nan
        )
        probability = self.number("probability", "give p in (0, 1], e.g. 0.7")
        if not 0 < probability <= 1:
            raise self.fail("probability", f"{probability:g} must be in (0, 1], e.g. 0.7")
        minutes = self.number("within_minutes", "give minutes ahead, e.g. 30")
        step, horizon = self.scope.step_minutes, self.scope.horizon
        steps = math.floor(minutes / step + 1e-9)
        if steps < 1 or steps > horizon:
            raise self.fail(
                "within_minutes",
                f"{minutes:g} is outside the model's forecast: give {step:g} to "
                f"{horizon * step:g} minutes ({horizon} steps of {step:g})",
            )
        if kind == "above_capacity":
            return CapacityCondition(minutes, probability, steps)
        return ThresholdCondition(kind, threshold, minutes, probability, steps)

    def webhooks(self) -> tuple[str, ...]:
        value = self.table.get("webhooks", [])
        if not isinstance(value, list):
            raise self.fail("webhooks", 'give a list of URLs, e.g. ["https://host/hook"]')
        for url in value:
            if not isinstance(url, str) or not URL.match(url):
                raise self.fail("webhooks", f"{url!r} is not an http(s) URL")
        return tuple(value)
