"""SweeperWorkflow: started by a Temporal schedule every minute or so; finds batches no workflow will
end any more and starts their recovery."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.sweeper import SweeperActivities
    from batchway.contracts import SWEEPER_WORKFLOW_TYPE, SweepResult


@workflow.defn(name=SWEEPER_WORKFLOW_TYPE)
class SweeperWorkflow:
    @workflow.run
    async def run(self) -> SweepResult:
        recovered = await workflow.execute_activity_method(
            SweeperActivities.recover_orphans,
            summary="recover batches whose workflow stopped",
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        tidied = await workflow.execute_activity_method(
            SweeperActivities.housekeep,
            summary="remove expired and hidden files",
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        return SweepResult(recovered=recovered.recovered, expired=tidied.expired, purged=tidied.purged)
