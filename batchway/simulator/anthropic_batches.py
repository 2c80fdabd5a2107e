"""Routes of the simulated Anthropic Message Batches API (`/v1/messages/batches...`), contract §3.

The official `anthropic` SDK works against it unchanged (`Anthropic(base_url="http://host:port")`).
Auth takes `x-api-key: <key>` or `Authorization: Bearer <key>` (anthropic >= 2 sends the latter);
every call needs an `anthropic-version` header, whatever its value. Errors use Anthropic's envelope.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from batchway.simulator.anthropic_errors import AnthropicError, invalid_request
from batchway.simulator.anthropic_objects import MessageBatch
from batchway.simulator.anthropic_store import AnthropicStore
from batchway.simulator.anthropic_validation import checked_requests
from batchway.simulator.auth import bearer_token, key_matches, owner_key
from batchway.simulator.config import SimulatorConfig
from batchway.simulator.responses import json_response

ANTHROPIC_PATH_PREFIX = "/v1/messages"  # errors under it use Anthropic's envelope


def anthropic_caller(config: SimulatorConfig) -> Callable[[Request], str]:
    """A dependency returning the caller's owner key (scopes batches like an Anthropic workspace)."""

    def caller(request: Request) -> str:
        token = request.headers.get("x-api-key", "").strip() or bearer_token(request)
        if config.api_key is not None:
            if not token:
                raise AnthropicError(401, "x-api-key header is required")
            if not key_matches(config.api_key, token):
                raise AnthropicError(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise invalid_request("anthropic-version: header is required")
        return owner_key(token)

    return caller


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed `limit` bytes (Anthropic: 256 MB per batch)."""
    too_large = AnthropicError(413, f"Request exceeds the maximum allowed number of bytes ({limit}).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid_request("There was an issue with the format of your request: invalid JSON") from None


def _page(
    batches: list[MessageBatch],
    seq_by_id: dict[str, int],
    after_id: str | None,
    before_id: str | None,
    limit: int,
) -> tuple[list[MessageBatch], bool]:
    """One page of `batches` (newest first) and whether more lie beyond it in the paging direction."""
    if after_id is not None and before_id is not None:
        raise invalid_request("Only one of after_id and before_id may be given")
    for name, cursor in (("after_id", after_id), ("before_id", before_id)):
        if cursor is not None and cursor not in seq_by_id:
            raise invalid_request(f"{name}: no message batch with id {cursor!r}")
    if before_id is not None:
        newer = [b for b in batches if b.seq > seq_by_id[before_id]]
        return newer[-limit:], len(newer) > limit  # the `limit` batches right before the cursor
    if after_id is not None:
        batches = [b for b in batches if b.seq < seq_by_id[after_id]]
    return batches[:limit], len(batches) > limit


def create_message_batches_router(store: AnthropicStore, config: SimulatorConfig) -> APIRouter:
    router = APIRouter(prefix=f"{ANTHROPIC_PATH_PREFIX}/batches")
    caller = anthropic_caller(config)

    def render(batch: MessageBatch, request: Request) -> Response:
        return json_response(batch.to_json(str(request.base_url)))

    @router.post("", name="batches.create")
    async def create_batch(request: Request, owner: str = Depends(caller)) -> Response:
        raw = await _read_body(request, config.anthropic_max_body_bytes)

        def build() -> MessageBatch:  # parsing and answering up to 100,000 requests: off the event loop
            return store.create(owner, checked_requests(_parse_json(raw), config.anthropic_max_requests))

        batch = await asyncio.to_thread(build)
        store.add(batch)
        return render(batch, request)

    @router.get("", name="batches.list")
    async def list_batches(
        request: Request,
        owner: str = Depends(caller),
        after_id: str | None = None,
        before_id: str | None = None,
        limit: int = Query(20, ge=1, le=1000),
    ) -> Response:
        owned = sorted(
            (b for b in store.batches.values() if b.owner == owner), key=lambda b: b.seq, reverse=True
        )
        page, has_more = _page(owned, store.seq_by_id, after_id, before_id, limit)
        base_url = str(request.base_url)
        return json_response(
            {
                "data": [store.refresh(batch).to_json(base_url) for batch in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    @router.get("/{batch_id}", name="batches.retrieve")
    async def retrieve_batch(batch_id: str, request: Request, owner: str = Depends(caller)) -> Response:
        return render(store.get(batch_id, owner), request)

    @router.post("/{batch_id}/cancel", name="batches.cancel")
    async def cancel_batch(batch_id: str, request: Request, owner: str = Depends(caller)) -> Response:
        batch = store.get(batch_id, owner)
        if batch.ended:
            raise invalid_request(f"Message batch {batch_id} has already ended and cannot be canceled.")
        store.cancel(batch)  # canceling again is a no-op
        return render(batch, request)

    @router.delete("/{batch_id}", name="batches.delete")
    async def delete_batch(batch_id: str, owner: str = Depends(caller)) -> Response:
        batch = store.get(batch_id, owner)
        if not batch.ended:
            raise invalid_request(
                f"Message batch {batch_id} is still {batch.processing_status}; only batches that have ended "
                "can be deleted. Cancel it first."
            )
        store.delete(batch)
        return json_response({"id": batch_id, "type": "message_batch_deleted"})

    @router.get("/{batch_id}/results", name="batches.results")
    async def batch_results(batch_id: str, owner: str = Depends(caller)) -> Response:
        batch = store.get(batch_id, owner)
        if not batch.ended:
            raise invalid_request(
                f"Message batch {batch_id} is still {batch.processing_status}; results are available once "
                "it has ended."
            )
        # A sync generator: Starlette reads the file in a worker thread, chunk by chunk.
        return StreamingResponse(store.results_jsonl(batch), media_type="application/binary")

    return router


def create_message_batches_control_router(store: AnthropicStore) -> APIRouter:
    """Test hooks (no auth): every message batch of every owner, newest first."""
    router = APIRouter(prefix="/_simulator/anthropic")

    @router.get("/batches")
    async def all_message_batches(request: Request) -> Response:
        batches = sorted(store.batches.values(), key=lambda b: b.seq, reverse=True)
        base_url = str(request.base_url)
        return json_response({"data": [store.refresh(batch).to_json(base_url) for batch in batches]})

    return router
