"""Activities of a batch on an executed upstream (the fan-out)."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.errors import classified
from activities.heartbeat import heartbeating
from batchway.contracts import BatchRef, ChunkInput, ChunkResult, ChunkSpec
from batchway.pipeline import fanout
from batchway.pipeline.deps import Deps


class FanoutActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn
    async def plan_chunks(self, ref: BatchRef) -> list[ChunkSpec]:
        async with classified(), heartbeating():
            return await self.deps.blocking(fanout.plan_chunks, self.deps, ref.batch_id)

    @activity.defn
    async def run_chunk(self, request: ChunkInput) -> ChunkResult:
        info = activity.info()
        previous: dict[str, Any] = info.heartbeat_details[0] if info.heartbeat_details else {}
        latest: dict[str, Any] = {"sent": previous.get("sent", [])}
        async with classified(), heartbeating(lambda: latest):
            return await fanout.run_chunk(self.deps, request, latest.update, previous)
