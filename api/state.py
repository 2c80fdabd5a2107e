"""What the API process holds for its lifetime: settings, DB engine, blob store, a Temporal client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.auth import KeyCache
from batchway.errors import APIError
from batchway.settings import Settings
from batchway.storage.blobstore import BlobStore
from batchway.temporal_client import connect

T = TypeVar("T")

# Connections of the PostgreSQL asyncio engine for hot reads (requests beyond them wait their turn).
READ_CONNECTIONS = 8


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    blobs: BlobStore
    keys: KeyCache
    async_engine: AsyncEngine | None = None  # PostgreSQL: hot reads on the event loop
    _client: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run `query(session, *args)` in one short session on the event loop, never in a thread (the hot
        read paths use this instead of sync dependencies, which cost a thread-pool hop each).

        A thread hop's GIL handoffs under load more than halved the API's throughput (bench/read_path.py,
        BENCHMARKS.md section 2). On PostgreSQL the sync query runs through the asyncio engine (psycopg's
        async driver; SQLAlchemy runs the sync code in a greenlet and awaits each round trip). On SQLite it
        runs inline: reading a few rows of a local file (WAL mode: readers never wait for the writer) costs
        less than any hand-off."""
        if self.async_engine is None:
            with Session(self.engine, expire_on_commit=False) as session:
                return query(session, *args)
        async with AsyncSession(self.async_engine, expire_on_commit=False) as session:
            return await session.run_sync(query, *args)

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
