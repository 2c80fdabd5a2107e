"""`/v1/requests`: the org's request log (every batched line, every judge call), and one request in full."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import OrgDep, SessionDep, StateDep
from api.responses import JSON
from batchway import request_log
from batchway.request_log import RequestFilters
from batchway.wire import list_object

router = APIRouter(prefix="/v1/requests", tags=["requests"])


@router.get("")
def list_requests(
    org: OrgDep,
    session: SessionDep,
    batch_id: str | None = None,
    status: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    session_id: str | None = None,
    source: Literal["batch", "judge"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> JSON:
    filters = RequestFilters(
        batch_id=batch_id, status=status, model=model, provider=provider, session_id=session_id, source=source
    )
    rows, has_more = request_log.list_requests(session, org.id, filters, limit=limit, after=after)
    return JSON(list_object([request_log.request_object(row) for row in rows], has_more))


@router.get("/{request_id}")
def retrieve_request(request_id: str, org: OrgDep, session: SessionDep, state: StateDep) -> JSON:
    row = request_log.get_request(session, org.id, request_id)
    return JSON(request_log.request_detail(session, state.blobs, row))
