"""Operator paths: the `batchway` CLI, and a cancel signalled straight to Temporal (as the UI does)."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from batchway.cli import app
from batchway.contracts import CANCEL_SIGNAL, PROGRESS_QUERY
from batchway.settings import get_settings
from tests.batch_helpers import chat_line, content, submit, wait_for

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def cli(base_settings, monkeypatch):
    """Run CLI commands against the test stack (in a thread: the worker shares this event loop)."""
    monkeypatch.setenv("BATCHWAY_DATA_DIR", str(base_settings.data_dir))
    monkeypatch.setenv("BATCHWAY_TEMPORAL_ADDRESS", base_settings.temporal_address)
    monkeypatch.setenv("BATCHWAY_TASK_QUEUE", base_settings.task_queue)
    monkeypatch.setenv("BATCHWAY_SECRET_KEY", base_settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    runner = CliRunner()

    async def run(*args: str, ok: bool = True):
        result = await asyncio.to_thread(runner.invoke, app, list(args))
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    yield run
    get_settings.cache_clear()


async def test_tenant_setup_and_batch_operations(cli, start_simulator, client_for) -> None:
    sim = start_simulator(lines_per_second=3)
    assert "created org cli-org" in await cli("orgs", "create", "cli-org")
    await cli("orgs", "create", "cli-org", ok=False)  # names are unique
    key = (await cli("keys", "create", "--org", "cli-org")).strip()
    assert key.startswith("bw-")
    await cli(
        "providers", "set", "openai", "--org", "cli-org", "--api-key", "sim-test-key", "--base-url", sim
    )
    assert sim in await cli("providers", "list", "--org", "cli-org")
    await cli("providers", "set", "mystery", "--org", "cli-org", ok=False)

    client = client_for(key)
    created = await submit(client, [chat_line(f"k-{i}", "hi") for i in range(30)])
    await wait_for(client, created.id, {"in_progress"})
    assert created.id in await cli("batches", "list", "--org", "cli-org")
    assert json.loads(await cli("batches", "show", created.id))["id"] == created.id
    assert "cancelling" in await cli("batches", "cancel", created.id)
    batch = await wait_for(client, created.id)
    assert batch.status == "cancelled"
    await cli("batches", "cancel", created.id, ok=False)  # already ended


async def test_cancel_signalled_from_temporal(start_simulator, new_org, client_for, temporal_env) -> None:
    _, key = new_org({"openai": start_simulator(lines_per_second=3)})
    client = client_for(key)
    created = await submit(client, [chat_line(f"u-{i}", "hi") for i in range(30)])
    await wait_for(client, created.id, {"in_progress"})
    handle = temporal_env.client.get_workflow_handle(created.id)
    progress = await handle.query(PROGRESS_QUERY)
    assert progress["status"] == "in_progress" and progress["batch_id"] == created.id

    await handle.signal(CANCEL_SIGNAL)
    cancelling = await wait_for(client, created.id, {"cancelling", "cancelled"})
    assert cancelling.cancelling_at
    batch = await wait_for(client, created.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    errors = await content(client, batch.error_file_id)
    assert any(line["error"] and line["error"]["code"] == "batch_cancelled" for line in errors.values())
