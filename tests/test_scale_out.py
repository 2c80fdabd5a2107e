"""Many processes on shared engines: two `batchway api` and two `batchway worker` processes on one
PostgreSQL database, one S3-compatible store (moto_server) and one Temporal server. Batches created
through either API complete; a worker SIGKILLed in the middle of an OpenAI-style batch and of a fan-out
batch leaves the other to finish both with nothing lost or duplicated; a fan-out limit holds across both
workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from batchway.servers import free_port, wait_for_port
from batchway.settings import Settings
from tests.batch_helpers import chat_line, submit, wait_for
from tests.conftest import S3_BUCKET, create_org
from tests.hostile import HostileUpstream, Timing
from tests.servers import serve_in_thread
from tests.test_hostile_batches import every_line_once


class Cluster:
    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.api_urls: list[str] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHWAY_")}
        settings = self.settings
        return env | {
            "BATCHWAY_DATA_DIR": str(self.root),
            "BATCHWAY_DATABASE_URL": settings.database_url or "",
            "BATCHWAY_BLOB_URL": settings.blob_url or "",
            "BATCHWAY_TEMPORAL_ADDRESS": settings.temporal_address,
            "BATCHWAY_TASK_QUEUE": settings.task_queue,
            "BATCHWAY_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
            "BATCHWAY_POLL_INTERVAL_MIN_SECONDS": "0.2",
            "BATCHWAY_POLL_INTERVAL_MAX_SECONDS": "1",
            "BATCHWAY_FANOUT_WORKER_SHARE": "0.5",  # two workers share each provider's explicit limits
            "BATCHWAY_FANOUT_CHUNK_LINES": "50",
        }

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "batchway.cli", *args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes[name] = process
        return process

    def start_api(self, name: str) -> str:
        port = free_port()
        self.start(name, "api", "--port", str(port))
        wait_for_port("127.0.0.1", port, timeout=60)
        url = f"http://127.0.0.1:{port}/v1"
        self.api_urls.append(url)
        return url

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def cluster(base_settings: Settings, postgres_url: str, s3_env: str, tmp_path: Path) -> Iterator[Cluster]:
    settings = base_settings.model_copy(
        update={
            "database_url": postgres_url,
            "blob_url": f"s3://{S3_BUCKET}/scale-{uuid.uuid4().hex[:6]}",
            "task_queue": f"scale-{uuid.uuid4().hex[:6]}",
        }
    )
    cluster = Cluster(settings, tmp_path)
    try:
        cluster.start_api("api-1")
        cluster.start_api("api-2")
        cluster.start("worker-1", "worker")
        cluster.start("worker-2", "worker")
        yield cluster
    finally:
        cluster.stop()


async def test_two_apis_two_workers_survive_a_killed_worker(cluster: Cluster, start_simulator) -> None:
    hostile = HostileUpstream(timing=Timing(run_seconds=6.0))  # an OpenAI-style batch that runs a while
    sim = start_simulator(chat_latency_seconds=0.5)
    with serve_in_thread(hostile.app) as hostile_url:
        _, key = create_org(
            cluster.settings.resolved_database_url,
            {"openai": hostile_url + "/v1", "vllm": sim},
            kinds={"vllm": "fanout"},
        )
        first, second = (
            openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0) for url in cluster.api_urls
        )
        remote_lines = [chat_line(f"o-{i}", f"remote {i}") for i in range(40)]
        fanout_lines = [chat_line(f"f-{i}", f"fanned {i}") for i in range(400)]
        remote = await submit(first, remote_lines, extra_headers={"batchway-provider": "openai"})
        fanned = await submit(second, fanout_lines, extra_headers={"batchway-provider": "vllm"})
        await wait_for(second, remote.id, {"in_progress"}, timeout=60)  # either API reads every batch
        deadline = time.monotonic() + 60
        while (await first.batches.retrieve(fanned.id)).request_counts.completed < 50:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        cluster.kill("worker-1")  # whatever it was running, the other worker takes over
        remote_done = await wait_for(first, remote.id, timeout=120)
        fanned_done = await wait_for(second, fanned.id, timeout=120)
    assert remote_done.status == fanned_done.status == "completed"
    await every_line_once(first, remote_done, {line["custom_id"] for line in remote_lines})
    await every_line_once(second, fanned_done, {line["custom_id"] for line in fanout_lines})
    assert hostile.stats()["batches_created"][remote.id] == 1
    bodies = httpx.get(sim.removesuffix("/v1") + "/_simulator/chat/stats").json()["bodies"]
    assert bodies["distinct"] == 400 and bodies["ok_repeats"] <= 256


async def test_a_configured_fanout_limit_holds_across_two_workers(cluster: Cluster, start_simulator) -> None:
    sim = start_simulator(chat_latency_seconds=0.05)
    _, key = create_org(
        cluster.settings.resolved_database_url,
        {"vllm": sim},
        kinds={"vllm": "fanout"},
        options={"vllm": {"rpm": 120}},
    )
    client = openai.AsyncOpenAI(base_url=cluster.api_urls[0], api_key=key, max_retries=0)
    # Two batches at once: both workers run chunks of them.
    batches = [
        await submit(client, [chat_line(f"b{n}-{i}", f"x {n} {i}") for i in range(100)]) for n in range(2)
    ]
    started = time.monotonic()
    for created in batches:
        assert (await wait_for(client, created.id, timeout=240)).request_counts.completed == 100
    stats = httpx.get(sim.removesuffix("/v1") + "/_simulator/chat/stats", params={"window": 60}).json()
    print(
        f"\n200 lines at rpm 120 over two workers: {time.monotonic() - started:.0f} s, "
        f"max {stats['window']['max_admitted']} admitted in any 60 s"
    )
    assert stats["window"]["max_admitted"] <= 120
