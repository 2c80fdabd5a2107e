"""Routes of the simulated OpenAI Batch API (`/v1/batches...`), contract §2.

Batches move by the clock (see `openai_objects`); every read advances them to now first.
"""

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from batchway.simulator.config import SimulatorConfig
from batchway.simulator.errors import bad_request, not_found
from batchway.simulator.lines import SUPPORTED_ENDPOINTS
from batchway.simulator.openai_common import cursor_seq, paginate, parse_expires_after, read_json_body
from batchway.simulator.openai_objects import FILE_TTL_SECONDS, TERMINAL_STATUSES, Batch, PreparedInput
from batchway.simulator.openai_prepare import PreparedRecord, prepare_input
from batchway.simulator.openai_store import OpenAIStore
from batchway.simulator.responses import json_response
from batchway.simulator.storage import write_atomic


@dataclass(frozen=True)
class _CreateParams:
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    output_ttl_seconds: float


def _create_params(body: dict[str, Any]) -> _CreateParams:
    """The checks `POST /v1/batches` does before it looks at the input file."""
    for name in ("input_file_id", "endpoint", "completion_window"):
        if body.get(name) is None:
            raise bad_request(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    endpoint, window, input_file_id = body["endpoint"], body["completion_window"], body["input_file_id"]
    if endpoint not in SUPPORTED_ENDPOINTS:
        raise bad_request(
            f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: "
            f"{', '.join(SUPPORTED_ENDPOINTS)}.",
            "endpoint",
        )
    if window != "24h":
        raise bad_request(
            f"Invalid value for 'completion_window': {window!r}. Supported values are: '24h'.",
            "completion_window",
        )
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
        and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    ):
        raise bad_request(
            "Invalid 'metadata': expected at most 16 pairs of string keys (up to 64 characters) and "
            "string values (up to 512 characters).",
            "metadata",
        )
    expires_after = body.get("output_expires_after")
    if expires_after is not None and not isinstance(expires_after, dict):
        raise bad_request("Invalid 'output_expires_after': expected an object.", "output_expires_after")
    output_ttl = float(FILE_TTL_SECONDS)
    if expires_after is not None:
        anchor, seconds = expires_after.get("anchor"), expires_after.get("seconds")
        output_ttl = parse_expires_after(anchor, seconds, "output_expires_after") or output_ttl
    if not isinstance(input_file_id, str):
        raise bad_request("Invalid 'input_file_id': expected a string.", "input_file_id")
    return _CreateParams(input_file_id, endpoint, window, metadata, output_ttl)


def create_batches_router(
    store: OpenAIStore, config: SimulatorConfig, caller: Callable[[Request], str]
) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/batches", name="batches.create")
    async def create_batch(request: Request, owner: str = Depends(caller)) -> Response:
        params = _create_params(await read_json_body(request))
        stored = store.files.get(params.input_file_id)
        if stored is None or stored.owner != owner:
            raise not_found("File", params.input_file_id, param="input_file_id")
        if stored.purpose != "batch":
            raise bad_request(
                f"File {params.input_file_id} has purpose {stored.purpose!r}; "
                "batch input files must have purpose 'batch'.",
                "input_file_id",
            )

        now = time.time()
        batch_id = "batch_" + secrets.token_hex(16)
        scratch = store.scratch_path(batch_id)

        def prepare() -> PreparedInput:
            prepared = prepare_input(stored.path, scratch, params.endpoint, batch_id, int(now))
            # Persisted before the batch record, which is what makes the batch exist after a restart.
            write_atomic(store.prepared_path(batch_id), PreparedRecord.dump(prepared))
            return prepared

        try:
            prepared = await asyncio.to_thread(prepare)
        except FileNotFoundError:  # deleted while we were reading it
            raise not_found("File", params.input_file_id, param="input_file_id") from None
        batch = Batch(
            id=batch_id,
            owner=owner,
            seq=store.next_seq(batch_id),
            endpoint=params.endpoint,
            input_file_id=params.input_file_id,
            completion_window=params.completion_window,
            metadata=params.metadata,
            output_ttl_seconds=params.output_ttl_seconds,
            created_at=now,
            expires_at=now + config.window_seconds,
            prepared=prepared,
            scratch_path=scratch,
        )
        store.add_batch(batch)
        return json_response(batch.to_json())

    @router.get("/batches", name="batches.list")
    async def list_batches(
        owner: str = Depends(caller),
        limit: int = Query(20, ge=1, le=100),
        after: str | None = None,
    ) -> Response:
        batches = sorted(
            (b for b in store.batches.values() if b.owner == owner), key=lambda b: b.seq, reverse=True
        )
        page = paginate(batches, cursor_seq(store.seq_by_id, after), True, limit)
        # Refresh only what is returned: a page is at most 100 batches.
        page["data"] = [(await store.refresh(store.batches[item["id"]])).to_json() for item in page["data"]]
        return json_response(page)

    @router.get("/batches/{batch_id}", name="batches.retrieve")
    async def retrieve_batch(batch_id: str, owner: str = Depends(caller)) -> Response:
        batch = await store.refresh(store.get_batch(batch_id, owner))
        return json_response(batch.to_json())

    @router.post("/batches/{batch_id}/cancel", name="batches.cancel")
    async def cancel_batch(batch_id: str, owner: str = Depends(caller)) -> Response:
        # The SDK sends `content-type: application/json` with an empty body; never read it.
        batch = await store.refresh(store.get_batch(batch_id, owner))
        if batch.status in TERMINAL_STATUSES:
            raise bad_request(f"Cannot cancel a batch with status '{batch.status}'.")
        if batch.status != "cancelling":
            batch.status, batch.cancelling_at = "cancelling", time.time()
            store.save_batch(batch)  # lines done so far are frozen now; a restart must not replay past them
        return json_response(batch.to_json())

    return router


def create_batches_control_router(store: OpenAIStore) -> APIRouter:
    """Test hooks (no auth): every OpenAI batch of every owner."""
    router = APIRouter(prefix="/_simulator")

    @router.get("/batches")
    async def all_batches() -> Response:
        batches = sorted(store.batches.values(), key=lambda b: b.seq, reverse=True)
        return json_response(
            {"object": "list", "data": [(await store.refresh(b)).to_json() for b in batches]}
        )

    return router
