"""`/v1/files`: multipart uploads streamed to the blob store; org-scoped reads and deletes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Message

from api.deps import OrgDep, SessionDep, StateDep, caller
from api.responses import JSON
from batchway import files
from batchway.errors import APIError, bad_request
from batchway.jsonl import read_chunks
from batchway.wire import file_object, list_object

router = APIRouter(prefix="/v1/files", tags=["files"])
MULTIPART_OVERHEAD = 64 * 1024


def _int_field(value: Any, param: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"'{param}' must be an integer.", param=param) from None


@router.post("")
async def upload_file(request: Request, org: OrgDep, state: StateDep) -> JSON:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > state.settings.max_input_bytes + MULTIPART_OVERHEAD:
        raise files.too_large(state.settings.max_input_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Uploads must be multipart/form-data with 'file' and 'purpose'.", param="file")
    limit = state.settings.max_input_bytes + MULTIPART_OVERHEAD
    received = 0

    async def receive_within_limit() -> Message:
        # A chunked upload has no Content-Length: stop reading (and spooling) once past the limit.
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise files.too_large(state.settings.max_input_bytes)
        return message

    try:
        form = await Request(request.scope, receive_within_limit).form(max_files=1, max_fields=20)
    except APIError:
        raise
    except Exception as exc:  # malformed multipart is the client's problem, never a 500
        raise bad_request(f"Could not parse the multipart body: {exc}", param="file") from None
    try:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(purpose, str) or not purpose:
            raise bad_request("Missing required parameter: 'purpose'.", param="purpose")
        if not isinstance(upload, UploadFile):
            raise bad_request("Missing required parameter: 'file'.", param="file")
        ttl = files.check_expires_after(
            form.get("expires_after[anchor]"),  # type: ignore[arg-type]
            _int_field(form.get("expires_after[seconds]"), "expires_after.seconds"),
        )

        def store() -> JSON:
            with Session(state.engine, expire_on_commit=False) as session:
                row = files.upload(
                    session,
                    state.blobs,
                    state.settings,
                    org_id=org.id,
                    filename=upload.filename or "upload",
                    purpose=purpose,
                    source=upload.file,
                    ttl_seconds=ttl,
                )
                return file_object(row)

        return JSON(await run_in_threadpool(store))
    finally:
        await form.close()


@router.get("")
def list_files(
    org: OrgDep,
    session: SessionDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> JSON:
    rows, has_more = files.list_files(session, org.id, purpose=purpose, limit=limit, order=order, after=after)
    return JSON(list_object([file_object(r) for r in rows], has_more))


@router.get("/{file_id}")
async def retrieve_file(request: Request) -> JSON:
    state, org = caller(request)
    file_id = request.path_params["file_id"]  # read here: a declared parameter costs a validation
    return JSON(file_object(await state.reads.file(org.id, file_id)))


@router.delete("/{file_id}")
def delete_file(file_id: str, org: OrgDep, session: SessionDep, state: StateDep) -> JSON:
    files.delete_file(session, state.blobs, org.id, file_id)
    return JSON({"id": file_id, "object": "file", "deleted": True})


@router.get("/{file_id}/content")
async def file_content(file_id: str, org: OrgDep, state: StateDep) -> StreamingResponse:
    """The stored bytes, streamed. The database is only asked before the first byte: a slow reader must
    never hold a connection (40 of them would exhaust the pool and stall every other request)."""

    def lookup() -> tuple[str, int]:
        with Session(state.engine) as session:
            row = files.get_file(session, org.id, file_id)
            return row.blob_key, row.bytes

    key, size = await run_in_threadpool(lookup)

    def body() -> Iterator[bytes]:  # opened on the first read, so a response never sent leaks nothing
        with state.blobs.open_read(key) as stream:
            yield from read_chunks(stream)

    return StreamingResponse(
        body(), media_type="application/octet-stream", headers={"content-length": str(size)}
    )
