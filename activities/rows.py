"""Activities that open and close a batch: its row and input checks, and its final files and status."""

from __future__ import annotations

from temporalio import activity

from activities.errors import classified
from activities.heartbeat import heartbeating
from batchway import lifecycle
from batchway.contracts import BatchRef, BatchSpec, FinalizeInput, FinalizeResult, OpenResult, ScoreResult
from batchway.pipeline import finalize, opening, scoring
from batchway.pipeline.deps import Deps


class RowActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn
    async def open_batch(self, spec: BatchSpec) -> OpenResult:
        deps = self.deps
        async with classified(), heartbeating():
            return await deps.blocking(opening.open_batch, deps, spec)

    @activity.defn
    async def finalize_batch(self, request: FinalizeInput) -> FinalizeResult:
        async with classified(), heartbeating():
            # Progress is reported by the loop's heartbeats; the thread's beats are a no-op hook.
            return await self.deps.blocking(finalize.finalize, self.deps, request, lambda: None)

    @activity.defn
    async def mark_cancelling(self, ref: BatchRef) -> None:
        """Record a cancel that reached the workflow without passing through the API (the Temporal UI)."""
        deps = self.deps
        async with classified():
            await deps.blocking(
                lifecycle.transition,
                deps.engine,
                ref.batch_id,
                lifecycle.Status.CANCELLING,
                cancel_requested=True,
            )

    @activity.defn
    async def score_batch(self, ref: BatchRef) -> ScoreResult:
        """Feedback scores for a completed batch (a no-op unless the org's plan has feedback)."""
        async with classified(), heartbeating():
            return await scoring.score_batch(self.deps, ref.batch_id)
