"""Operators' view: liveness, readiness naming what failed, and Prometheus metrics, on the API and on the
worker's health port."""

from __future__ import annotations

import httpx
import pytest

from batchway.servers import free_port
from tests.batch_helpers import chat_line, submit, wait_for
from worker import running_worker

pytestmark = pytest.mark.usefixtures("worker")


async def test_api_readiness_and_metrics(start_api, start_simulator, new_org, client_for, api_url) -> None:
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    await wait_for(
        client, (await submit(client, [chat_line("m-1", "hi"), chat_line("m-2", "SIMULATE_ERROR_500")])).id
    )
    root = api_url.removesuffix("/v1")
    assert httpx.get(f"{root}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{root}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok",
        "blob_store": "ok",
        "temporal": "ok",
    }
    text = httpx.get(f"{root}/metrics").text
    assert 'batchway_batches{status="completed"}' in text
    assert 'batchway_lines_total{outcome="ok",provider="openai"}' in text
    assert 'batchway_lines_total{outcome="error",provider="openai"}' in text
    assert "batchway_upstream_request_seconds_bucket" in text

    unreachable = start_api(temporal_address=f"127.0.0.1:{free_port()}").removesuffix("/v1")
    not_ready = httpx.get(f"{unreachable}/readyz", timeout=30)
    assert not_ready.status_code == 503
    checks = not_ready.json()["checks"]
    assert checks["database"] == "ok" and checks["temporal"].startswith("failed")


async def test_worker_health_port(temporal_env, base_settings) -> None:
    port = free_port()
    settings = base_settings.model_copy(update={"worker_health_port": port, "task_queue": "health-check"})
    async with (
        running_worker(temporal_env.client, settings),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert "batchway_batches" in (await http.get("/metrics")).text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")  # gone with the worker
