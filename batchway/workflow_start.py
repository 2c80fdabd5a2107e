"""Starting and signalling batch workflows from outside (API, CLI, sweeper): by name, so callers never
import workflow code."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from batchway.contracts import (
    CANCEL_SIGNAL,
    RECOVERY_WORKFLOW_TYPE,
    SA_ENDPOINT,
    SA_ORG,
    SA_PROVIDER,
    SA_STATUS,
    WORKFLOW_TYPE,
    BatchSpec,
    BatchWorkflowInput,
    RecoverInput,
    Style,
)
from batchway.settings import Settings


async def start_batch_workflow(
    client: Client, settings: Settings, spec: BatchSpec, *, org_name: str, style: Style, line_count: int
) -> None:
    await client.start_workflow(
        WORKFLOW_TYPE,
        BatchWorkflowInput(
            spec=spec,
            style=style,
            deadline_at=spec.expires_at + settings.deadline_grace_seconds,
            cancel_grace_seconds=settings.cancel_grace_seconds,
            poll_min_seconds=settings.poll_interval_min_seconds,
            poll_max_seconds=settings.poll_interval_max_seconds,
            polls_per_run=settings.polls_per_run,
            chunks_in_flight=settings.fanout_chunks_in_flight,
        ),
        id=spec.id,
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_ORG, org_name),
                SearchAttributePair(SA_PROVIDER, spec.provider),
                SearchAttributePair(SA_STATUS, "validating"),
                SearchAttributePair(SA_ENDPOINT, spec.endpoint),
            ]
        ),
        static_summary=f"{spec.provider} · {spec.endpoint} · {line_count} requests · org {org_name}"[:200],
        static_details=(
            f"| batch | `{spec.id}` |\n|---|---|\n| org | {org_name} |\n| provider | {spec.provider} |\n"
            f"| endpoint | {spec.endpoint} |\n| input file | `{spec.input_file_id}` |\n"
            f"| requests | {line_count} |\n"
        ),
    )


async def signal_cancel(client: Client, batch_id: str) -> None:
    await client.get_workflow_handle(batch_id).signal(CANCEL_SIGNAL)


def recovery_workflow_id(batch_id: str) -> str:
    return f"{batch_id}/recover"


async def start_recovery(client: Client, settings: Settings, batch_id: str, reason: str) -> None:
    """End a batch whose workflow stopped without ending it (terminated by an operator)."""
    await client.start_workflow(
        RECOVERY_WORKFLOW_TYPE,
        RecoverInput(batch_id=batch_id, reason=reason),
        id=recovery_workflow_id(batch_id),
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"recover {batch_id}",
    )
