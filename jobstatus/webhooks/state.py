"""A delivery's state, kept in the job's document under ``webhook``.

::

    "webhook": {
      "url": "https://example.com/hooks/jobs?token=…",   # shown redacted in answers
      "id": "msg_2f0c…",                 # the webhook-id header, the same for every attempt
      "state": "waiting | pending | sending | delivered | failed",
      "attempts": [{"at": "…Z", "status": 503, "answer": "…"}, {"at": "…Z", "error": "…"}],
      "next_attempt_at": "…Z" or null,   # while pending
      "delivered_at": "…Z" or null,
      "reason": null or "why it failed",
      "claim": "…", "claimed_at": "…Z", "lease_until": "…Z"   # while sending only
    }

``waiting`` until the job ends; the final write makes it ``pending`` (no write of its own). A
deliverer *claims* a due attempt -- ``sending`` with a lease, written with the version it read,
so of several deliverers exactly one wins -- sends it, and writes the outcome: ``delivered``,
``pending`` again with the next attempt's time, or ``failed`` with the reason. An attempt whose
lease ran out (its deliverer died) is recorded as lost and claimed again. These two writes are
the only ones a final record accepts (forced, with ``expect_version``).

Functions here only compute documents; :mod:`jobstatus.webhooks.deliverer` writes them.
"""

from __future__ import annotations

import enum
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from jobstatus.lifecycle import format_timestamp, parse_timestamp, utc_from_epoch
from jobstatus.record import JobRecord
from jobstatus.webhooks.urls import check_webhook_url, redact_url

__all__ = [
    "MAX_ANSWER_BYTES",
    "WEBHOOK_KEY",
    "DeliveryState",
    "Outcome",
    "claim",
    "due_time",
    "ended_extra",
    "job_ended",
    "new_webhook",
    "public_document",
    "settle",
    "webhook_of",
    "with_webhook",
]

#: The document key that holds the delivery state.
WEBHOOK_KEY = "webhook"
#: The most of a receiver's answer an attempt keeps, in bytes.
MAX_ANSWER_BYTES = 1024
_CLAIM_KEYS = ("claim", "claimed_at", "lease_until")
LOST = "no outcome recorded: the deliverer holding the attempt stopped before its lease ran out"


class DeliveryState(str, enum.Enum):
    """Where a delivery is."""

    WAITING = "waiting"  #: the job has not ended
    PENDING = "pending"  #: an attempt is due at ``next_attempt_at``
    SENDING = "sending"  #: a deliverer holds the attempt until ``lease_until``
    DELIVERED = "delivered"  #: a 2xx answer came, at ``delivered_at``
    FAILED = "failed"  #: given up, for ``reason``

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: an HTTP ``status`` (with up to 1 KB of ``answer``), or an
    ``error`` and no status; ``retry`` when a later attempt may succeed (5xx, 408, 429,
    timeouts, connection failures)."""

    status: int | None = None
    error: str | None = None
    answer: str | None = None
    retry: bool = False

    @property
    def delivered(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        """One line for a failure's ``reason``."""
        if self.error is not None:
            return self.error
        return f"the receiver answered {self.status}"


def new_webhook(url: str | None, *, configured: bool = True) -> dict[str, Any] | None:
    """The state of a new job's delivery to ``url`` (None without a URL), ``waiting`` for the
    job to end. A :class:`ValueError` for a URL :func:`~jobstatus.webhooks.urls.check_webhook_url`
    refuses, or for any URL when webhooks are not ``configured`` (a tracker without
    ``webhooks=``)."""
    if url is None:
        return None
    if not configured:
        raise ValueError("webhook_url needs a tracker built with webhooks=jobstatus.Webhooks(...)")
    return {
        "url": check_webhook_url(url),
        "id": f"msg_{uuid.uuid4().hex}",
        "state": DeliveryState.WAITING.value,
        "attempts": [],
        "next_attempt_at": None,
        "delivered_at": None,
        "reason": None,
    }


def webhook_of(record: JobRecord) -> Mapping[str, Any] | None:
    """The record's delivery state, or None when it has none (or one this release cannot
    read: it is then left alone)."""
    webhook = record.extra.get(WEBHOOK_KEY) if record.extra else None
    if (
        isinstance(webhook, Mapping)
        and isinstance(webhook.get("url"), str)
        and isinstance(webhook.get("id"), str)
        and isinstance(webhook.get("attempts"), list)
        and webhook.get("state") in _STATES
    ):
        return webhook
    return None


_STATES = frozenset(state.value for state in DeliveryState)


def with_webhook(record: JobRecord, webhook: Mapping[str, Any]) -> JobRecord:
    """``record`` with its delivery state replaced."""
    return replace(record, extra={**record.extra, WEBHOOK_KEY: dict(webhook)})


def job_ended(record: JobRecord, ended_at: datetime) -> JobRecord:
    """The final record of a job: a ``waiting`` delivery becomes ``pending``, due at once."""
    extra = ended_extra(record.extra, ended_at)
    return record if extra is record.extra else replace(record, extra=extra)


def ended_extra(extra: Mapping[str, Any], ended_at: datetime) -> Mapping[str, Any]:
    """A record's ``extra`` once its job ended at ``ended_at`` (the very same mapping when
    there is no ``waiting`` delivery in it): what :func:`job_ended` changes, for a writer that
    builds the final record in one step."""
    webhook = extra.get(WEBHOOK_KEY)
    if not isinstance(webhook, Mapping) or webhook.get("state") != DeliveryState.WAITING.value:
        return extra
    pending = {
        **webhook,
        "state": DeliveryState.PENDING.value,
        "next_attempt_at": format_timestamp(ended_at),
    }
    return {**extra, WEBHOOK_KEY: pending}


def due_time(webhook: Mapping[str, Any]) -> float | None:
    """When a deliverer should act (seconds since the epoch): the next attempt of a pending
    delivery, the lease's end of one being sent; None once there is nothing to do."""
    state = webhook.get("state")
    key = (
        "next_attempt_at"
        if state == DeliveryState.PENDING.value
        else "lease_until"
        if state == DeliveryState.SENDING.value
        else None
    )
    if key is None:
        return None
    stamp = webhook.get(key)
    try:
        return parse_timestamp(stamp).timestamp() if isinstance(stamp, str) else None
    except ValueError:
        return None


def claim(
    webhook: Mapping[str, Any], *, now: float, lease: float, token: str, max_attempts: int
) -> dict[str, Any]:
    """The state that claims the due attempt for the deliverer ``token`` until
    ``now + lease``. A claim whose lease ran out is first recorded as a lost attempt; when
    that was the last one allowed, the result is ``failed`` instead (nothing to send)."""
    attempts = list(webhook["attempts"])
    base = _unclaimed(webhook)
    if webhook["state"] == DeliveryState.SENDING.value:
        attempts.append({"at": webhook.get("claimed_at"), "error": LOST})
        if len(attempts) >= max_attempts:
            return _failed(base, attempts, f"gave up after {len(attempts)} attempts: {LOST}")
    return {
        **base,
        "state": DeliveryState.SENDING.value,
        "attempts": attempts,
        "next_attempt_at": None,
        "claim": token,
        "claimed_at": _stamp(now),
        "lease_until": _stamp(now + lease),
    }


def settle(
    webhook: Mapping[str, Any],
    outcome: Outcome,
    *,
    now: float,
    retry_schedule: Sequence[float],
    jitter: float = 0.2,
    rand: random.Random | None = None,
) -> dict[str, Any]:
    """The state after the claimed attempt came to ``outcome``: ``delivered``, ``pending``
    until the schedule's next step (plus up to ``jitter`` of it), or ``failed``."""
    entry: dict[str, Any] = {"at": webhook.get("claimed_at") or _stamp(now)}
    if outcome.status is not None:
        entry["status"] = outcome.status
    if outcome.error is not None:
        entry["error"] = outcome.error
    if outcome.answer:
        entry["answer"] = outcome.answer
    attempts = [*webhook["attempts"], entry]
    base = _unclaimed(webhook)
    if outcome.delivered:
        return {
            **base,
            "state": DeliveryState.DELIVERED.value,
            "attempts": attempts,
            "next_attempt_at": None,
            "delivered_at": _stamp(now),
            "reason": None,
        }
    made = len(attempts)
    if not outcome.retry:
        return _failed(base, attempts, outcome.describe())
    if made > len(retry_schedule):
        return _failed(base, attempts, f"gave up after {made} attempts: {outcome.describe()}")
    wait = retry_schedule[made - 1] * (1 + jitter * (rand or random).random())
    return {
        **base,
        "state": DeliveryState.PENDING.value,
        "attempts": attempts,
        "next_attempt_at": _stamp(now + wait),
        "reason": None,
    }


def public_document(record: JobRecord) -> dict[str, Any]:
    """The document as answers show it: the webhook URL redacted
    (:func:`~jobstatus.webhooks.urls.redact_url`), the claim token left out."""
    doc = record.to_dict()
    webhook = doc.get(WEBHOOK_KEY)
    if isinstance(webhook, Mapping):
        shown = {k: v for k, v in webhook.items() if k != "claim"}
        if isinstance(shown.get("url"), str):
            shown["url"] = redact_url(shown["url"])
        doc[WEBHOOK_KEY] = shown
    return doc


def _unclaimed(webhook: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in webhook.items() if k not in _CLAIM_KEYS}


def _failed(base: dict[str, Any], attempts: list[Any], reason: str) -> dict[str, Any]:
    return {
        **base,
        "state": DeliveryState.FAILED.value,
        "attempts": attempts,
        "next_attempt_at": None,
        "reason": reason,
    }


def _stamp(seconds: float) -> str:
    return format_timestamp(utc_from_epoch(seconds))
