"""Whether a process can do its work: the database, the blob store and Temporal, each checked with a
short timeout. `/readyz` on the API and on the worker's health port answer 503 naming what failed."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.client import Client

from batchway.storage.blobstore import BlobStore

CHECK_TIMEOUT_SECONDS = 3.0
PROBE_KEY = "_readyz/probe"


def _database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _blobs(blobs: BlobStore) -> None:
    blobs.exists(PROBE_KEY)  # any answer, even "no such blob", means the store answers


async def _temporal(client: Client | None) -> None:
    if client is None:
        raise ConnectionError("no connection to Temporal")
    await client.service_client.check_health()


async def readiness(engine: Engine, blobs: BlobStore, client: Client | None) -> tuple[bool, dict[str, Any]]:
    checks = {
        "database": asyncio.to_thread(_database, engine),
        "blob_store": asyncio.to_thread(_blobs, blobs),
        "temporal": _temporal(client),
    }
    results: dict[str, Any] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which and why
            results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
    ready = all(value == "ok" for value in results.values())
    return ready, {"status": "ready" if ready else "not ready", "checks": results}
