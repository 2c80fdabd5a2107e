"""Finding batches that no workflow will end: their workflow was terminated (or failed) in Temporal while
the batch was still live. Temporal's visibility store answers that with one query, since every batch
workflow keeps its `BatchStatus` search attribute current."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from batchway import lifecycle
from batchway.contracts import WORKFLOW_TYPE
from batchway.pipeline.deps import Deps
from batchway.workflow_start import start_recovery

log = logging.getLogger(__name__)

LIVE = ", ".join(f"'{status}'" for status in sorted(lifecycle.ACTIVE))
ORPHANS_QUERY = (
    f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus IN ('Terminated', 'Failed', 'TimedOut') "
    f"AND BatchStatus IN ({LIVE})"
)


async def recover_orphans(deps: Deps, client: Client) -> list[str]:
    recovered: list[str] = []
    async for execution in client.list_workflows(ORPHANS_QUERY):
        try:
            batch = await deps.blocking(lifecycle.load, deps.engine, execution.id)
        except LookupError:
            continue  # a batch of another deployment sharing this namespace
        if lifecycle.is_terminal(batch.status):
            continue  # already recovered
        how = execution.status.name.lower().replace("_", " ") if execution.status else "stopped"
        reason = f"The batch's workflow was {how} in Temporal before the batch ended."
        try:
            await start_recovery(client, deps.settings, batch.id, reason)
        except WorkflowAlreadyStartedError:
            continue
        log.warning("recovering %s: %s", batch.id, reason)
        recovered.append(batch.id)
    return recovered
