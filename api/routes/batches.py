"""`/v1/batches`: create starts a BatchWorkflow, reads come from the batch rows, cancel is a signal.
The logic lives in `batchway.batches`, shared with the CLI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from api.body import read_json
from api.deps import OrgDep, StateDep, caller, int_query
from api.responses import JSON
from batchway import batches, tenancy
from batchway.request_headers import kept_headers
from batchway.wire import batch_object, list_object

router = APIRouter(prefix="/v1/batches", tags=["batches"])


class CreateBatchBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: Any = None
    output_expires_after: Any = None


@router.post("")
async def create_batch(
    request: Request,
    org: OrgDep,
    state: StateDep,
    provider_name: Annotated[str | None, Header(alias=tenancy.PROVIDER_HEADER)] = None,
) -> JSON:
    # Read by hand, after the caller was authenticated: a declared body parameter is read before that.
    raw = await read_json(request, state.settings.max_json_body_bytes)
    try:
        body = CreateBatchBody.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    row = await batches.create_batch(
        state.engine,
        await state.temporal(),
        state.settings,
        org=org,
        provider_name=provider_name,
        input_file_id=body.input_file_id,
        endpoint=body.endpoint,
        completion_window=body.completion_window,
        metadata=body.metadata,
        output_expires_after=body.output_expires_after,
        headers=kept_headers(request.headers.items()),
    )
    return JSON(batch_object(row))


@router.get("")
async def list_batches(request: Request) -> JSON:
    state, org = caller(request)
    query = request.query_params
    limit = int_query(query, "limit", default=20, low=1, high=100)
    after = query.get("after")
    rows, has_more = await state.reads.batch_page(org.id, limit, after)
    return JSON(list_object([batch_object(r) for r in rows], has_more))


@router.get("/{batch_id}")
async def retrieve_batch(request: Request) -> JSON:
    state, org = caller(request)
    batch_id = request.path_params["batch_id"]  # read here: a declared parameter costs a validation
    return JSON(batch_object(await state.reads.batch(org.id, batch_id)))


@router.post("/{batch_id}/cancel")
async def cancel_batch(batch_id: str, org: OrgDep, state: StateDep) -> JSON:
    row = await batches.cancel_batch(state.engine, await state.temporal_or_none(), org.id, batch_id)
    return JSON(batch_object(row))
