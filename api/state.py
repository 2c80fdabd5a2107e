"""What the API process holds for its lifetime: settings, DB engine and hot reads, blob store, a Temporal
client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.auth import KeyCache
from batchway.errors import APIError
from batchway.settings import Settings
from batchway.storage.blobstore import BlobStore
from batchway.storage.hot_reads import HotReads
from batchway.temporal_client import connect

# PostgreSQL connections for the hot reads (requests beyond them wait their turn).
READ_CONNECTIONS = 8


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    blobs: BlobStore
    keys: KeyCache
    reads: HotReads  # the polled GETs, in plain SQL on the event loop
    _client: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

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
