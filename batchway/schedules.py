"""Temporal schedules batchway keeps: the sweeper, one per task queue (created idempotently at worker
start, so a fresh cluster needs no setup step for it)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from batchway.contracts import SWEEPER_SCHEDULE_ID, SWEEPER_WORKFLOW_TYPE
from batchway.settings import Settings


def sweeper_schedule_id(settings: Settings) -> str:
    return f"{SWEEPER_SCHEDULE_ID}-{settings.task_queue}"


async def ensure_sweeper_schedule(client: Client, settings: Settings) -> None:
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            SWEEPER_WORKFLOW_TYPE,
            id=f"sweeper-{settings.task_queue}",
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.sweep_interval_seconds))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(sweeper_schedule_id(settings), schedule)
