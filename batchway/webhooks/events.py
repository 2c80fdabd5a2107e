"""Batch webhook events, shaped exactly like OpenAI's (`openai.types.webhooks.Batch*WebhookEvent`)."""

from __future__ import annotations

import hashlib
from typing import Any

# Terminal batch status -> OpenAI's event type. OpenAI spells it `batch.cancelled` (double l), like the
# batch status itself.
EVENT_TYPE_BY_STATUS: dict[str, str] = {
    "completed": "batch.completed",
    "failed": "batch.failed",
    "cancelled": "batch.cancelled",
    "expired": "batch.expired",
}


def event_type_for(status: str) -> str | None:
    """The event type announcing that a batch reached `status`, or None if `status` is not terminal."""
    return EVENT_TYPE_BY_STATUS.get(status)


def event_id(batch_id: str, status: str) -> str:
    """The id of the event for `batch_id` reaching `status`: the same on every delivery attempt, so
    receivers can drop duplicates. Shaped like OpenAI's (`evt_` + 32 hex characters)."""
    event_type = _require_event_type(status)  # hash the type, not str(status): an enum may print oddly
    return "evt_" + hashlib.sha256(f"{batch_id}\x00{event_type}".encode()).hexdigest()[:32]


def batch_event(batch_id: str, status: str, *, event_id: str, created_at: int) -> dict[str, Any]:
    """The event announcing that `batch_id` reached the terminal `status`.

    `created_at` is when the batch reached that status (unix seconds), as in OpenAI's events; it is
    not the delivery time, so every attempt sends the same body."""
    return {
        "object": "event",
        "id": event_id,
        "type": _require_event_type(status),
        "created_at": created_at,
        "data": {"id": batch_id},
    }


def _require_event_type(status: str) -> str:
    event_type = event_type_for(status)
    if event_type is None:
        raise ValueError(f"no webhook event for non-terminal batch status {status!r}")
    return event_type
