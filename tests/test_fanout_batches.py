"""Fan-out end to end: the official openai SDK -> batchway -> Temporal -> a worker that runs each line
itself against the simulator's rate-limited chat API (real HTTP), and back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from batchway.contracts import PROGRESS_QUERY
from batchway.settings import Settings
from tests.batch_helpers import chat_line, record_history, submit, upload, wait_for
from tests.conftest import SIMULATOR_KEY, create_org
from tests.test_hostile_batches import error_code, every_line_once
from worker import running_worker


@pytest_asyncio.fixture(scope="module")
async def fanout_settings(
    temporal_env: WorkflowEnvironment, base_settings: Settings
) -> AsyncIterator[Settings]:
    """A worker of its own: short upstream timeouts and stop grace, small chunks (many per batch)."""
    settings = base_settings.model_copy(
        update={
            "task_queue": f"fanout-{uuid.uuid4().hex[:8]}",
            "upstream_timeout_seconds": 2.0,
            "fanout_stop_grace_seconds": 1.0,
            "fanout_chunk_lines": 20,
        }
    )
    async with running_worker(temporal_env.client, settings):
        yield settings


@pytest.fixture
def fanout(fanout_settings: Settings, start_api: Callable[..., str], start_simulator: Callable[..., str]):
    """(simulator base URL, openai client for a new org whose one provider fans out to it)."""

    def make(api_overrides: dict[str, Any] | None = None, options: dict[str, Any] | None = None, **sim: Any):
        sim_url = start_simulator(**sim)
        _, key = create_org(
            fanout_settings.resolved_database_url,
            {"vllm": sim_url},
            kinds={"vllm": "fanout"},
            options={"vllm": options} if options else None,
        )
        api = start_api(task_queue=fanout_settings.task_queue, **(api_overrides or {}))
        return sim_url.removesuffix("/v1"), openai.AsyncOpenAI(base_url=api, api_key=key, max_retries=0)

    return make


def chat_stats(sim: str) -> dict[str, Any]:
    return httpx.get(f"{sim}/_simulator/chat/stats").json()


def lines_of(prefix: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [chat_line(f"{prefix}-{i}", f"{prefix} line {i}", **extra) for i in range(n)]


async def test_a_rate_limited_upstream_runs_every_line_once(fanout, temporal_env) -> None:
    sim, client = fanout(chat_rpm=120, chat_latency_seconds=0.05)  # 2/s after a full bucket of 120
    lines = lines_of("r", 140)
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=120)
    assert batch.status == "completed" and batch.request_counts.completed == 140
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    body_tokens = sum(line["response"]["body"]["usage"]["total_tokens"] for line in results.values())
    assert batch.usage.total_tokens == body_tokens > 0
    stats = chat_stats(sim)
    assert stats["bodies"]["distinct"] == 140 and stats["bodies"]["ok_repeats"] == 0
    print(f"\n429s: {stats['rate_limited']['requests']} of {stats['calls']['total']} calls")
    assert stats["rate_limited"]["requests"] <= 0.25 * stats["calls"]["total"]  # paced, not hammering
    await record_history(temporal_env, batch.id, "fanout_rate_limited")


async def test_identical_lines_are_each_executed(fanout) -> None:
    """No caching: two lines with the same body are two upstream calls."""
    sim, client = fanout()
    lines = [chat_line(f"same-{i}", "the very same question") for i in range(3)]
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.request_counts.completed == 3
    assert chat_stats(sim)["ok"] == 3


async def test_embeddings_run_and_an_endpoint_the_upstream_lacks_becomes_error_lines(fanout) -> None:
    sim, client = fanout(chat_unsupported_endpoints=["/v1/completions"])
    lines = [
        {
            "custom_id": f"e-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "emb", "input": f"x {i}"},
        }
        for i in range(4)
    ]
    file_id = await upload(client, lines)
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
    )
    batch = await wait_for(client, batch.id, timeout=60)
    assert batch.status == "completed" and batch.request_counts.completed == 4
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert results["e-1"]["response"]["body"]["object"] == "list"

    lines = [
        {
            "custom_id": f"c-{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {"model": "m", "prompt": "x"},
        }
        for i in range(3)
    ]
    file_id = await upload(client, lines)
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
    )
    batch = await wait_for(client, batch.id, timeout=60)
    assert batch.status == "completed" and batch.request_counts.failed == 3
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {line["response"]["status_code"] for line in results.values()} == {404}


@pytest.mark.parametrize(
    ("faults", "expect"),
    [
        ({"chat_fail_every": 3, "chat_fail_status": 503}, "retried"),
        ({"chat_reset_every": 4}, "retried"),
        ({"chat_timeout_every": 5, "chat_hang_seconds": 30}, "retried"),
        ({"chat_malformed_every": 5}, "malformed"),
        ({"chat_rpm": 30, "chat_retry_after": "none", "chat_ratelimit_headers": False}, "retried"),
    ],
    ids=["5xx", "resets", "timeouts", "malformed", "429-no-hints"],
)
async def test_faults_end_every_line_once(fanout, faults: dict[str, Any], expect: str) -> None:
    sim, client = fanout(**faults)
    lines = lines_of("f", 40)
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=180)
    assert batch.status == "completed"
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    codes = {error_code(line) for line in results.values()}
    if expect == "retried":  # every transient failure was retried until it succeeded
        assert batch.request_counts.completed == 40, codes
    else:  # a 200 with a broken body is an error line, not a crash and not a retry (it may be billed)
        assert codes == {None, "upstream_response_invalid"}
        assert batch.request_counts.failed == chat_stats(sim)["faults"]["malformed"] > 0


async def test_cancel_stops_sending_and_keeps_what_ran(fanout) -> None:
    sim, client = fanout(chat_rpm=60)  # a full bucket of 60, then one a second
    lines = lines_of("c", 200)
    created = await submit(client, lines)
    deadline = time.monotonic() + 60
    while (await client.batches.retrieve(created.id)).request_counts.completed < 60:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    await client.batches.cancel(created.id)
    batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "cancelled" and batch.cancelled_at
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    executed = [line for line in results.values() if line["response"]]
    assert 60 <= len(executed) < 200
    assert {error_code(line) for line in results.values() if not line["response"]} == {"batch_cancelled"}
    calls = chat_stats(sim)["calls"]["total"]
    await asyncio.sleep(2)
    assert chat_stats(sim)["calls"]["total"] == calls, "nothing is sent once the batch ended"


async def test_the_completion_window_ends_a_slow_fan_out_expired(fanout) -> None:
    _, client = fanout(api_overrides={"completion_window_seconds": 4}, chat_rpm=30)
    lines = lines_of("x", 80)
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "expired" and batch.expired_at
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values() if not line["response"]} == {"batch_expired"}
    assert batch.request_counts.completed >= 30


async def test_explicit_limits_are_never_exceeded(fanout) -> None:
    sim, client = fanout(options={"rpm": 60, "max_concurrency": 3}, chat_latency_seconds=0.2)
    lines = lines_of("l", 70)
    started = time.monotonic()
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=120)
    assert batch.request_counts.completed == 70
    stats = httpx.get(f"{sim}/_simulator/chat/stats", params={"window": 60}).json()
    assert stats["max_in_flight"] <= 3
    assert stats["window"]["max_admitted"] <= 60
    assert time.monotonic() - started >= 9  # 60 in the first minute's window, the rest after


async def test_progress_moves_while_it_runs_and_shows_in_temporal(fanout, temporal_env) -> None:
    _, client = fanout(chat_rpm=60)
    created = await submit(client, lines_of("p", 100))
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 3:  # request_counts move while the batch runs, not only at the end
        assert time.monotonic() < deadline, seen
        seen.add((await client.batches.retrieve(created.id)).request_counts.completed)
        await asyncio.sleep(0.5)
    handle = temporal_env.client.get_workflow_handle(created.id)
    while "req/s" not in (details := await current_details(handle)):  # the UI's progress line
        assert time.monotonic() < deadline, details
        await asyncio.sleep(0.5)
    assert "lines in finished chunks" in details and "429s" in details
    progress = await handle.query(PROGRESS_QUERY)
    assert progress["batch_id"] == created.id
    await client.batches.cancel(created.id)
    assert (await wait_for(client, created.id, timeout=60)).status == "cancelled"


async def current_details(handle: Any) -> str:
    """What the Temporal UI shows as the workflow's current details (its built-in metadata query)."""
    metadata = await handle.query("__temporal_workflow_metadata")
    return metadata.get("currentDetails", "") if isinstance(metadata, dict) else metadata.current_details


async def test_fan_out_needs_a_base_url_and_valid_limits(fanout_settings: Settings) -> None:
    with pytest.raises(ValueError, match="base-url"):
        create_org(fanout_settings.resolved_database_url, {"x": ""}, kinds={"x": "fanout"})
    with pytest.raises(ValueError, match="rpm"):
        create_org(
            fanout_settings.resolved_database_url,
            {"x": "http://h/v1"},
            kinds={"x": "fanout"},
            options={"x": {"rpm": 0}},
        )


async def test_a_fan_out_org_keys_only_its_own_upstream(fanout) -> None:
    _, client = fanout()
    created = await submit(client, lines_of("k", 2))
    batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "completed"
    other = openai.AsyncOpenAI(base_url=str(client.base_url), api_key=SIMULATOR_KEY, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await other.batches.retrieve(created.id)
