"""Activities of the periodic sweeper."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from activities.heartbeat import heartbeating
from batchway.contracts import SweepResult
from batchway.pipeline import housekeeping, sweep
from batchway.pipeline.deps import Deps


class SweeperActivities:
    def __init__(self, deps: Deps, client: Client) -> None:
        self.deps = deps
        self.client = client

    @activity.defn
    async def recover_orphans(self) -> SweepResult:
        return SweepResult(recovered=await sweep.recover_orphans(self.deps, self.client))

    @activity.defn
    async def housekeep(self) -> SweepResult:
        """Expired files and hidden leftovers: removed, blobs first."""
        async with heartbeating():
            tidied = await self.deps.blocking(housekeeping.housekeep, self.deps)
        return SweepResult(expired=tidied.expired, purged=tidied.purged)
