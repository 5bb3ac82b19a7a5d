"""docs/serving.md's Alerts section stays true: its rules file parses against Los-loop, its
receiver's signature check accepts what the sender signs, and its body has the real keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from urbanflow.data.dataset import CityDataset
from urbanflow.errors import ConfigError
from urbanflow.serving.alerts.rules import RuleScope, ThresholdCondition, parse_rules
from urbanflow.serving.alerts.webhooks import signature

DOC = Path(__file__).resolve().parents[3] / "docs" / "serving.md"


def block(language: str) -> str:
    """The first ``language`` code block of the doc's Alerts section."""
    section = DOC.read_text(encoding="utf-8").split("\n## Alerts\n", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_documented_rules_file_parses(los_loop: CityDataset) -> None:
    scope = RuleScope.of(los_loop.sensors, horizon=12, step=5)
    jam, watch, drift = parse_rules(block("toml"), scope, source="docs/serving.md")
    assert isinstance(jam.condition, ThresholdCondition) and jam.condition.steps == 6
    assert 0 < len(jam.sensor_ids) < len(scope.ids)
    assert (jam.for_issues, jam.resolve_after) == (1, 3)
    assert watch.sensor_ids == ("773869", "767541")
    assert drift.sensor_ids == scope.ids
    wrong = block("toml").replace("within_minutes = 30 ", "within_minutes = 90 ", 1)
    with pytest.raises(ConfigError) as caught:
        parse_rules(wrong, scope, source="rules.toml")
    assert str(caught.value) == block("text").strip()  # the documented message


def test_documented_signature_check_accepts_the_sender_s() -> None:
    namespace: dict[str, object] = {}
    exec(block("python"), namespace)  # the receiver's few lines, as documented
    verified = namespace["verified"]
    body = b'{"rule":"jam-downtown"}'
    assert verified(body, signature(body, "k"), "k")  # type: ignore[operator]
    assert not verified(body + b" ", signature(body, "k"), "k")  # type: ignore[operator]
    assert not verified(body, None, "k")  # type: ignore[operator]


def test_documented_body_has_the_real_keys() -> None:
    from datetime import datetime, timezone

    from urbanflow.serving.alerts.lifecycle import Transition
    from urbanflow.serving.alerts.rules import Rule
    from urbanflow.serving.alerts.webhooks import notification_body

    rule = Rule("r", ("a",), ThresholdCondition("below", 40.0, 30.0, 0.7, 6))
    when = datetime(2012, 3, 7, 16, tzinfo=timezone.utc)
    real = json.loads(notification_body(rule, Transition("r", "a", "pending", "firing", when, 0.8)))
    assert set(json.loads(block("json"))) == set(real)
