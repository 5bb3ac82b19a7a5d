"""Alerts (issue 9, §3): rules over issued forecasts, their lifecycle, and signed webhooks.

The library core; the service wires it in. What a caller does::

    from urbanflow.serving.alerts import (
        AlertEngine, DuckDBAlertStore, RuleScope, WebhookSender, load_rules,
        secret_from_environment,
    )

    # at start-up, before serving (a ConfigError is the one-line message; exit 2)
    scope = RuleScope.of(model.sensors, model.horizon, model.step)   # step: Timedelta or minutes
    rules = load_rules("rules.toml", scope)
    alert_store = DuckDBAlertStore(store_connection)                 # creates alert_* tables
    sender = WebhookSender(alert_store, secret_from_environment()).start()
    engine = AlertEngine(rules, scope.ids, alert_store, sender)      # restores stored state

    # once per issued forecast, in issue order (data time, never the wall clock)
    transitions = engine.on_issue(
        issued_at,                                                   # tz-aware datetime
        probability_below=lambda t: conformal.probability_below(
            calibration, online.scale, forecast, t),                 # threshold -> [h n]
        live_mae=live_mae, validation_mae=validation_mae,            # [n] each, or None
        probability_above_capacity=above,                            # [h n], or None
    )

    # for the API
    [rule.describe() for rule in rules]                  # GET /v1/alerts/rules
    engine.alerts(state="firing")                        # GET /v1/alerts?state=firing
    alert_store.transitions(to_state="resolved")         # the audit trail, newest first

    # at shutdown, before closing the store's connection: undelivered notifications stay
    # in the outbox for the next start
    sender.stop()
    alert_store.close()

``on_issue`` evaluates every rule, steps each rule's lifecycle, and stores the transitions,
the new state and the webhook notifications in one DuckDB transaction; it never waits for a
receiver. A ``below``/``above`` rule is skipped at an issue without ``probability_below`` (a
bundle without intervals), an ``above_capacity`` rule at one without
``probability_above_capacity`` (``urbanflow.serving.capacity``), a ``drift`` rule at one
without ``live_mae``. ``on_issue`` should
be called off the request path (issuing never delays the POST that completed a step).

Modules: :mod:`.rules` (TOML file, validation), :mod:`.conditions` (a condition on plain
arrays), :mod:`.lifecycle` (pure state machine, audit records), :mod:`.outbox` (storage
protocol, memory store), :mod:`.duckdb_store` (DuckDB store), :mod:`.webhooks` (body,
signature, sender), :mod:`.engine` (all of it per issue). ``docs/serving.md`` ("Alerts") is
the user's guide.
"""

from urbanflow.serving.alerts.conditions import (
    Evaluation,
    evaluate_capacity,
    evaluate_drift,
    evaluate_threshold,
)
from urbanflow.serving.alerts.duckdb_store import DuckDBAlertStore
from urbanflow.serving.alerts.engine import AlertEngine
from urbanflow.serving.alerts.lifecycle import RuleState, SensorAlert, Transition, step
from urbanflow.serving.alerts.outbox import AlertStore, MemoryAlertStore, Notification
from urbanflow.serving.alerts.rules import (
    CapacityCondition,
    DriftCondition,
    Rule,
    RuleScope,
    ThresholdCondition,
    load_rules,
    parse_rules,
)
from urbanflow.serving.alerts.webhooks import (
    WebhookSender,
    idempotency_key,
    notification_body,
    secret_from_environment,
    signature,
)

__all__ = [
    "AlertEngine",
    "AlertStore",
    "CapacityCondition",
    "DriftCondition",
    "DuckDBAlertStore",
    "Evaluation",
    "MemoryAlertStore",
    "Notification",
    "Rule",
    "RuleScope",
    "RuleState",
    "SensorAlert",
    "ThresholdCondition",
    "Transition",
    "WebhookSender",
    "evaluate_capacity",
    "evaluate_drift",
    "evaluate_threshold",
    "idempotency_key",
    "load_rules",
    "notification_body",
    "parse_rules",
    "secret_from_environment",
    "signature",
    "step",
]
