"""Alert rules: a good file parses into frozen rules; every bad one is one line naming the rule,
the field and the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from urbanflow.errors import ConfigError
from urbanflow.serving.alerts.rules import (
    DriftCondition,
    RuleScope,
    ThresholdCondition,
    load_rules,
    parse_rules,
)

SCOPE = RuleScope(
    ids=("a", "b", "c", "d"),
    latitude=np.array([34.0, 34.1, 34.2, np.nan]),
    longitude=np.array([-118.0, -118.1, -118.2, np.nan]),
    horizon=12,
    step_minutes=5,
)

GOOD = """
[[rule]]
name = "jam"
sensors = "all"
condition = "below"
threshold = 40
within_minutes = 32
probability = 0.7
for = 2
resolve_after = 3
webhooks = ["https://ops.example.org/hook", "http://127.0.0.1:9000/x"]

[[rule]]
name = "flood"
sensors = ["c", "a"]
condition = "above"
threshold = 80.5
within_minutes = 60
probability = 1

[[rule]]
name = "box"
sensors = {bbox = [34.05, -118.15, 34.25, -118.05]}
condition = "drift"
factor = 1.5
"""


def test_good_file_parses_into_frozen_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(GOOD, encoding="utf-8")
    jam, flood, box = load_rules(path, SCOPE)
    assert jam.condition == ThresholdCondition("below", 40.0, 32.0, 0.7, steps=6)
    assert jam.sensor_ids == ("a", "b", "c", "d")
    assert (jam.for_issues, jam.resolve_after) == (2, 3)
    assert len(jam.webhooks) == 2
    assert flood.sensor_ids == ("a", "c")  # the model's order
    assert flood.condition.steps == 12 and flood.for_issues == 0 and flood.resolve_after == 1
    assert box.sensor_ids == ("b",)  # d has no coordinates: never inside a box
    assert box.condition == DriftCondition(1.5)
    assert box.describe()["sensors"] == {"bbox": [34.05, -118.15, 34.25, -118.05]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        jam.name = "other"  # type: ignore[misc]


def rule(**fields: object) -> str:
    base: dict[str, object] = {
        "name": "r1",
        "sensors": "all",
        "condition": "below",
        "threshold": 40,
        "within_minutes": 30,
        "probability": 0.5,
    }
    base.update(fields)
    lines = ["[[rule]]"]
    for key, value in base.items():
        if value is None:
            continue
        text = value if isinstance(value, str) and value.startswith("RAW:") else repr(value)
        text = str(text).removeprefix("RAW:").replace("'", '"')
        lines.append(f'"{key}" = {text}')
    return "\n".join(lines) + "\n"


BAD = [
    ("not toml", "[[rule]\nname=", "not valid TOML"),
    ("no rules", "", "no rules"),
    ("top key", "x = 1\n" + rule(), "unknown top-level key"),
    ("unknown key", rule(colour="red"), "rule 'r1' `colour`: unknown key"),
    ("missing name", rule(name=None), "rule [0] `name`: missing"),
    ("name type", rule(name=3), "rule [0] `name`"),
    ("sensors missing", rule(sensors=None), "`sensors`: missing"),
    ("unknown sensor", rule(sensors=["a", "zz"]), "`sensors`: unknown sensor id(s) zz"),
    ("empty list", rule(sensors="RAW:[]"), "`sensors`: give a non-empty list"),
    ("sensors type", rule(sensors=5), "`sensors`"),
    ("empty bbox", rule(sensors="RAW:{bbox = [0, 0, 1, 1]}"), "contains no sensor"),
    ("bad bbox", rule(sensors="RAW:{bbox = [35, 0, 34, 1]}"), "south ≤ north"),
    ("bbox arity", rule(sensors="RAW:{bbox = [35, 0]}"), "[south, west, north, east]"),
    ("condition", rule(condition="under"), "`condition`: 'under': use one of"),
    ("threshold type", rule(threshold="forty"), "`threshold`: 'forty' is not a number"),
    ("probability 0", rule(probability=0), "`probability`: 0 must be in (0, 1]"),
    ("probability >1", rule(probability=1.5), "`probability`"),
    ("probability missing", rule(probability=None), "`probability`: missing"),
    ("beyond horizon", rule(within_minutes=65), "`within_minutes`: 65 is outside"),
    ("under a step", rule(within_minutes=3), "`within_minutes`: 3 is outside"),
    ("factor on below", rule(factor=2), "`factor`: does not apply"),
    (
        "drift no factor",
        rule(condition="drift", threshold=None, within_minutes=None, probability=None),
        "`factor`: missing",
    ),
    ("drift threshold", rule(condition="drift", factor=2), "`threshold`: does not apply"),
    (
        "drift factor 0",
        rule(condition="drift", factor=0, threshold=None, within_minutes=None, probability=None),
        "`factor`: 0 must be > 0",
    ),
    ("for negative", rule(**{"for": -1}), "`for`: -1 must be a whole number ≥ 0"),
    ("for float", rule(**{"for": 1.5}), "`for`"),
    ("resolve 0", rule(resolve_after=0), "`resolve_after`: 0 must be a whole number ≥ 1"),
    ("webhook scheme", rule(webhooks=["ftp://x"]), "`webhooks`: 'ftp://x' is not an http(s)"),
    ("webhook type", rule(webhooks="https://x"), "`webhooks`: give a list"),
    ("duplicate", rule() + rule(), "rule [1] `name`: 'r1' is used by an earlier rule"),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_is_one_line_naming_rule_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, SCOPE, source="rules.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("rules.toml: ")
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such rules file"):
        load_rules(tmp_path / "nope.toml", SCOPE)


def test_scope_of_model_values() -> None:
    import pandas as pd

    from urbanflow.data.dataset import Sensors

    sensors = Sensors(("x", "y"), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    scope = RuleScope.of(sensors, 12, pd.Timedelta(minutes=15))
    assert scope.ids == ("x", "y") and scope.step_minutes == 15.0 and scope.horizon == 12
