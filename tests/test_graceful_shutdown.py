"""Stopping processes with real signals: a worker's SIGTERM lets running work finish within the grace,
hands the rest back to Temporal for another worker, and exits 0 (also as PID 1 in a container); the
API's SIGTERM finishes the requests in flight."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from batchway.servers import free_port, wait_for_port
from batchway.settings import Settings
from tests.batch_helpers import chat_line, jsonl, submit, wait_for
from tests.conftest import create_org
from tests.test_hostile_batches import every_line_once

GRACE_SECONDS = 4


def process_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHWAY_")}
    return env | {
        "BATCHWAY_DATA_DIR": str(settings.data_dir),
        "BATCHWAY_TEMPORAL_ADDRESS": settings.temporal_address,
        "BATCHWAY_TASK_QUEUE": settings.task_queue,
        "BATCHWAY_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "BATCHWAY_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "BATCHWAY_POLL_INTERVAL_MIN_SECONDS": "0.2",
        "BATCHWAY_POLL_INTERVAL_MAX_SECONDS": "1",
    }


def spawn(command: list[str], settings: Settings) -> subprocess.Popen[bytes]:
    log = open(settings.data_dir / f"proc-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115
    try:
        return subprocess.Popen(command, env=process_env(settings), stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


@pytest.fixture
def queue_settings(base_settings: Settings) -> Settings:
    return base_settings.model_copy(update={"task_queue": f"stop-{uuid.uuid4().hex[:6]}"})


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


async def stop_and_wait(
    process: subprocess.Popen[bytes], signal_to: int | None = None, *, send: bool = True
) -> tuple[int, float]:
    started = time.monotonic()
    if send:
        os.kill(signal_to or process.pid, signal.SIGTERM)
    while process.poll() is None:
        assert time.monotonic() - started < GRACE_SECONDS + 30, "the worker did not stop"
        await asyncio.sleep(0.1)
    return process.returncode, time.monotonic() - started


async def run_fanout_through_a_sigterm(
    settings: Settings,
    start_api: Callable[..., str],
    start_simulator: Callable[..., str],
    processes: list[subprocess.Popen[bytes]],
    first_worker: list[str],
    pid_of: Callable[[subprocess.Popen[bytes]], int] | None = None,
) -> float:
    sim = start_simulator(chat_latency_seconds=2.0)  # calls in flight when the signal lands
    _, key = create_org(settings.resolved_database_url, {"vllm": sim}, kinds={"vllm": "fanout"})
    client = openai.AsyncOpenAI(
        base_url=start_api(task_queue=settings.task_queue), api_key=key, max_retries=0
    )
    worker = spawn(first_worker, settings)
    processes.append(worker)
    lines = [chat_line(f"g-{i}", f"line {i}") for i in range(300)]
    created = await submit(client, lines)
    await wait_for(client, created.id, {"in_progress"}, timeout=60)
    await asyncio.sleep(1.0)
    code, took = await stop_and_wait(worker, pid_of(worker) if pid_of else None)
    assert code == 0, "a graceful stop exits 0"
    assert took < GRACE_SECONDS + 15
    processes.append(spawn([sys.executable, "worker.py"], settings))  # another worker takes over
    batch = await wait_for(client, created.id, timeout=120)
    assert batch.status == "completed" and batch.request_counts.completed == 300
    await every_line_once(client, batch, {line["custom_id"] for line in lines})
    return took


async def test_sigterm_stops_a_worker_gracefully_and_another_finishes(
    queue_settings, start_api, start_simulator, processes, temporal_env
) -> None:
    took = await run_fanout_through_a_sigterm(
        queue_settings,
        start_api,
        start_simulator,
        processes,
        [sys.executable, "-m", "batchway.cli", "worker"],
    )
    print(f"\nworker stopped {took:.1f} s after SIGTERM (grace {GRACE_SECONDS} s)")


@pytest.mark.skipif(
    not shutil.which("unshare") or os.geteuid() != 0, reason="a PID namespace needs unshare and root"
)
async def test_worker_py_as_pid_1_stops_on_sigterm(
    queue_settings, start_api, start_simulator, processes, temporal_env
) -> None:
    """PID 1 ignores every signal it has no handler for: the worker installs its own."""

    def pid_1_in_its_namespace(unshare: subprocess.Popen[bytes]) -> int:
        children = subprocess.run(
            ["pgrep", "-P", str(unshare.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children, "the worker under unshare is not running"
        return int(children[0])

    command = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "worker.py"]
    await run_fanout_through_a_sigterm(
        queue_settings, start_api, start_simulator, processes, command, pid_of=pid_1_in_its_namespace
    )


async def test_sigterm_lets_the_api_finish_requests_in_flight(queue_settings, new_org, processes) -> None:
    _, key = new_org()
    port = free_port()
    api = spawn([sys.executable, "-m", "batchway.cli", "api", "--port", str(port)], queue_settings)
    processes.append(api)
    wait_for_port("127.0.0.1", port, timeout=60)
    body = jsonl([chat_line(f"u-{i}", "x" * 1000) for i in range(3000)])

    async def slow_upload() -> httpx.Response:
        async def trickle() -> object:
            for start in range(0, len(body), 256 * 1024):
                yield body[start : start + 256 * 1024]
                await asyncio.sleep(0.25)

        boundary = "batchwayboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def content() -> object:
            yield head
            async for part in trickle():
                yield part
            yield tail

        async with httpx.AsyncClient(timeout=60) as http:
            return await http.post(
                f"http://127.0.0.1:{port}/v1/files",
                content=content(),
                headers={
                    "authorization": f"Bearer {key}",
                    "content-type": f"multipart/form-data; boundary={boundary}",
                },
            )

    upload = asyncio.create_task(slow_upload())
    await asyncio.sleep(1.0)  # the upload is streaming now
    api.send_signal(signal.SIGTERM)
    response = await upload
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(body)
    code, _ = await stop_and_wait(api, send=False)
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down cleanly
