"""The composition root: the only place that registers workflows and activities with a worker.

Run it with `python worker.py` or `batchway worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.batch import BatchActivities
from batchway.blobstore import make_blob_store
from batchway.db import make_engine, migrate
from batchway.settings import Settings, get_settings
from batchway.temporal_client import connect
from workflows.batch import BatchWorkflow


def build_worker(client: Client, settings: Settings) -> Worker:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    acts = BatchActivities(engine, make_blob_store(settings.resolved_blob_url), settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[BatchWorkflow],
        activities=[
            acts.validate_batch,
            acts.submit_batch,
            acts.poll_batch,
            acts.cancel_upstream,
            acts.finalize_batch,
        ],
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    client = await connect(settings)
    worker = build_worker(client, settings)
    if stop is None:
        await worker.run()
        return
    async with worker:
        await stop.wait()


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
