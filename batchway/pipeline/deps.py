"""What the pipeline steps share in a worker process: storage, settings, the upstream clients, and a
thread pool for every blocking call (the worker's event loop must stay free for heartbeats and
workflow tasks)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from batchway import tenancy
from batchway.secret_box import SecretBox
from batchway.settings import Settings
from batchway.storage.blobstore import BlobStore
from batchway.storage.models import BatchRecord
from batchway.upstreams.base import PermanentUpstreamError, Upstream
from batchway.upstreams.pool import UpstreamPool
from batchway.upstreams.registry import ProviderKind, UpstreamConfig, get_kind

P = ParamSpec("P")
T = TypeVar("T")
BLOCKING_THREADS = 32


@dataclass
class Deps:
    engine: Engine
    blobs: BlobStore
    settings: Settings
    upstreams: UpstreamPool
    box: SecretBox
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="batchway-io")
    )

    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking call (database, blob store, parsing) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def upstream_config(self, batch: BatchRecord) -> tuple[ProviderKind, UpstreamConfig]:
        """The provider the batch runs on, as configured now (blocking)."""
        with Session(self.engine) as session:
            row = tenancy.get_provider(session, batch.org_id, batch.provider)
        if row is None:
            raise PermanentUpstreamError(f"provider '{batch.provider}' is no longer configured for the org")
        config = UpstreamConfig(
            kind=row.kind,
            api_key=self.box.open(row.api_key),
            base_url=row.base_url,
            options=row.options or {},
        )
        return get_kind(row.kind), config

    async def upstream(self, batch: BatchRecord) -> Upstream:
        _, config = await self.blocking(self.upstream_config, batch)
        return self.upstreams.get(config)

    async def aclose(self) -> None:
        await self.upstreams.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)
