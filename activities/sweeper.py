"""Activities of the periodic sweeper."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from batchway.contracts import SweepResult
from batchway.pipeline import sweep
from batchway.pipeline.deps import Deps


class SweeperActivities:
    def __init__(self, deps: Deps, client: Client) -> None:
        self.deps = deps
        self.client = client

    @activity.defn
    async def recover_orphans(self) -> SweepResult:
        return SweepResult(recovered=await sweep.recover_orphans(self.deps, self.client))
