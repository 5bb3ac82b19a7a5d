"""The life of an alert, per rule and sensor: a pure, replayable state machine.

States and transitions, one issue at a time (``for`` = ``for_issues``, ``r`` = ``resolve_after``)::

    inactive/resolved --holds--> pending          (for ≥ 1)
    inactive/resolved --holds--> firing           (for = 0: fires on the first issue)
    pending  --holds, the (for+1)-th consecutive issue--> firing
    pending  --clears--> inactive                 (dropped: recorded, never notified)
    firing   --clear on r consecutive issues--> resolved
    firing   --holds--> firing                    (the count of clear issues restarts)

So with ``for = 2`` an alert is pending at the first issue where its condition holds and fires
at the third consecutive one. A sensor absent from an issue's ``holds`` (no forecast, nothing
scored) keeps its state and counts: that issue neither holds nor clears for it.

:func:`step` returns a new state and the transitions, each an audit record; the same issues in
the same order always give the same states and records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Literal

State = Literal["inactive", "pending", "firing", "resolved"]
STATES: tuple[State, ...] = ("inactive", "pending", "firing", "resolved")


@dataclass(frozen=True)
class SensorAlert:
    """One rule's alert at one sensor.

    Parameters
    ----------
    state
        ``inactive``, ``pending``, ``firing`` or ``resolved``.
    held
        Consecutive issues the condition has held in this pending/firing run.
    cleared
        Consecutive issues the condition has been false while firing.
    since
        Issue time of the transition into ``state`` (None when inactive).
    """

    state: State = "inactive"
    held: int = 0
    cleared: int = 0
    since: datetime | None = None


INACTIVE = SensorAlert()


@dataclass(frozen=True)
class Transition:
    """An audit record: one alert changed state at one issue.

    Parameters
    ----------
    rule
        The rule's name.
    sensor_id
        The sensor.
    from_state
        The state before.
    to_state
        The state after.
    issued_at
        The issue time of the forecast that drove it (UTC).
    value
        The value that drove it: the window's largest probability, or the error ratio for
        drift; None when unknown.
    """

    rule: str
    sensor_id: str
    from_state: State
    to_state: State
    issued_at: datetime
    value: float | None = None

    @property
    def notifies(self) -> bool:
        """Whether webhooks hear of it: transitions to ``firing`` or ``resolved`` only."""
        return self.to_state in ("firing", "resolved")


@dataclass(frozen=True)
class RuleState:
    """Every sensor's alert of one rule, and the last issue it saw.

    Parameters
    ----------
    rule
        The rule's name.
    for_issues
        The rule's ``for``.
    resolve_after
        The rule's ``resolve_after``.
    alerts
        ``sensor id → SensorAlert`` for each sensor not inactive.
    last_issued_at
        The latest issue stepped through, None before the first.
    """

    rule: str
    for_issues: int = 0
    resolve_after: int = 1
    alerts: Mapping[str, SensorAlert] = field(default_factory=dict)
    last_issued_at: datetime | None = None

    def state_of(self, sensor_id: str) -> State:
        """The state of one sensor's alert.

        Parameters
        ----------
        sensor_id
            The sensor.
        """
        return self.alerts.get(sensor_id, INACTIVE).state


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken as UTC.

    Parameters
    ----------
    moment
        A datetime (``pd.Timestamp`` is one).
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def step(
    state: RuleState,
    holds: Mapping[str, bool],
    issued_at: datetime,
    values: Mapping[str, float] | None = None,
) -> tuple[RuleState, list[Transition]]:
    """The rule's state after one issue, and the transitions it made (sorted by sensor).

    Parameters
    ----------
    state
        The state before the issue.
    holds
        ``sensor id → whether the condition holds`` at this issue; absent sensors are skipped.
    issued_at
        The issue time; later than ``state.last_issued_at`` (replays go in time order).
    values
        ``sensor id → the value that decided it``, copied into the transitions.
    """
    when = utc(issued_at)
    if state.last_issued_at is not None and when <= state.last_issued_at:
        raise ValueError(
            f"rule {state.rule!r}: issue {when.isoformat()} is not after the last one "
            f"({state.last_issued_at.isoformat()}); step issues in time order"
        )
    values = values or {}
    alerts = dict(state.alerts)
    transitions: list[Transition] = []
    for sensor in sorted(holds):
        before = alerts.get(sensor, INACTIVE)
        after = _next(before, bool(holds[sensor]), state.for_issues, state.resolve_after, when)
        if after.state != before.state:
            transitions.append(
                Transition(state.rule, sensor, before.state, after.state, when, values.get(sensor))
            )
        if after.state == "inactive":
            alerts.pop(sensor, None)
        else:
            alerts[sensor] = after
    return replace(state, alerts=alerts, last_issued_at=when), transitions


def _next(
    alert: SensorAlert, holds: bool, for_issues: int, resolve_after: int, when: datetime
) -> SensorAlert:
    if alert.state in ("inactive", "resolved"):
        if not holds:
            return alert
        if for_issues == 0:
            return SensorAlert("firing", held=1, since=when)
        return SensorAlert("pending", held=1, since=when)
    if alert.state == "pending":
        if not holds:
            return INACTIVE
        if alert.held + 1 > for_issues:
            return SensorAlert("firing", held=alert.held + 1, since=when)
        return replace(alert, held=alert.held + 1)
    # firing
    if holds:
        return replace(alert, held=alert.held + 1, cleared=0)
    if alert.cleared + 1 >= resolve_after:
        return SensorAlert("resolved", since=when)
    return replace(alert, cleared=alert.cleared + 1)
