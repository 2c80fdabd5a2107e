"""A worker process SIGKILLed in each phase of a batch: a new worker finishes it, with every line exactly
once and no second upstream batch, within seconds (the activities' heartbeat timeout, not their
start-to-close timeout). Real processes: `batchway worker` in a subprocess, the API over HTTP, the
hostile upstream over HTTP, the Temporal dev server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest
from sqlmodel import Session

from batchway.pipeline.fanout import FLUSH_SECONDS
from batchway.settings import Settings
from batchway.storage.db import make_engine
from batchway.storage.models import BatchRecord
from batchway.upstreams.fanout.config import LimiterConfig
from tests.batch_helpers import TERMINAL, chat_line, submit, wait_for
from tests.conftest import create_org
from tests.hostile import Faults, HostileUpstream, Timing
from tests.servers import serve_in_thread
from tests.test_hostile_batches import every_line_once

RECOVERY_BOUND_SECONDS = 45  # heartbeat timeout (10 s) + retry backoff + a loaded machine's slack


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHWAY_")}
    env |= {
        "BATCHWAY_DATA_DIR": str(settings.data_dir),
        "BATCHWAY_TEMPORAL_ADDRESS": settings.temporal_address,
        "BATCHWAY_TASK_QUEUE": settings.task_queue,
        "BATCHWAY_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "BATCHWAY_POLL_INTERVAL_MIN_SECONDS": "0.2",
        "BATCHWAY_POLL_INTERVAL_MAX_SECONDS": "1",
    }
    log = open(settings.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "batchway.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def worker_process(settings: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = [start_worker(settings)]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                kill(process)


def row_status(settings: Settings, batch_id: str) -> str | None:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        row = session.get(BatchRecord, batch_id)
    engine.dispose()
    return row.status if row else None


async def until(condition: Callable[[], bool], timeout: float = 60.0, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the kill point was never reached"
        await asyncio.sleep(every)


async def until_status(
    settings: Settings, batch_id: str, wanted: str, timeout: float = 60.0, every: float = 0.02
) -> None:
    """Wait for the batch row to say `wanted`; fail at once, naming the status, if it ended without."""
    deadline = time.monotonic() + timeout
    seen: list[str | None] = []
    while (status := row_status(settings, batch_id)) != wanted:
        if not seen or seen[-1] != status:
            seen.append(status)
        assert status not in TERMINAL, f"the batch ended {status} before {wanted} (went {seen})"
        assert time.monotonic() < deadline, f"the batch never reached {wanted} in {timeout} s (went {seen})"
        await asyncio.sleep(every)


PHASES: dict[str, dict[str, Any]] = {
    # phase: hostile faults/timing, input size
    "validate": {"faults": Faults(), "timing": Timing(run_seconds=2.0), "lines": 20},
    "submit": {
        "faults": Faults(stall_seconds=3, stall_routes=("files.create",)),
        "timing": None,
        "lines": 20,
    },
    "poll": {"faults": Faults(), "timing": Timing(run_seconds=4.0), "lines": 20},
    "collect": {
        "faults": Faults(stall_seconds=3, stall_routes=("files.content",)),
        "timing": None,
        "lines": 20,
    },
    "finalize": {"faults": Faults(), "timing": None, "lines": 20_000},
}


@pytest.mark.parametrize("phase", list(PHASES))
async def test_worker_killed_in_each_phase_recovers(
    phase: str, base_settings: Settings, start_api: Callable[..., str], temporal_env
) -> None:
    settings = base_settings.model_copy(update={"task_queue": f"crash-{phase}-{uuid.uuid4().hex[:6]}"})
    spec = PHASES[phase]
    upstream = HostileUpstream(spec["faults"], spec["timing"])
    with serve_in_thread(upstream.app) as url, worker_process(settings) as workers:
        _, key = create_org(settings.resolved_database_url, {"openai": url + "/v1"})
        api = start_api(task_queue=settings.task_queue)
        client = openai.AsyncOpenAI(base_url=api, api_key=key, max_retries=0, timeout=120)
        lines = [chat_line(f"{phase}-{i}", f"line {i}") for i in range(spec["lines"])]
        created = await submit(client, lines)
        calls = upstream.stats
        if phase == "submit":
            await until(lambda: calls()["calls"].get("files.create", 0) >= 1)
        elif phase == "poll":
            await until_status(settings, created.id, "in_progress", every=0.1)
        elif phase == "collect":
            await until(lambda: calls()["calls"].get("files.content", 0) >= 1)
        elif phase == "finalize":
            await until_status(settings, created.id, "finalizing", timeout=120, every=0.005)
        kill(workers[0])
        killed_status = row_status(settings, created.id)
        upstream.reset_faults()
        restarted = time.monotonic()
        workers.append(start_worker(settings))
        batch = await wait_for(client, created.id, timeout=120)
        recovery = time.monotonic() - restarted
    print(f"\nrecovery after SIGKILL in {phase} (row was {killed_status}): {recovery:.1f} s")
    assert batch.status == "completed"
    await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert upstream.stats()["batches_created"][created.id] == 1
    assert recovery < RECOVERY_BOUND_SECONDS


async def test_worker_killed_in_the_middle_of_a_fan_out(
    base_settings: Settings, start_api: Callable[..., str], start_simulator: Callable[..., str], temporal_env
) -> None:
    """A fan-out batch on a rate-limited upstream, its worker SIGKILLed mid-run: a new worker finishes it
    with every line once, and sends again only lines whose answer the dead worker had not stored."""
    import httpx

    from batchway.contracts import PROGRESS_QUERY

    settings = base_settings.model_copy(update={"task_queue": f"crash-fanout-{uuid.uuid4().hex[:6]}"})
    latency = 1.0  # seconds per call: many calls in flight when the worker dies
    sim_url = start_simulator(chat_latency_seconds=latency)
    sim = sim_url.removesuffix("/v1")
    with worker_process(settings) as workers:
        _, key = create_org(settings.resolved_database_url, {"vllm": sim_url}, kinds={"vllm": "fanout"})
        client = openai.AsyncOpenAI(
            base_url=start_api(task_queue=settings.task_queue), api_key=key, max_retries=0
        )
        lines = [chat_line(f"fan-{i}", f"line {i}") for i in range(600)]
        created = await submit(client, lines)
        deadline = time.monotonic() + 120
        while (await client.batches.retrieve(created.id)).request_counts.completed < 150:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        kill(workers[0])
        restarted = time.monotonic()
        workers.append(start_worker(settings))
        batch = await wait_for(client, created.id, timeout=180)
        recovery = time.monotonic() - restarted
        progress = await temporal_env.client.get_workflow_handle(created.id).query(PROGRESS_QUERY)
    bodies = httpx.get(f"{sim}/_simulator/chat/stats").json()["bodies"]
    print(
        f"\nfan-out: finished {recovery:.1f} s after the restart; upstream re-sends {bodies['repeats']} "
        f"(answered twice: {bodies['ok_repeats']}); re-sends batchway reported: {progress['resent']}"
    )
    assert batch.status == "completed" and batch.request_counts.completed == 600
    await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert bodies["distinct"] == 600
    # Answered twice: at most the calls in flight (the window never grows past its ceiling) plus the
    # answers that arrived since the last flush (one flush interval of answers at that window).
    window = LimiterConfig().ceiling_concurrency
    bound = window + window * FLUSH_SECONDS / latency
    assert bodies["ok_repeats"] <= bound, "more answered twice than were in flight or unflushed"
    # batchway's count is an estimate from the dead attempt's last heartbeat (the lines it had sent and
    # not stored, up to a few seconds old: 0 if it died before its first), under the same bound.
    assert progress["resent"] <= bound


async def test_worker_killed_while_finalizing_an_anthropic_batch(
    base_settings: Settings, start_api: Callable[..., str], start_simulator: Callable[..., str]
) -> None:
    settings = base_settings.model_copy(update={"task_queue": f"crash-claude-{uuid.uuid4().hex[:6]}"})
    root = start_simulator(lines_per_second=1_000_000).removesuffix("/v1")
    with worker_process(settings) as workers:
        _, key = create_org(settings.resolved_database_url, {"claude": root}, kinds={"claude": "anthropic"})
        client = openai.AsyncOpenAI(
            base_url=start_api(task_queue=settings.task_queue), api_key=key, max_retries=0
        )
        lines = [chat_line(f"a-{i}", f"line {i}", model="claude-x") for i in range(20_000)]
        created = await submit(client, lines)
        await until_status(settings, created.id, "finalizing", timeout=120, every=0.005)
        kill(workers[0])
        restarted = time.monotonic()
        workers.append(start_worker(settings))
        batch = await wait_for(client, created.id, timeout=120)
        recovery = time.monotonic() - restarted
    print(f"\nrecovery after SIGKILL while finalizing an Anthropic batch: {recovery:.1f} s")
    assert batch.status == "completed" and batch.request_counts.completed == 20_000
    await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert recovery < RECOVERY_BOUND_SECONDS
