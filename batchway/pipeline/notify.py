"""Telling an org a batch ended: its webhook gets a signed `batch.<status>` event (Standard Webhooks), and
every attempt is logged. The step raises to be retried (by Temporal, with backoff, up to a limit) until
the receiver acknowledges, or refuses for good."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from sqlmodel import Session

from batchway import lifecycle
from batchway.clock import now
from batchway.pipeline.deps import Deps
from batchway.storage.models import WebhookDelivery, WebhookEndpoint
from batchway.webhooks.delivery import DeliveryResult, deliver
from batchway.webhooks.events import batch_event, event_id, event_type_for


class DeliveryFailed(Exception):
    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.error or f"the receiver answered {result.status_code}")
        self.result = result


@dataclass(frozen=True, slots=True)
class Notified:
    sent: bool  # False: the org has no webhook, or the batch has not ended


def _endpoint(deps: Deps, org_id: str) -> WebhookEndpoint | None:
    with Session(deps.engine) as session:
        return session.get(WebhookEndpoint, org_id)


def _log(deps: Deps, delivery: WebhookDelivery) -> None:
    with Session(deps.engine) as session:
        session.add(delivery)
        session.commit()


async def notify(deps: Deps, client: httpx.AsyncClient, batch_id: str, attempt: int) -> Notified:
    batch = await deps.blocking(lifecycle.load, deps.engine, batch_id)
    event_type = event_type_for(batch.status)
    endpoint = await deps.blocking(_endpoint, deps, batch.org_id)
    if event_type is None or endpoint is None:
        return Notified(sent=False)
    ended_at = batch.completed_at or batch.failed_at or batch.cancelled_at or batch.expired_at or now()
    event = batch_event(
        batch.id, batch.status, event_id=event_id(batch.id, batch.status), created_at=ended_at
    )
    # Signed with this attempt's time: receivers refuse signatures more than 5 minutes old.
    secret = deps.box.open(endpoint.secret)
    assert secret is not None
    result = await deliver(client, endpoint.url, secret, event, now=int(time.time()))
    delivery = WebhookDelivery(
        org_id=batch.org_id,
        batch_id=batch.id,
        event_id=event["id"],
        event_type=event_type,
        attempt=attempt,
        status_code=result.status_code,
        ok=result.ok,
        error=result.error,
        duration_ms=result.duration_ms,
        created_at=now(),
    )
    await deps.blocking(_log, deps, delivery)
    if not result.ok:
        raise DeliveryFailed(result)
    return Notified(sent=True)
