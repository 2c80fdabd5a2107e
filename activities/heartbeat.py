"""Heartbeats for activities that wait on I/O: Temporal notices a dead worker within the heartbeat
timeout, and a cancel reaches the activity at its next beat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity

HEARTBEAT_SECONDS = 2.0


@asynccontextmanager
async def heartbeating(details: Callable[[], Any] | None = None) -> AsyncIterator[None]:
    """Heartbeat every few seconds while the block runs (its blocking work runs in threads, so the loop
    is free to beat), with `details()` when given: what a retried attempt will read back."""

    async def beat() -> None:
        while True:
            if details is None:
                activity.heartbeat()
            else:
                activity.heartbeat(details())
            await asyncio.sleep(HEARTBEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
