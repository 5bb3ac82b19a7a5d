"""Conditions at one issue, and the alert lifecycle: every path, replayable."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from urbanflow.models.conformal import Calibration, probability_below
from urbanflow.serving.alerts.conditions import evaluate_drift, evaluate_threshold
from urbanflow.serving.alerts.lifecycle import RuleState, Transition, step
from urbanflow.serving.alerts.rules import DriftCondition, Rule, ThresholdCondition

T0 = datetime(2012, 3, 7, 16, 0, tzinfo=timezone.utc)
IDS = ("a", "b", "c")


def at(i: int) -> datetime:
    return T0 + timedelta(minutes=5 * i)


def threshold_rule(kind: str = "below", steps: int = 2, p: float = 0.6) -> Rule:
    condition = ThresholdCondition(kind, 40.0, steps * 5.0, p, steps)  # type: ignore[arg-type]
    return Rule("r", ("a", "b"), condition)


def test_below_takes_the_largest_probability_within_the_window() -> None:
    below = np.array([[0.1, 0.5, np.nan], [0.7, 0.2, np.nan], [0.99, 0.99, np.nan]])  # [h n]
    result = evaluate_threshold(threshold_rule(), IDS, below)
    assert result.holds == {"a": True, "b": False}  # step 3 is beyond 10 minutes; c unwatched
    assert result.values == pytest.approx({"a": 0.7, "b": 0.5})
    above = evaluate_threshold(threshold_rule("above", steps=1), IDS, lambda t: below)
    assert above.holds == {"a": True, "b": False} and above.values["a"] == pytest.approx(0.9)


def test_sensor_without_forecast_is_left_out() -> None:
    rule = Rule("r", IDS, threshold_rule().condition)
    result = evaluate_threshold(rule, IDS, np.array([[0.9, np.nan, 0.1], [0.9, np.nan, 0.1]]))
    assert set(result.holds) == {"a", "c"}


def test_conformal_probabilities_feed_a_rule() -> None:
    scores = np.tile(np.linspace(-2, 2, 101), (3, 1))  # symmetric residual scores
    calibration = Calibration(scores=scores, scale=np.ones((3, 2)), cutoff=0, half_life_steps=3)
    forecast = np.array([[45.0, 60.0], [39.0, 60.0], [50.0, 60.0]])

    def below(threshold: float) -> np.ndarray:
        return probability_below(calibration, calibration.scale, forecast, threshold)

    result = evaluate_threshold(threshold_rule(steps=3, p=0.6), ("a", "b"), below)
    assert result.holds == {"a": True, "b": False}  # step 2 forecasts 39 < 40


def test_drift_compares_live_with_validation_error() -> None:
    rule = Rule("d", IDS, DriftCondition(1.5))
    result = evaluate_drift(rule, IDS, [3.1, 2.9, np.nan], [2.0, 2.0, 2.0])
    assert result.holds == {"a": True, "b": False}
    assert result.values["a"] == pytest.approx(1.55)


def run(state: RuleState, pattern: str, sensor: str = "a") -> tuple[RuleState, list[Transition]]:
    """Step through issues at(0), at(1), …: '1' holds, '0' clears, '.' no data."""
    records: list[Transition] = []
    for i, symbol in enumerate(pattern):
        holds = {} if symbol == "." else {sensor: symbol == "1"}
        state, made = step(state, holds, at(i), {sensor: float(i)})
        records += made
    return state, records


def path(records: list[Transition]) -> list[str]:
    return [f"{r.from_state}>{r.to_state}" for r in records]


def test_for_zero_fires_on_the_first_issue_and_resolves_after_one_clear() -> None:
    state, records = run(RuleState("r"), "0110")
    assert path(records) == ["inactive>firing", "firing>resolved"]
    assert records[0].issued_at == at(1) and records[0].value == 1.0
    assert records[1].issued_at == at(3) and records[1].value == 3.0
    assert state.state_of("a") == "resolved"
    assert [r.notifies for r in records] == [True, True]


def test_pending_fires_after_for_more_issues() -> None:
    state, records = run(RuleState("r", for_issues=2), "1.11")
    assert path(records) == ["inactive>pending", "pending>firing"]
    assert records[1].issued_at == at(3)  # the third holding issue; '.' neither holds nor clears
    assert state.state_of("a") == "firing"


def test_pending_that_clears_is_dropped_without_notification() -> None:
    state, records = run(RuleState("r", for_issues=2), "110")
    assert path(records) == ["inactive>pending", "pending>inactive"]
    assert not records[1].notifies
    assert state.state_of("a") == "inactive" and "a" not in state.alerts


def test_resolve_after_needs_consecutive_clear_issues() -> None:
    _state, records = run(RuleState("r", resolve_after=3), "1001001000")
    assert path(records) == ["inactive>firing", "firing>resolved"]
    assert records[1].issued_at == at(9)  # clears at 7, 8, 9 after the hold at 6 reset the count


def test_resolved_alert_can_fire_again_at_once_when_for_is_zero() -> None:
    _state, records = run(RuleState("r"), "1011")
    assert path(records) == ["inactive>firing", "firing>resolved", "resolved>firing"]
    assert records[2].notifies


def test_resolved_alert_can_go_pending_again() -> None:
    _state, records = run(RuleState("r", for_issues=1), "110111")
    assert path(records) == [
        "inactive>pending",
        "pending>firing",
        "firing>resolved",
        "resolved>pending",
        "pending>firing",
    ]


def test_replay_is_deterministic_and_state_is_immutable() -> None:
    start = RuleState("r", for_issues=1, resolve_after=2)
    first = run(start, "1101100111")
    second = run(start, "1101100111")
    assert first == second
    assert start.alerts == {}


def test_issues_go_in_time_order() -> None:
    state, _ = step(RuleState("r"), {"a": True}, at(5))
    with pytest.raises(ValueError, match="not after the last one"):
        step(state, {"a": True}, at(5))


def test_sensors_are_independent() -> None:
    state = RuleState("r", for_issues=1)
    state, records = step(state, {"a": True, "b": True}, at(0))
    state, records2 = step(state, {"a": True, "b": False}, at(1))
    assert path(records + records2) == [
        "inactive>pending",
        "inactive>pending",
        "pending>firing",
        "pending>inactive",
    ]
    assert [r.sensor_id for r in records2] == ["a", "b"]
