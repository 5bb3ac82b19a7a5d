"""Webhooks against a real receiver on 127.0.0.1 that fails at first: signatures, retries with
back-off, idempotency keys, and resumption from the DuckDB outbox after a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import numpy as np
import pytest

from urbanflow.serving.alerts.duckdb_store import DuckDBAlertStore
from urbanflow.serving.alerts.engine import AlertEngine
from urbanflow.serving.alerts.outbox import MemoryAlertStore, Notification
from urbanflow.serving.alerts.rules import Rule, ThresholdCondition
from urbanflow.serving.alerts.webhooks import (
    SIGNATURE_HEADER,
    WebhookSender,
    idempotency_key,
    notification_body,
    retry_delay,
    signature,
)

SECRET = "s3cret"
IDS = ("a", "b")
T0 = datetime(2012, 3, 7, 16, 0, tzinfo=timezone.utc)


class Receiver:
    """An HTTP server that answers 500 to its first ``failures`` requests, then 200."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.failures = failures
        self.delay = delay
        self.requests: list[tuple[float, dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                status = 500 if len(receiver.requests) < receiver.failures else 200
                receiver.requests.append((time.monotonic(), dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[bytes]:
        return [body for _, _, body, status in self.requests if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=3)
    yield server
    server.close()


def jam_rule(url: str, for_issues: int = 0) -> Rule:
    condition = ThresholdCondition("below", 40.0, 10.0, 0.6, steps=2)
    return Rule("jam", IDS, condition, for_issues=for_issues, webhooks=(url,))


def below(a: float, b: float = 0.0) -> Callable[[float], np.ndarray]:
    """``threshold -> [h n]`` probabilities below it: sensor a at ``a``, sensor b at ``b``."""
    return lambda threshold: np.array([[a, b], [a, b], [a, b]])


def wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_body_is_signed_and_carries_a_stable_key(receiver: Receiver) -> None:
    receiver.failures = 0
    store = MemoryAlertStore()
    sender = WebhookSender(store, SECRET, base_delay=0.01)
    engine = AlertEngine([jam_rule(receiver.url)], IDS, store, sender)
    made = engine.on_issue(T0, below(0.8))
    assert [(t.sensor_id, t.to_state) for t in made] == [("a", "firing")]
    assert sender.deliver_due() == 1
    ((_, headers, body, _),) = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    payload = json.loads(body)
    assert payload | {"idempotency_key": "-"} == {
        "idempotency_key": "-",
        "rule": "jam",
        "sensor_id": "a",
        "state": "firing",
        "previous_state": "inactive",
        "issued_at": "2012-03-07T16:00:00Z",
        "condition": "below",
        "threshold": 40.0,
        "within_minutes": 10.0,
        "min_probability": 0.6,
        "probability": 0.8,
        "factor": None,
        "error_ratio": None,
    }
    local = T0.astimezone(timezone(timedelta(hours=-8)))
    assert payload["idempotency_key"] == idempotency_key("jam", "a", "firing", local)
    assert headers["X-Urbanflow-Idempotency-Key"] == payload["idempotency_key"]
    again = notification_body(jam_rule(receiver.url), made[0])
    assert again == body  # the same transition gives the same bytes, key included
    other = idempotency_key("jam", "a", "resolved", T0)
    assert other != payload["idempotency_key"]


def test_unsigned_when_no_secret(receiver: Receiver) -> None:
    receiver.failures = 0
    store = MemoryAlertStore()
    sender = WebhookSender(store, None)
    AlertEngine([jam_rule(receiver.url)], IDS, store, sender).on_issue(T0, below(0.9))
    sender.deliver_due()
    assert SIGNATURE_HEADER not in receiver.requests[0][1]


def test_pending_that_clears_sends_nothing(receiver: Receiver) -> None:
    store = MemoryAlertStore()
    engine = AlertEngine([jam_rule(receiver.url, for_issues=1)], IDS, store)
    engine.on_issue(T0, below(0.9))
    engine.on_issue(T0 + timedelta(minutes=5), below(0.1))
    assert [t.to_state for t in store.transitions()] == ["inactive", "pending"]
    assert store.outbox == {}


def test_retries_back_off_until_the_receiver_accepts(receiver: Receiver) -> None:
    store = MemoryAlertStore()
    sender = WebhookSender(store, SECRET, base_delay=0.1, poll=0.05).start()
    try:
        engine = AlertEngine([jam_rule(receiver.url)], IDS, store, sender)
        engine.on_issue(T0, below(0.9))
        wait_for(lambda: receiver.accepted())
    finally:
        sender.stop()
    times = [t for t, *_ in receiver.requests]
    assert [status for *_, status in receiver.requests] == [500, 500, 500, 200]
    assert len({body for _, _, body, _ in receiver.requests}) == 1  # the same body each time
    gaps = np.diff(times)
    assert all(gap >= 0.9 * 0.1 * 2**i for i, gap in enumerate(gaps)), gaps  # 0.1, 0.2, 0.4 s
    (((_, url), note),) = store.outbox.items()
    assert note.attempts == 4 and url == receiver.url


def test_gives_up_after_max_tries_and_keeps_the_row(tmp_path: Path) -> None:
    dead = Receiver(failures=100)
    now = [1000.0]
    connection = duckdb.connect(str(tmp_path / "store.duckdb"))
    store = DuckDBAlertStore(connection)
    sender = WebhookSender(store, SECRET, max_tries=3, base_delay=10, clock=lambda: now[0])
    try:
        AlertEngine([jam_rule(dead.url)], IDS, store, clock=lambda: now[0]).on_issue(T0, below(0.9))
        for _ in range(5):
            sender.deliver_due()
            now[0] += 1000
    finally:
        dead.close()
    assert len(dead.requests) == 3
    assert store.outbox_counts() == {"queued": 0, "delivered": 0, "failed": 1}
    assert [retry_delay(n, 10, 600) for n in (1, 2, 7, 8)] == [10, 20, 600, 600]


def test_undelivered_notifications_resume_after_a_restart(tmp_path: Path) -> None:
    receiver = Receiver(failures=1)
    path = tmp_path / "store.duckdb"
    try:
        # first life: the alert fires, its one try fails, the process "dies"
        connection = duckdb.connect(str(path))
        store = DuckDBAlertStore(connection)
        sender = WebhookSender(store, SECRET, base_delay=0.05)
        engine = AlertEngine([jam_rule(receiver.url)], IDS, store, sender)
        engine.on_issue(T0, below(0.9, 0.9))
        sender.deliver_due()  # a gets 500; b is then still due too and is accepted
        assert store.outbox_counts() == {"queued": 1, "delivered": 1, "failed": 0}
        connection.close()

        # second life: a new engine and sender over the same file
        connection = duckdb.connect(str(path))
        store = DuckDBAlertStore(connection)
        sender = WebhookSender(store, SECRET, base_delay=0.05, poll=0.05).start()
        try:
            engine = AlertEngine([jam_rule(receiver.url)], IDS, store, sender)
            assert [a["state"] for a in engine.alerts()] == ["firing", "firing"]
            assert engine.on_issue(T0, below(0.0, 0.0)) == []  # the same issue again: skipped
            wait_for(lambda: store.outbox_counts()["queued"] == 0)
        finally:
            sender.stop()
        keys = [json.loads(body)["idempotency_key"] for _, _, body, _ in receiver.requests]
        assert keys[0] == keys[2]  # a's notification, retried after the restart, same key
        assert sorted(json.loads(b)["sensor_id"] for b in receiver.accepted()) == ["a", "b"]
        made = engine.on_issue(T0 + timedelta(minutes=5), below(0.0, 0.9))
        assert [(t.sensor_id, t.to_state) for t in made] == [("a", "resolved")]
        audit = store.transitions()
        assert [(t.sensor_id, t.from_state, t.to_state) for t in audit] == [
            ("a", "firing", "resolved"),
            ("b", "inactive", "firing"),
            ("a", "inactive", "firing"),
        ]
        assert audit[0].value == 0.0 and audit[0].issued_at == T0 + timedelta(minutes=5)
        assert len(store.transitions("firing")) == 2
        connection.close()
    finally:
        receiver.close()


def test_a_slow_receiver_never_blocks_the_caller() -> None:
    slow = Receiver(delay=1.0)
    store = MemoryAlertStore()
    sender = WebhookSender(store, SECRET, timeout=0.2, base_delay=60, poll=0.05).start()
    try:
        engine = AlertEngine([jam_rule(slow.url)], IDS, store, sender)
        started = time.monotonic()
        for i in range(5):
            engine.on_issue(T0 + timedelta(minutes=5 * i), below(float(i % 2), 0.0))
        assert time.monotonic() - started < 0.5
        wait_for(lambda: any(n.attempts for n in store.outbox.values()))
    finally:
        sender.stop()
        slow.close()
    assert [t.to_state for t in store.transitions()] == ["resolved", "firing"] * 2
    timed_out = [n for n in store.outbox.values() if n.attempts]
    assert timed_out and all(n.next_at > time.time() + 30 for n in timed_out)


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_one_sensor_s_notifications_arrive_in_issue_order(kind: str, tmp_path: Path) -> None:
    receiver = Receiver(failures=1)
    now = [1000.0]
    if kind == "memory":
        store: MemoryAlertStore | DuckDBAlertStore = MemoryAlertStore()
    else:
        store = DuckDBAlertStore(duckdb.connect(str(tmp_path / "store.duckdb")))
    sender = WebhookSender(store, SECRET, base_delay=10, clock=lambda: now[0])
    engine = AlertEngine([jam_rule(receiver.url)], IDS, store, clock=lambda: now[0])
    try:
        engine.on_issue(T0, below(0.9))
        sender.deliver_due()  # the firing fails: next try at 1010
        engine.on_issue(T0 + timedelta(minutes=5), below(0.1))  # resolved, due at once...
        assert sender.deliver_due() == 0  # ...but waits behind the firing
        assert store.next_due() == 1010.0
        now[0] = 1010.0
        assert sender.deliver_due() == 1
        assert sender.deliver_due() == 1
    finally:
        receiver.close()
    states = [json.loads(body)["state"] for _, _, body, _ in receiver.requests]
    assert states == ["firing", "firing", "resolved"]


CHILD = """
import sys, time
from datetime import datetime, timezone
import duckdb, numpy as np
from urbanflow.serving.alerts import AlertEngine, DuckDBAlertStore, Rule, ThresholdCondition
from urbanflow.serving.alerts import WebhookSender
store = DuckDBAlertStore(duckdb.connect(sys.argv[1]))
sender = WebhookSender(store, "s3cret", base_delay=3600).start()
rule = Rule("jam", ("a",), ThresholdCondition("below", 40.0, 5.0, 0.5, 1), webhooks=(sys.argv[2],))
engine = AlertEngine([rule], ["a"], store, sender)
engine.on_issue(datetime(2012, 3, 7, 16, tzinfo=timezone.utc), lambda t: np.ones((1, 1)))
time.sleep(60)
"""


def test_notifications_survive_kill_9(tmp_path: Path) -> None:
    receiver = Receiver(failures=1)
    path = tmp_path / "store.duckdb"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), receiver.url])
    try:
        wait_for(lambda: receiver.requests, seconds=30)  # its one try failed: next in an hour
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        connection = duckdb.connect(str(path))
        store = DuckDBAlertStore(connection)
        assert store.outbox_counts() == {"queued": 1, "delivered": 0, "failed": 0}
        sender = WebhookSender(store, SECRET, clock=lambda: time.time() + 7200)
        assert sender.deliver_due() == 1
        assert [t.to_state for t in store.transitions()] == ["firing"]
        connection.close()
    finally:
        child.kill()
        receiver.close()
    (_, _, first, _), (_, headers, second, status) = receiver.requests
    assert first == second and status == 200
    assert headers[SIGNATURE_HEADER] == signature(second, SECRET)


def test_a_url_that_cannot_be_sent_to_is_a_failed_try() -> None:
    store = MemoryAlertStore()
    store.record([], [Notification("k", "http://\x00/x", b"{}", created_at=0.0)])
    sender = WebhookSender(store, SECRET, base_delay=5, clock=lambda: 100.0)
    assert sender.deliver_due() == 0
    (note,) = store.outbox.values()
    assert note.attempts == 1 and note.next_at == 105.0
