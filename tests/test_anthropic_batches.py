"""The same OpenAI batch code on Anthropic Message Batches: the official openai SDK -> batchway ->
Temporal -> the simulated Anthropic API (real HTTP, the official anthropic SDK inside batchway) -> back
as OpenAI output and error files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.batch_helpers import chat_line, record_history, submit, upload, wait_for
from tests.conftest import Stack
from tests.test_hostile_batches import error_code, every_line_once


@pytest.fixture
def anthropic_org(stack: Stack, start_simulator: Callable[..., str]):
    """(simulator root URL, client of a new org whose one provider is the simulated Anthropic API)."""

    def make(options: dict[str, Any] | None = None, also_openai: bool = False, **sim: Any):
        sim_url = start_simulator(**sim)
        root = sim_url.removesuffix("/v1")
        providers = {"claude": root} | ({"openai": sim_url} if also_openai else {})
        _, key = stack.org(
            providers, kinds={"claude": "anthropic"}, options={"claude": options} if options else None
        )
        return root, stack.client(key)

    return make


def anthropic_calls(root: str) -> dict[str, int]:
    return httpx.get(f"{root}/_simulator/calls").json().get("anthropic", {})


def anthropic_batches(root: str) -> list[dict[str, Any]]:
    return httpx.get(f"{root}/_simulator/anthropic/batches").json()["data"]


async def test_a_batch_runs_on_anthropic_and_comes_back_as_openai_lines(anthropic_org, temporal_env) -> None:
    root, client = anthropic_org()
    lines = [
        chat_line("plain", "hello there", model="claude-x"),
        chat_line("with.dots and spaces", "odd id", model="claude-x"),  # remapped upstream, not to the client
        chat_line("refused", "SIMULATE_REFUSAL please", model="claude-x"),
        chat_line("cut", "SIMULATE_MAX_TOKENS now", model="claude-x"),
        chat_line("broken", "SIMULATE_ERROR_400", model="claude-x"),
        chat_line("overloaded", "SIMULATE_ERROR_529", model="claude-x"),
    ]
    lines[0]["body"]["messages"].insert(0, {"role": "system", "content": "be brief"})
    lines[0]["body"]["stop"] = "END"
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (4, 2)
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    plain = results["plain"]["response"]["body"]
    assert plain["object"] == "chat.completion" and plain["choices"][0]["finish_reason"] == "stop"
    assert "hello there" in plain["choices"][0]["message"]["content"]
    usage = plain["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert results["with.dots and spaces"]["response"]["status_code"] == 200
    assert results["refused"]["response"]["body"]["choices"][0]["finish_reason"] == "content_filter"
    assert results["cut"]["response"]["body"]["choices"][0]["finish_reason"] == "length"
    assert results["broken"]["response"]["status_code"] == 400
    assert results["broken"]["response"]["body"]["error"]["code"] == "invalid_request_error"
    assert results["overloaded"]["response"]["status_code"] == 529
    ok_tokens = sum(
        r["response"]["body"]["usage"]["total_tokens"]
        for r in results.values()
        if r["response"]["status_code"] == 200
    )
    assert batch.usage.total_tokens == ok_tokens
    await record_history(temporal_env, batch.id, "anthropic_translated")


async def test_tool_calls_translate_both_ways(anthropic_org) -> None:
    _, client = anthropic_org()
    line = chat_line("tool", "SIMULATE_TOOL_USE what is the weather", model="claude-x")
    line["body"]["tools"] = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    line["body"]["tool_choice"] = "auto"
    batch = await wait_for(client, (await submit(client, [line])).id, timeout=60)
    body = (await every_line_once(client, batch, {"tool"}))["tool"]["response"]["body"]
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and isinstance(call["function"]["arguments"], str)


async def test_lines_that_cannot_translate_fail_validation_before_anything_is_sent(anthropic_org) -> None:
    root, client = anthropic_org()
    lines = [chat_line("ok", "fine", model="claude-x"), chat_line("many", "n=2", model="claude-x")]
    lines[1]["body"]["n"] = 2
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "failed" and batch.in_progress_at is None
    error = batch.errors.data[0]
    assert (error.code, error.line) == ("untranslatable_request", 2)
    assert "n" in (error.param or "") and "Line 2" in error.message
    assert anthropic_calls(root).get("batches.create", 0) == 0, "nothing was sent upstream"


async def test_other_endpoints_are_refused_at_create(anthropic_org) -> None:
    _, client = anthropic_org()
    lines = [
        {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}
    ]
    file_id = await upload(client, lines)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    assert "anthropic" in refused.value.message and "/v1/chat/completions" in refused.value.message


async def test_a_batch_over_the_limits_runs_as_several_anthropic_batches_and_ends_as_one(
    anthropic_org,
) -> None:
    root, client = anthropic_org(options={"max_requests_per_batch": 3})
    lines = [chat_line(f"s-{i}", f"split {i}", model="claude-x") for i in range(10)]
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "completed" and batch.request_counts.completed == 10
    await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert batch.output_file_id and batch.error_file_id is None
    calls = anthropic_calls(root)
    assert calls["batches.create"] == 4  # 10 requests at most 3 a batch: 3 + 3 + 3 + 1
    deadline = time.monotonic() + 30
    while anthropic_calls(root).get("batches.delete", 0) < 4:  # results stored: the upstream copies go
        assert time.monotonic() < deadline, anthropic_calls(root)
        await asyncio.sleep(0.2)
    assert anthropic_batches(root) == []


async def test_cancel_mid_flight_ends_cancelled_with_partial_results(anthropic_org) -> None:
    root, client = anthropic_org(lines_per_second=4, cancel_seconds=0.5)
    lines = [chat_line(f"c-{i}", f"line {i}", model="claude-x") for i in range(40)]
    created = await submit(client, lines)
    await wait_for(client, created.id, {"in_progress"}, timeout=30)
    time.sleep(1.0)
    await client.batches.cancel(created.id)
    batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "cancelled" and batch.cancelled_at
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values() if not line["response"]} == {"batch_cancelled"}
    assert 0 < batch.request_counts.completed < 40
    assert anthropic_calls(root).get("batches.cancel", 0) >= 1


async def test_anthropic_expiry_ends_expired(anthropic_org) -> None:
    _, client = anthropic_org(lines_per_second=5, window_seconds=1.5)
    lines = [chat_line(f"x-{i}", f"line {i}", model="claude-x") for i in range(30)]
    batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "expired" and batch.expired_at
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values() if not line["response"]} == {"batch_expired"}


async def test_the_provider_header_picks_anthropic_for_an_org_with_openai_too(anthropic_org) -> None:
    root, client = anthropic_org(also_openai=True)
    lines = [chat_line("h", "which one", model="claude-x")]
    file_id = await upload(client, lines)
    with pytest.raises(openai.BadRequestError):  # two providers, no header: which one?
        await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    created = await client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers={"batchway-provider": "claude"},
    )
    batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "completed"
    assert anthropic_calls(root).get("batches.create", 0) == 1
