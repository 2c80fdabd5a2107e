"""A cancel that lands while the upstream is still answering the batch create: the upstream batch
exists but batchway never learned its id. The cancel must find it by its tag and cancel it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from batchway.upstreams.base import BATCHWAY_TAG
from tests.batch_helpers import chat_line, content, submit, wait_for
from tests.servers import serve_in_thread

pytestmark = pytest.mark.usefixtures("worker")


class SlowCreateUpstream:
    """Just enough of OpenAI's Files + Batches API; `POST /v1/batches` records the batch, then hangs."""

    def __init__(self) -> None:
        self.batches: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self.release = threading.Event()
        self.app = FastAPI()
        self.app.post("/v1/files")(self.upload)
        self.app.post("/v1/batches")(self.create)
        self.app.get("/v1/batches")(self.list)
        self.app.get("/v1/batches/{batch_id}")(self.retrieve)
        self.app.post("/v1/batches/{batch_id}/cancel")(self.cancel)

    def batch(self, batch_id: str, status: str, metadata: dict[str, str]) -> dict[str, Any]:
        now = int(time.time())
        return {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": "file-up",
            "completion_window": "24h",
            "status": status,
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "expires_at": now + 86400,
            "request_counts": {"total": 2, "completed": 0, "failed": 0},
            "metadata": metadata,
        }

    async def upload(self) -> JSONResponse:
        now = int(time.time())
        return JSONResponse(
            {
                "id": "file-up",
                "object": "file",
                "bytes": 1,
                "created_at": now,
                "filename": "in.jsonl",
                "purpose": "batch",
                "status": "processed",
            }
        )

    async def create(self, request: Request) -> JSONResponse:
        body = await request.json()
        batch_id = f"batch_up{len(self.batches)}"
        self.batches[batch_id] = self.batch(batch_id, "in_progress", body["metadata"])
        await asyncio.to_thread(self.release.wait, 60)  # the response never comes in time
        return JSONResponse(self.batches[batch_id])

    async def list(self) -> JSONResponse:
        data = list(self.batches.values())[::-1]
        return JSONResponse(
            {"object": "list", "data": data, "first_id": None, "last_id": None, "has_more": False}
        )

    async def retrieve(self, batch_id: str) -> JSONResponse:
        return JSONResponse(self.batches[batch_id])

    async def cancel(self, batch_id: str) -> JSONResponse:
        self.cancelled.append(batch_id)
        self.batches[batch_id]["status"] = "cancelled"
        return JSONResponse(self.batches[batch_id])


async def test_cancel_during_create_cancels_the_batch_created_upstream(new_org, client_for) -> None:
    upstream = SlowCreateUpstream()
    with serve_in_thread(upstream.app) as url:
        try:
            _, key = new_org({"openai": url + "/v1"})
            client = client_for(key)
            created = await submit(client, [chat_line("a", "1"), chat_line("b", "2")])
            deadline = time.monotonic() + 30
            while not upstream.batches:  # the create call is now hanging upstream
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            await client.batches.cancel(created.id)
            batch = await wait_for(client, created.id, timeout=60)
        finally:
            upstream.release.set()
    ((upstream_id, upstream_batch),) = upstream.batches.items()
    assert upstream_batch["metadata"] == {BATCHWAY_TAG: created.id}
    assert upstream.cancelled == [upstream_id]  # found by its tag and cancelled, not left running
    assert batch.status == "cancelled"
    errors = await content(client, batch.error_file_id)
    assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}
