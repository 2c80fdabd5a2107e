"""Timeouts and retry policies of BatchWorkflow's activities, in one place.

Every activity that talks to an upstream or moves many lines heartbeats (every 2 s) under a short
heartbeat timeout, so a killed worker is noticed in seconds and the attempt moves to another worker;
start-to-close only bounds a stuck attempt. The activities' own checkpoints (the database, the
adapter's upstream record) make a retried attempt resume rather than redo.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

HEARTBEAT = timedelta(seconds=10)
PERMANENT = ["UpstreamPermanent", "BatchNotFound"]


def _retry(*, maximum: float = 60, attempts: int = 0) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=maximum),
        maximum_attempts=attempts,
        non_retryable_error_types=PERMANENT,
    )


OPEN: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=HEARTBEAT, retry_policy=_retry()
)
# Uploading 200 MB can take a while; the workflow waits for a cancelled attempt to stop before it
# cancels upstream, so the two never race.
SUBMIT: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(minutes=30),
    heartbeat_timeout=HEARTBEAT,
    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry_policy=_retry(),
)
# A poll that keeps failing gives the loop back its turn: the next timer polls again.
POLL: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(minutes=3),
    heartbeat_timeout=HEARTBEAT,
    retry_policy=_retry(maximum=30, attempts=5),
)
CANCEL: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(minutes=3),
    heartbeat_timeout=HEARTBEAT,
    retry_policy=_retry(maximum=30, attempts=5),
)
# Downloading results retries for a bounded time; after that the lines end as failed.
COLLECT: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(minutes=30),
    schedule_to_close_timeout=timedelta(hours=2),
    heartbeat_timeout=HEARTBEAT,
    retry_policy=_retry(maximum=120),
)
# Local I/O only (database and blob store): retried until it succeeds, through any outage.
FINALIZE: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(minutes=30),
    heartbeat_timeout=HEARTBEAT,
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)
PLAN: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=HEARTBEAT, retry_policy=_retry()
)
# A chunk runs its lines with per-line retries of its own; an attempt fails only when its worker does
# (or storage is down), and the next attempt resumes from what is stored. The workflow waits for a
# cancelled chunk to store what its in-flight calls answered.
CHUNK: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(hours=6),
    heartbeat_timeout=HEARTBEAT,
    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry_policy=_retry(),
)
# A webhook is retried with backoff for about a day, then given up (its delivery log says so).
NOTIFY: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(hours=24),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=30),
    ),
)
# Scoring a completed batch: long (a judge call per sampled line), heartbeating, resumable.
SCORE: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(hours=2),
    schedule_to_close_timeout=timedelta(hours=12),
    heartbeat_timeout=HEARTBEAT,
    retry_policy=_retry(maximum=300),
)
