"""The alert engine and its stores: rules of both kinds at one issue, all-or-nothing records,
state that survives a restart, and pruning of settled notifications."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pytest

from urbanflow.serving.alerts import (
    AlertEngine,
    DuckDBAlertStore,
    MemoryAlertStore,
    Notification,
    RuleScope,
    Transition,
    parse_rules,
)

T0 = datetime(2012, 3, 7, 16, 0, tzinfo=timezone.utc)
SCOPE = RuleScope(("a", "b", "c"), np.zeros(3), np.zeros(3), horizon=3, step_minutes=5)
RULES = parse_rules(
    """
[[rule]]
name = "slow"
sensors = ["a", "b"]
condition = "below"
threshold = 40
within_minutes = 10
probability = 0.5
webhooks = ["http://127.0.0.1:9/x"]

[[rule]]
name = "very-slow"
sensors = "all"
condition = "below"
threshold = 40
within_minutes = 15
probability = 0.9
for = 1

[[rule]]
name = "drift"
sensors = "all"
condition = "drift"
factor = 2
webhooks = ["http://127.0.0.1:9/x", "http://127.0.0.1:9/y"]
""",
    SCOPE,
)


def test_every_kind_of_rule_at_one_issue() -> None:
    calls: list[float] = []

    def below(threshold: float) -> np.ndarray:
        calls.append(threshold)
        return np.array([[0.6, 0.2, 0.95], [0.1, 0.1, 0.95], [0.95, 0.1, 0.95]])

    store = MemoryAlertStore()
    engine = AlertEngine(RULES, SCOPE.ids, store)
    made = engine.on_issue(T0, below, live_mae=[1.0, 5.0, np.nan], validation_mae=[1.0, 2.0, 2.0])
    assert calls == [40.0]  # rules with the same threshold share one call
    assert [(t.rule, t.sensor_id, t.to_state) for t in made] == [
        ("slow", "a", "firing"),
        ("very-slow", "a", "pending"),  # step 3 (15 min) reaches 0.95
        ("very-slow", "c", "pending"),
        ("drift", "b", "firing"),
    ]
    assert made[-1].value == pytest.approx(2.5)
    assert len(store.outbox) == 3  # slow/a to one URL, drift/b to two
    assert {a["state"] for a in engine.alerts("pending")} == {"pending"}
    assert len(engine.alerts()) == 4


def test_rules_without_their_inputs_are_skipped() -> None:
    engine = AlertEngine(RULES, SCOPE.ids)
    assert engine.on_issue(T0) == []
    made = engine.on_issue(T0 + timedelta(minutes=5), live_mae=[9, 9, 9], validation_mae=[1] * 3)
    assert {t.rule for t in made} == {"drift"}
    with pytest.raises(TypeError, match="callable"):
        engine.on_issue(T0 + timedelta(minutes=10), np.zeros((3, 3)))  # type: ignore[arg-type]


def test_a_failed_record_stores_nothing_and_keeps_the_state(tmp_path: Path) -> None:
    store = DuckDBAlertStore(duckdb.connect(str(tmp_path / "store.duckdb")))
    transition = Transition("slow", "a", "inactive", "firing", T0, 0.7)
    broken = Notification("k", "http://x", None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(duckdb.Error):
        store.record([transition], [broken])
    assert store.transitions() == []
    engine = AlertEngine(RULES, SCOPE.ids, store)
    store.record = _failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        engine.on_issue(T0, lambda t: np.ones((3, 3)))
    assert engine.alerts() == []  # nothing stored, nothing changed


def _failing(*args: object) -> None:
    raise RuntimeError("disk full")


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    connection = duckdb.connect(str(path))
    engine = AlertEngine(RULES, SCOPE.ids, DuckDBAlertStore(connection))
    engine.on_issue(T0, lambda t: np.full((3, 3), 0.95))
    before = engine.alerts()
    connection.close()

    connection = duckdb.connect(str(path))
    again = AlertEngine(RULES, SCOPE.ids, DuckDBAlertStore(connection))
    assert again.alerts() == before
    made = again.on_issue(T0 + timedelta(minutes=5), lambda t: np.full((3, 3), 0.95))
    assert {(t.rule, t.from_state, t.to_state) for t in made} == {
        ("very-slow", "pending", "firing")  # the pending count continued across the restart
    }
    fewer = [replace(RULES[1], sensor_ids=("a",)), *RULES[::2]]
    kept = AlertEngine(fewer, SCOPE.ids, again.store).alerts()
    assert {a["sensor_id"] for a in kept if a["rule"] == "very-slow"} == {"a"}  # b, c forgotten
    connection.close()


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_prune_forgets_settled_notifications_only(kind: str) -> None:
    store = MemoryAlertStore() if kind == "memory" else DuckDBAlertStore(duckdb.connect())
    notes = [Notification(f"k{i}", "http://x", b"{}", created_at=float(i)) for i in range(4)]
    store.record([], notes)
    store.mark_delivered("k0", "http://x", 1, 5.0)
    store.give_up("k1", "http://x", 8, 5.0, "HTTP 500")
    store.mark_delivered("k3", "http://x", 1, 5.0)
    assert store.prune_outbox(before=3.0) == 2  # k3 is settled but newer; k2 is still queued
    assert [n.key for n in store.due(now=10.0)] == ["k2"]
    assert store.prune_outbox(before=10.0) == 1
