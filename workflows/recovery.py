"""RecoverBatchWorkflow: ends a batch whose own workflow stopped without ending it (terminated by an
operator, or failed): its upstream batch is cancelled, whatever results exist are kept, and the batch
ends `failed` with an error saying why, its lines accounted for like any other batch's."""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.remote import RemoteActivities
    from activities.rows import RowActivities
    from batchway.contracts import (
        RECOVERY_WORKFLOW_TYPE,
        BatchRef,
        CancelUpstreamInput,
        CollectInput,
        FinalizeInput,
        RecoverInput,
    )
    from workflows.options import CANCEL, COLLECT, FINALIZE, NOTIFY

TERMINATED_CODE = "workflow_terminated"


@workflow.defn(name=RECOVERY_WORKFLOW_TYPE)
class RecoverBatchWorkflow:
    @workflow.run
    async def run(self, request: RecoverInput) -> str:
        batch_id = request.batch_id
        with contextlib.suppress(ActivityError):  # best effort: stop paying for an orphaned upstream batch
            await workflow.execute_activity_method(
                RemoteActivities.cancel_upstream,
                CancelUpstreamInput(batch_id=batch_id, requested=False),
                summary="cancel upstream batch",
                **CANCEL,
            )
        unreadable = 0
        with contextlib.suppress(ActivityError):
            collected = await workflow.execute_activity_method(
                RemoteActivities.collect_results,
                CollectInput(batch_id=batch_id, outcome="failed"),
                summary="store upstream results",
                **COLLECT,
            )
            unreadable = collected.unreadable
        result = await workflow.execute_activity_method(
            RowActivities.finalize_batch,
            FinalizeInput(
                batch_id=batch_id,
                outcome="failed",
                unreadable=unreadable,
                error_code=TERMINATED_CODE,
                error_message=request.reason,
            ),
            summary="write result files (failed)",
            **FINALIZE,
        )
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity_method(
                NotifyActivities.notify_batch, BatchRef(batch_id=batch_id), summary="webhook", **NOTIFY
            )
        return result.status
