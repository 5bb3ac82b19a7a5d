"""The ``above_capacity`` condition: parsed against a scope with capacities, refused without
them in one line, judged on the window's largest probability, and sent like below/above."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from urbanflow.errors import ConfigError
from urbanflow.serving.alerts import (
    AlertEngine,
    CapacityCondition,
    RuleScope,
    evaluate_capacity,
    notification_body,
    parse_rules,
)

T0 = datetime(2026, 1, 20, 8, 0, tzinfo=timezone.utc)
IDS = ("a", "b", "c")
WITH = RuleScope(IDS, np.zeros(3), np.zeros(3), 6, 60.0, np.array([20.0, 30.0, np.nan]))
WITHOUT = RuleScope(IDS, np.zeros(3), np.zeros(3), 6, 60.0)
RULE = """
[[rule]]
name = "full"
sensors = "all"
condition = "above_capacity"
within_minutes = 120
probability = 0.6
webhooks = ["http://127.0.0.1:9/x"]
"""


def test_the_rule_parses_into_a_capacity_condition() -> None:
    (rule,) = parse_rules(RULE, WITH)
    assert rule.condition == CapacityCondition(120.0, 0.6, 2)
    described = rule.describe()
    assert described["condition"] == "above_capacity"
    assert described["within_minutes"] == 120 and described["probability"] == 0.6
    assert "threshold" not in described and "factor" not in described


def test_a_model_without_capacities_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_rules(RULE, WITHOUT, source="rules.toml")
    message = str(refused.value)
    assert message.startswith("rules.toml: rule 'full' `condition`: \"above_capacity\" needs")
    assert "\n" not in message and 'kind = "occupancy"' in message


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (("within_minutes = 120", "within_minutes = 120\nthreshold = 5"), "threshold", "remove"),
        (("probability = 0.6\n", ""), "probability", "missing"),
        (('sensors = "all"', 'sensors = ["c"]'), "sensors", "none of the rule's sensors"),
        (("within_minutes = 120", "within_minutes = 480"), "within_minutes", "60 to 360"),
    ],
)
def test_bad_capacity_rules_name_the_field(edit: tuple[str, str], field: str, words: str) -> None:
    with pytest.raises(ConfigError, match=f"`{field}`: .*{words}"):
        parse_rules(RULE.replace(*edit), WITH)


def test_the_window_s_largest_probability_decides() -> None:
    (rule,) = parse_rules(RULE, WITH)
    above = np.array(
        [
            [0.1, 0.7, np.nan],  # step 1
            [0.5, 0.2, np.nan],  # step 2
            [0.9, 0.9, np.nan],  # step 3: outside the two-step window
        ]
    )
    evaluation = evaluate_capacity(rule, IDS, above)
    assert evaluation.holds == {"a": False, "b": True}  # c has no capacity: not judged
    assert evaluation.values == {"a": 0.5, "b": 0.7}


def test_the_engine_fires_and_the_webhook_carries_the_probability() -> None:
    (rule,) = parse_rules(RULE, WITH)
    engine = AlertEngine([rule], IDS)
    assert engine.on_issue(T0) == []  # no probabilities: the rule is skipped
    above = np.array([[0.8, 0.1, np.nan]] * 6)
    (fired,) = engine.on_issue(T0.replace(hour=9), probability_above_capacity=above)
    assert (fired.sensor_id, fired.to_state, fired.value) == ("a", "firing", 0.8)
    body = json.loads(notification_body(rule, fired))
    assert body["condition"] == "above_capacity" and body["threshold"] is None
    assert body["probability"] == 0.8 and body["min_probability"] == 0.6
    assert body["within_minutes"] == 120 and body["factor"] is None


def test_the_documented_capacity_rule_and_refusal_stay_true() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[3] / "docs" / "serving.md"
    section = doc.read_text(encoding="utf-8").split("\n### Above capacity\n", 1)[1]
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    text = re.search(r"```text\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    (rule,) = parse_rules(toml, RuleScope(IDS, np.zeros(3), np.zeros(3), 3, 60.0, WITH.capacity))
    assert rule.condition == CapacityCondition(180.0, 0.6, 3)
    with pytest.raises(ConfigError) as refused:
        parse_rules(toml, RuleScope(IDS, np.zeros(3), np.zeros(3), 3, 60.0), source="rules.toml")
    assert str(refused.value) == text.strip()
