"""Building input files and waiting for batches, shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import openai
import orjson
from openai.types import Batch

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def chat_line(custom_id: str, text: str, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }
    line.update(extra)
    return line


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def parse_jsonl(data: bytes) -> dict[str, dict[str, Any]]:
    """Result lines keyed by custom_id."""
    out = {}
    for raw in data.splitlines():
        if raw.strip():
            obj = orjson.loads(raw)
            out[obj["custom_id"]] = obj
    return out


async def upload(client: openai.AsyncOpenAI, lines: list[dict[str, Any]], name: str = "input.jsonl") -> str:
    return (await client.files.create(file=(name, jsonl(lines)), purpose="batch")).id


async def submit(client: openai.AsyncOpenAI, lines: list[dict[str, Any]], **kwargs: Any) -> Batch:
    file_id = await upload(client, lines)
    return await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", **kwargs
    )


async def wait_for(
    client: openai.AsyncOpenAI, batch_id: str, statuses: set[str] = TERMINAL, timeout: float = 60.0
) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} stuck in {batch.status}, wanted {statuses}")
        await asyncio.sleep(0.2)


async def content(client: openai.AsyncOpenAI, file_id: str) -> dict[str, dict[str, Any]]:
    return parse_jsonl((await client.files.content(file_id)).content)


REPLAY_DIR = Path(__file__).parent / "replay" / "histories"


async def record_history(temporal_env: Any, batch_id: str, name: str) -> None:
    """With BATCHWAY_RECORD_HISTORIES=1, refresh tests/replay/histories after a deliberate change."""
    if os.environ.get("BATCHWAY_RECORD_HISTORIES"):
        handle = temporal_env.client.get_workflow_handle(batch_id)
        await handle.result()  # the workflow closes after the row ends (webhook, scoring, cleanup)
        (REPLAY_DIR / f"{name}.json").write_text((await handle.fetch_history()).to_json())
