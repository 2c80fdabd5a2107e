"""`/v1/batches`: create starts a BatchWorkflow, reads come from the batch rows, cancel is a signal."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError, RPCStatusCode

from api.deps import OrgDep, SessionDep, StateDep
from api.responses import JSON
from batchway import batches, files, tenancy
from batchway.errors import APIError
from batchway.models import BatchRecord
from batchway.wire import batch_object, list_object
from batchway.workflow_start import signal_cancel, start_batch_workflow

router = APIRouter(prefix="/v1/batches", tags=["batches"])
log = logging.getLogger("batchway.api")


class CreateBatchBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: Any = None


@router.post("")
async def create_batch(
    body: CreateBatchBody,
    org: OrgDep,
    state: StateDep,
    provider_name: Annotated[str | None, Header(alias=tenancy.PROVIDER_HEADER)] = None,
) -> JSON:
    def insert() -> tuple[BatchRecord, int]:
        with Session(state.engine, expire_on_commit=False) as session:
            provider = tenancy.resolve_provider(session, org.id, provider_name)
            row = batches.create_batch(
                session,
                state.settings,
                org_id=org.id,
                provider=provider,
                input_file_id=body.input_file_id,
                endpoint=body.endpoint,
                completion_window=body.completion_window,
                metadata=body.metadata,
            )
            input_file = files.get_file(session, org.id, body.input_file_id)
            return row, input_file.line_count or 0

    row, line_count = await run_in_threadpool(insert)
    try:
        client = await state.temporal()
        await start_batch_workflow(client, state.settings, row, org, line_count)
    except Exception as exc:
        # Nothing half-way: a batch whose workflow never started must not linger as `validating`.
        await run_in_threadpool(_delete_batch, state, row.id)
        if isinstance(exc, APIError):
            raise
        raise APIError(503, f"Could not start the batch: {exc}", type="server_error") from exc
    return JSON(batch_object(row))


def _delete_batch(state: Any, batch_id: str) -> None:
    with Session(state.engine) as session:
        row = session.get(BatchRecord, batch_id)
        if row is not None:
            session.delete(row)
            session.commit()


@router.get("")
def list_batches(
    org: OrgDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> JSON:
    rows, has_more = batches.list_batches(session, org.id, limit=limit, after=after)
    return JSON(list_object([batch_object(r) for r in rows], has_more))


@router.get("/{batch_id}")
def retrieve_batch(batch_id: str, org: OrgDep, session: SessionDep) -> JSON:
    return JSON(batch_object(batches.get_batch(session, org.id, batch_id)))


@router.post("/{batch_id}/cancel")
async def cancel_batch(batch_id: str, org: OrgDep, session: SessionDep, state: StateDep) -> JSON:
    row = await run_in_threadpool(batches.mark_cancelling, session, org.id, batch_id)
    try:
        await signal_cancel(await state.temporal(), batch_id)
    except (RPCError, APIError) as exc:
        # Either the run just ended (its final write decides the status) or Temporal is briefly
        # unreachable; the row already says cancel, and the workflow's next poll reads it.
        ended = isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND
        log.log(
            logging.INFO if ended else logging.WARNING,
            "cancel signal for %s not delivered: %s",
            batch_id,
            exc,
        )
    return JSON(batch_object(row))
