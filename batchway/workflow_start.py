"""Starting and signalling a BatchWorkflow from outside (API, CLI): by name, so callers never import
workflow code."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from batchway.contracts import (
    CANCEL_SIGNAL,
    SA_ENDPOINT,
    SA_ORG,
    SA_PROVIDER,
    SA_STATUS,
    WORKFLOW_TYPE,
    BatchWorkflowInput,
)
from batchway.models import BatchRecord, Org
from batchway.settings import Settings


async def start_batch_workflow(
    client: Client, settings: Settings, batch: BatchRecord, org: Org, line_count: int
) -> None:
    assert batch.expires_at is not None
    await client.start_workflow(
        WORKFLOW_TYPE,
        BatchWorkflowInput(
            batch_id=batch.id,
            deadline_at=batch.expires_at + settings.deadline_grace_seconds,
            poll_min_seconds=settings.poll_interval_min_seconds,
            poll_max_seconds=settings.poll_interval_max_seconds,
            polls_per_run=settings.polls_per_run,
        ),
        id=batch.id,
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_ORG, org.name),
                SearchAttributePair(SA_PROVIDER, batch.provider),
                SearchAttributePair(SA_STATUS, batch.status),
                SearchAttributePair(SA_ENDPOINT, batch.endpoint),
            ]
        ),
        static_summary=f"{batch.provider} · {batch.endpoint} · {line_count} requests · org {org.name}"[:200],
        static_details=(
            f"| batch | `{batch.id}` |\n|---|---|\n| org | {org.name} |\n| provider | {batch.provider} |\n"
            f"| endpoint | {batch.endpoint} |\n| input file | `{batch.input_file_id}` |\n"
            f"| requests | {line_count} |\n"
        ),
    )


async def signal_cancel(client: Client, batch_id: str) -> None:
    await client.get_workflow_handle(batch_id).signal(CANCEL_SIGNAL)
