"""Activities of a batch on a remote upstream (one that runs whole batches itself)."""

from __future__ import annotations

from temporalio import activity

from activities.errors import classified
from activities.heartbeat import heartbeating
from batchway.contracts import (
    BatchRef,
    CancelUpstreamInput,
    CollectInput,
    CollectResult,
    PollResult,
    SubmitResult,
)
from batchway.pipeline import remote
from batchway.pipeline.deps import Deps


class RemoteActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn
    async def submit_batch(self, ref: BatchRef) -> SubmitResult:
        """Upload the input and create the upstream batch, at most once each across retries."""
        async with classified(), heartbeating():
            return await remote.submit(self.deps, ref.batch_id)

    @activity.defn
    async def poll_batch(self, ref: BatchRef) -> PollResult:
        async with classified(), heartbeating():
            return await remote.poll(self.deps, ref.batch_id)

    @activity.defn
    async def cancel_upstream(self, request: CancelUpstreamInput) -> bool:
        async with classified(), heartbeating():
            return await remote.cancel(self.deps, request.batch_id, requested=request.requested)

    @activity.defn
    async def cleanup_upstream(self, ref: BatchRef) -> bool:
        async with classified(), heartbeating():
            return await remote.cleanup(self.deps, ref.batch_id)

    @activity.defn
    async def collect_results(self, request: CollectInput) -> CollectResult:
        async with classified(), heartbeating():
            return await remote.collect(self.deps, request.batch_id, request.outcome)
