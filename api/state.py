"""What the API process holds for its lifetime: settings, DB engine, blob store, a Temporal client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.auth import KeyCache
from batchway.errors import APIError
from batchway.settings import Settings
from batchway.storage.blobstore import BlobStore
from batchway.temporal_client import connect

T = TypeVar("T")

# Hot reads on PostgreSQL share this many thread-pool threads (and pooled connections, fewer than the
# pool holds): more would only contend for the GIL and push the connection pool into overflow
# connections, which are opened and closed per request.
READ_CONCURRENCY = 8


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    blobs: BlobStore
    keys: KeyCache
    _client: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _reads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(READ_CONCURRENCY))

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run `query(session, *args)` in one short session (the hot read paths use this instead of sync
        dependencies, which cost a thread-pool hop each).

        On PostgreSQL the query runs in the thread pool: it waits on the network. On SQLite it runs right
        here on the event loop: reading a few rows of a local file (WAL mode: readers never wait for the
        writer) costs less than handing it to a thread and back, whose GIL handoffs under load more than
        halved the API's throughput (bench/read_path.py, BENCHMARKS.md section 2)."""

        def run() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                return query(session, *args)

        if self.engine.dialect.name == "sqlite":
            return run()
        async with self._reads:
            return await run_in_threadpool(run)

    async def temporal(self) -> Client:
        """Connect on first use, so reads keep working while Temporal is down."""
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect(self.settings)
                except Exception as exc:
                    raise APIError(
                        503, f"The batch engine is unavailable right now: {exc}", type="server_error"
                    ) from exc
            return self._client

    async def temporal_or_none(self) -> Client | None:
        """The client if Temporal is reachable (a cancel is recorded on the row either way)."""
        try:
            return await self.temporal()
        except APIError:
            return None
