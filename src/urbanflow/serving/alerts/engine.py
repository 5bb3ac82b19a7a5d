"""The alert engine: rules, their lifecycle state, the audit trail and the outbox together.

The service calls :meth:`AlertEngine.on_issue` once per issued forecast; everything else
(evaluation, lifecycle, audit records, notifications) happens there, and delivery happens in
the sender's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from urbanflow.serving.alerts.conditions import (
    ProbabilityBelow,
    evaluate_capacity,
    evaluate_drift,
    evaluate_threshold,
)
from urbanflow.serving.alerts.lifecycle import RuleState, Transition, step, utc
from urbanflow.serving.alerts.outbox import AlertStore, MemoryAlertStore, Notification
from urbanflow.serving.alerts.rules import CapacityCondition, Rule, ThresholdCondition
from urbanflow.serving.alerts.webhooks import WebhookSender, notifications_for


class AlertEngine:
    """Evaluates every rule at each issue, steps its lifecycle, records and notifies.

    State is restored from ``store`` when it holds any (a restarted service continues its
    pending and firing alerts, by rule name; ``for`` and ``resolve_after`` come from the rules
    given, and alerts of sensors a rule no longer watches are forgotten without a
    notification); an issue not later than a rule's last one is skipped for that rule, so
    re-issuing the same forecast after a restart changes nothing.

    Parameters
    ----------
    rules
        The rules, e.g. from :func:`~urbanflow.serving.alerts.rules.load_rules`.
    sensor_ids
        ``[n]`` ids of the sensor axis of the arrays given to :meth:`on_issue`.
    store
        Where transitions, states and the outbox go (default: in memory).
    sender
        A started :class:`WebhookSender` on the same store, woken after each issue (or None).
    clock
        Unix seconds now, the time notifications are queued at.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        sensor_ids: Sequence[str],
        store: AlertStore | None = None,
        sender: WebhookSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = tuple(rules)
        self.sensor_ids = tuple(str(i) for i in sensor_ids)
        self.store: AlertStore = store if store is not None else MemoryAlertStore()
        self.sender = sender
        self.clock = clock
        stored = self.store.load_states()
        self.states = {}
        for rule in self.rules:
            state = stored.get(rule.name, RuleState(rule.name))
            watched = set(rule.sensor_ids)  # a rule edited to fewer sensors forgets the others
            alerts = {s: a for s, a in state.alerts.items() if s in watched}
            self.states[rule.name] = replace(
                state,
                for_issues=rule.for_issues,
                resolve_after=rule.resolve_after,
                alerts=alerts,
            )

    def on_issue(
        self,
        issued_at: datetime,
        probability_below: ProbabilityBelow | None = None,
        live_mae: np.ndarray | Sequence[float] | None = None,
        validation_mae: np.ndarray | Sequence[float] | None = None,
        probability_above_capacity: np.ndarray | None = None,
    ) -> list[Transition]:
        """Take in one issued forecast; the transitions it caused (already stored).

        Parameters
        ----------
        issued_at
            The forecast's issue time (data time, not the wall clock).
        probability_below
            A callable ``threshold -> [h n]`` probability below it (conformal or learned);
            None skips ``below``/``above`` rules at this issue (no intervals).
        live_mae
            ``[n]`` live MAE per sensor pooled over steps, NaN where nothing was scored;
            None skips ``drift`` rules.
        validation_mae
            ``[n]`` validation MAE per sensor pooled over the same steps.
        probability_above_capacity
            ``[h n]`` probability that each target reaches its sensor's capacity (NaN where
            unknown); None skips ``above_capacity`` rules.
        """
        when = utc(issued_at)
        if probability_below is not None and not callable(probability_below):
            raise TypeError("probability_below must be a callable: threshold -> [h n]")
        cache: dict[float, np.ndarray] = {}

        def below(threshold: float) -> np.ndarray:
            if threshold not in cache:  # rules that share a threshold share its probabilities
                cache[threshold] = np.asarray(probability_below(threshold), dtype=np.float64)
            return cache[threshold]

        states = dict(self.states)
        transitions: list[Transition] = []
        notifications: list[Notification] = []
        now = self.clock()
        for rule in self.rules:
            state = states[rule.name]
            if state.last_issued_at is not None and when <= state.last_issued_at:
                continue
            if isinstance(rule.condition, ThresholdCondition):
                if probability_below is None:
                    continue
                evaluation = evaluate_threshold(rule, self.sensor_ids, below)
            elif isinstance(rule.condition, CapacityCondition):
                if probability_above_capacity is None:
                    continue
                evaluation = evaluate_capacity(rule, self.sensor_ids, probability_above_capacity)
            else:
                if live_mae is None or validation_mae is None:
                    continue
                evaluation = evaluate_drift(rule, self.sensor_ids, live_mae, validation_mae)
            states[rule.name], made = step(state, evaluation.holds, when, evaluation.values)
            transitions += made
            notifications += notifications_for(rule, made, now)
        changed = {name: s for name, s in states.items() if s is not self.states[name]}
        self.store.record(transitions, notifications, changed)
        self.states = states
        if notifications and self.sender is not None:
            self.sender.wake()
        return transitions

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        """The current alerts (not inactive), optionally only those in ``state``: rule,
        sensor_id, state and since (ISO, UTC).

        Parameters
        ----------
        state
            ``pending``, ``firing`` or ``resolved``; None for all.
        """
        out = []
        for name, rule_state in self.states.items():
            for sensor, alert in sorted(rule_state.alerts.items()):
                if state in (None, alert.state):
                    since = alert.since.isoformat() if alert.since else None
                    out.append(
                        {"rule": name, "sensor_id": sensor, "state": alert.state, "since": since}
                    )
        return out
