"""The webhook activity: one delivery attempt per activity attempt, so Temporal's retry policy is the
backoff and the limit."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import classified
from batchway.contracts import BatchRef
from batchway.pipeline import notify
from batchway.pipeline.deps import Deps


class NotifyActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        # Its own client: no default headers of another upstream may reach a receiver.
        self.client = httpx.AsyncClient(follow_redirects=False)

    @activity.defn
    async def notify_batch(self, ref: BatchRef) -> bool:
        async with classified():
            try:
                return (
                    await notify.notify(self.deps, self.client, ref.batch_id, activity.info().attempt)
                ).sent
            except notify.DeliveryFailed as exc:
                retry = exc.result.retryable
                raise ApplicationError(str(exc), type="WebhookDelivery", non_retryable=not retry) from exc

    async def aclose(self) -> None:
        await self.client.aclose()
