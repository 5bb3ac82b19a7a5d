"""Webhook notifications: the JSON body, its signature, and a sender with retries.

Each transition to ``firing`` or ``resolved`` becomes one JSON body, posted to every URL of its
rule. The body's ``idempotency_key`` is the first 32 hex digits of the SHA-256 of rule, sensor,
new state and issue time: the same transition always has the same key (a receiver drops a key
it has seen; delivery is at-least-once, so it will see repeats).

Signature: ``X-Urbanflow-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`` with the
secret from ``URBANFLOW_WEBHOOK_SECRET``. When the variable is unset or empty, notifications
go unsigned (no header) and the sender logs a warning once: a receiver that has a secret must
refuse a request without a valid signature.

Delivery: :class:`WebhookSender` runs in its own thread and posts what the outbox says is due,
one request at a time, each with a bounded timeout (default 5 s). A 2xx answer delivers it;
anything else (another status, a timeout, a refused connection) is retried after
``base_delay · 2^(tries-1)`` seconds (default 10 s, at most ``max_delay``, 600 s), up to
``max_tries`` tries (default 8: the last try about 21 minutes after the first). After the last
failed try the row stays in the outbox, marked failed, and is not tried again. One URL gets
one rule and sensor's notifications in issue order: a ``resolved`` waits until the ``firing``
before it is delivered or given up. The caller only writes to the outbox and wakes the
thread, so a slow or failing receiver never blocks it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from urbanflow.serving.alerts.lifecycle import Transition, utc
from urbanflow.serving.alerts.outbox import AlertStore, Notification
from urbanflow.serving.alerts.rules import CapacityCondition, Rule, ThresholdCondition

SECRET_VARIABLE = "URBANFLOW_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Urbanflow-Signature"
KEY_HEADER = "X-Urbanflow-Idempotency-Key"
MAX_TRIES = 8
BASE_DELAY = 10.0
MAX_DELAY = 600.0
TIMEOUT = 5.0

log = logging.getLogger(__name__)


def idempotency_key(rule: str, sensor_id: str, to_state: str, issued_at: Any) -> str:
    """The stable key of one transition: 32 hex digits.

    Parameters
    ----------
    rule
        The rule's name.
    sensor_id
        The sensor.
    to_state
        The state entered.
    issued_at
        The issue time (any time zone: it is hashed in UTC).
    """
    text = "\x1f".join((rule, sensor_id, to_state, utc(issued_at).isoformat()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def notification_body(rule: Rule, transition: Transition) -> bytes:
    """The exact JSON bytes posted for ``transition`` (keys sorted, no spaces, UTF-8).

    Parameters
    ----------
    rule
        The rule that made it.
    transition
        A transition to ``firing`` or ``resolved``.
    """
    condition = rule.condition
    threshold_rule = isinstance(condition, ThresholdCondition)
    probability_rule = threshold_rule or isinstance(condition, CapacityCondition)
    body = {
        "idempotency_key": idempotency_key(
            transition.rule, transition.sensor_id, transition.to_state, transition.issued_at
        ),
        "rule": transition.rule,
        "sensor_id": transition.sensor_id,
        "state": transition.to_state,
        "previous_state": transition.from_state,
        "issued_at": utc(transition.issued_at).isoformat().replace("+00:00", "Z"),
        "condition": condition.kind,
        "threshold": condition.threshold if threshold_rule else None,
        "within_minutes": condition.within_minutes if probability_rule else None,
        "min_probability": condition.probability if probability_rule else None,
        "probability": transition.value if probability_rule else None,
        "factor": None if probability_rule else condition.factor,
        "error_ratio": None if probability_rule else transition.value,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def notifications_for(
    rule: Rule, transitions: Sequence[Transition], now: float
) -> list[Notification]:
    """One notification per URL of ``rule`` for each transition that notifies.

    Parameters
    ----------
    rule
        The rule the transitions belong to.
    transitions
        Its transitions at one issue.
    now
        Unix seconds: when they are queued and first due.
    """
    out = []
    for transition in transitions:
        if not transition.notifies or not rule.webhooks:
            continue
        body = notification_body(rule, transition)
        key = json.loads(body)["idempotency_key"]
        subject = f"{transition.rule}\x1f{transition.sensor_id}"
        issued = utc(transition.issued_at).timestamp()
        out += [
            Notification(key, url, body, now, next_at=now, subject=subject, issued=issued)
            for url in rule.webhooks
        ]
    return out


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` with ``secret``.

    Parameters
    ----------
    body
        The exact bytes posted.
    secret
        The shared secret.
    """
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def secret_from_environment() -> str | None:
    """``URBANFLOW_WEBHOOK_SECRET``, or None when unset or empty."""
    return os.environ.get(SECRET_VARIABLE) or None


def retry_delay(tries: int, base_delay: float = BASE_DELAY, max_delay: float = MAX_DELAY) -> float:
    """Seconds to wait after ``tries`` failed tries: ``base_delay · 2^(tries-1)``, capped.

    Parameters
    ----------
    tries
        Failed tries so far (≥ 1).
    base_delay
        The wait after the first failure.
    max_delay
        The longest wait.
    """
    return float(min(base_delay * 2 ** (tries - 1), max_delay))


class WebhookSender:
    """Delivers the outbox's due notifications, in a thread of its own or one pass at a time.

    Parameters
    ----------
    store
        The outbox (an :class:`~urbanflow.serving.alerts.outbox.AlertStore`).
    secret
        The signing secret; None sends unsigned (see the module's docstring).
    max_tries
        Tries per notification and URL before giving up (default 8).
    base_delay
        Seconds before the second try; doubles each time (default 10).
    max_delay
        Longest wait between tries (default 600 s).
    timeout
        Seconds each request may take, connecting included (default 5).
    poll
        Longest sleep of the thread between looks at the outbox (seconds).
    clock
        Unix seconds now (tests may pass their own).
    client
        An ``httpx.Client`` to post with (default: one of the sender's own).
    """

    def __init__(
        self,
        store: AlertStore,
        secret: str | None = None,
        *,
        max_tries: int = MAX_TRIES,
        base_delay: float = BASE_DELAY,
        max_delay: float = MAX_DELAY,
        timeout: float = TIMEOUT,
        poll: float = 30.0,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self.store = store
        self.secret = secret
        self.max_tries = max_tries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.poll = poll
        self.clock = clock
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def headers(self, note: Notification) -> dict[str, str]:
        """The request's headers: content type, idempotency key and signature.

        Parameters
        ----------
        note
            The notification to send.
        """
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "urbanflow-alerts",
            KEY_HEADER: note.key,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(note.body, self.secret)
        elif not self._warned:
            self._warned = True
            log.warning("%s is not set: webhook notifications go unsigned", SECRET_VARIABLE)
        return headers

    def send(self, note: Notification) -> str | None:
        """Post one notification once; None when delivered, else what went wrong.

        Parameters
        ----------
        note
            The notification.
        """
        try:
            answer = self.client.post(note.url, content=note.body, headers=self.headers(note))
        except Exception as error:  # any failure to send (httpx.InvalidURL too) is a failed try
            return f"{type(error).__name__}: {error}"[:500]
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}"

    def deliver_due(self) -> int:
        """One pass: try every due notification once, record the outcome; how many were
        delivered."""
        delivered = 0
        for note in self.store.due(self.clock()):
            if self._stop.is_set() and self._thread is not None:
                break
            error = self.send(note)
            tries = note.attempts + 1
            now = self.clock()
            if error is None:
                self.store.mark_delivered(note.key, note.url, tries, now)
                delivered += 1
            elif tries >= self.max_tries:
                log.warning("webhook %s gave up after %d tries: %s", note.url, tries, error)
                self.store.give_up(note.key, note.url, tries, now, error)
            else:
                delay = retry_delay(tries, self.base_delay, self.max_delay)
                self.store.reschedule(note.key, note.url, tries, now + delay, error)
        return delivered

    def wake(self) -> None:
        """Tell the thread that new notifications are queued."""
        self._wake.set()

    def start(self) -> WebhookSender:
        """Start the delivery thread (a daemon); returns the sender."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="urbanflow-webhooks", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current request; what is left stays in the outbox.

        Parameters
        ----------
        timeout
            Seconds to wait for the thread.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
                due = self.store.next_due()
            except Exception:  # keep delivering after a storage or network surprise
                log.exception("webhook delivery pass failed")
                due = None
            wait = self.poll if due is None else min(max(due - self.clock(), 0.0), self.poll)
            self._wake.wait(wait)
            self._wake.clear()
