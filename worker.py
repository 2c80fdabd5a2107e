"""The composition root: the only place that registers workflows and activities with a worker.

Run it with `python worker.py` or `batchway worker`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum, Worker

from activities.fanout import FanoutActivities
from activities.notify import NotifyActivities
from activities.remote import RemoteActivities
from activities.rows import RowActivities
from activities.sweeper import SweeperActivities
from batchway.pipeline.deps import Deps
from batchway.schedules import ensure_sweeper_schedule
from batchway.secret_box import load_box
from batchway.servers import embedded_server, serve_until
from batchway.settings import Settings, get_settings
from batchway.storage.blobstore import make_blob_store
from batchway.storage.db import make_engine, migrate
from batchway.temporal_client import connect
from batchway.upstreams.pool import UpstreamPool
from batchway.upstreams.registry import preload_adapters
from batchway.worker_health import health_app
from workflows.batch import BatchWorkflow
from workflows.recovery import RecoverBatchWorkflow
from workflows.sweeper import SweeperWorkflow

log = logging.getLogger("batchway.worker")


def build_deps(settings: Settings) -> Deps:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    box = load_box(settings)  # fails fast, before anything starts, when no master key is configured
    preload_adapters()
    return Deps(engine, make_blob_store(settings.resolved_blob_url), settings, UpstreamPool(settings), box)


def build_worker(client: Client, settings: Settings, deps: Deps, notify: NotifyActivities) -> Worker:
    rows, remote, fanout = RowActivities(deps), RemoteActivities(deps), FanoutActivities(deps)
    sweeper = SweeperActivities(deps, client)
    pollers = (
        PollerBehaviorAutoscaling()
        if settings.worker_autoscale_pollers
        else PollerBehaviorSimpleMaximum(maximum=5)  # the SDK's default
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[BatchWorkflow, RecoverBatchWorkflow, SweeperWorkflow],
        activities=[
            rows.open_batch,
            rows.finalize_batch,
            rows.mark_cancelling,
            rows.score_batch,
            fanout.plan_chunks,
            fanout.run_chunk,
            remote.submit_batch,
            remote.poll_batch,
            remote.cancel_upstream,
            remote.collect_results,
            sweeper.recover_orphans,
            sweeper.housekeep,
            remote.cleanup_upstream,
            notify.notify_batch,
        ],
        graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_seconds),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_task_poller_behavior=pollers,
        activity_task_poller_behavior=pollers,
        # Heartbeat details are a fan-out chunk's record of the lines it sent: send them within ~2 s
        # (Temporal's default would wait 0.8 x the heartbeat timeout), so a crash loses little of it.
        default_heartbeat_throttle_interval=timedelta(seconds=1),
        max_heartbeat_throttle_interval=timedelta(seconds=2),
    )


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """A started worker (with the sweeper schedule, and its health server when a port is set), shut down
    with its upstream clients on exit."""
    deps = build_deps(settings)
    notify = NotifyActivities(deps)
    health_stop = asyncio.Event()
    health: asyncio.Task[None] | None = None
    try:
        await ensure_sweeper_schedule(client, settings)
        if settings.worker_health_port is not None:
            server = embedded_server(
                health_app(deps, client), settings.worker_health_host, settings.worker_health_port
            )
            health = asyncio.create_task(serve_until(server, health_stop))
            while not server.started and not health.done():  # listening before the worker says it runs
                await asyncio.sleep(0.02)
        async with build_worker(client, settings, deps, notify) as worker:
            yield worker
    finally:
        health_stop.set()
        if health is not None:
            await asyncio.gather(health, return_exceptions=True)
        await notify.aclose()
        await deps.aclose()
        deps.engine.dispose()


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set or, without one, until SIGTERM/SIGINT: then stop polling for new work, let
    running activities finish within the shutdown grace (the rest are cancelled, heartbeat their state,
    and Temporal retries them on another worker) and return, so the process exits 0. Signal handlers are
    installed explicitly, so this also holds as PID 1 in a container."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    client = await connect(settings)
    async with running_worker(client, settings):
        # What start-up built lives as long as the process: frozen, full collections stop walking it
        # (a 300-batch run: five pauses of about 155 ms before, four of about 60 ms after).
        gc.freeze()
        await stop.wait()
        log.info("stopping: finishing running activities (up to %s s)", settings.shutdown_grace_seconds)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
