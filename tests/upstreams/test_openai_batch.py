"""The OpenAI batch adapter against real HTTP: the simulator for the happy calls, the hostile upstream for
lost responses and unreadable results, and a scripted server for how upstream errors are classified."""

from __future__ import annotations

import io
import time
from typing import Any

import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from batchway.servers import free_port
from batchway.upstreams.base import (
    BATCHWAY_TAG,
    PermanentUpstreamError,
    RetryableUpstreamError,
    SubmitJob,
)
from batchway.upstreams.openai_batch import OpenAIBatchUpstream
from batchway.upstreams.result_line import ResultLine, UnreadableResult
from tests.batch_helpers import chat_line, jsonl
from tests.conftest import SIMULATOR_KEY
from tests.hostile import ALL_CORRUPTIONS, UNREADABLE_CORRUPTIONS, Faults, HostileUpstream
from tests.servers import serve_in_thread


def adapter(base_url: str, key: str = SIMULATOR_KEY) -> OpenAIBatchUpstream:
    return OpenAIBatchUpstream(api_key=key, base_url=base_url, timeout_seconds=5)


SAVED: list[dict[str, Any]] = []  # every checkpoint the adapter persisted, newest last


def job(batch_id: str, lines: list[dict[str, Any]], checkpoint: dict[str, Any] | None = None) -> SubmitJob:
    async def save(state: dict[str, Any]) -> None:
        SAVED.append(dict(state))
        submit_job.checkpoint = dict(state)

    submit_job = SubmitJob(
        batch_id=batch_id,
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        line_count=len(lines),
        started_at=int(time.time()),
        open_input=lambda: io.BytesIO(jsonl(lines)),
        checkpoint=checkpoint or {},
        save=save,
    )
    return submit_job


async def collect(upstream: OpenAIBatchUpstream, ref: dict[str, Any]) -> list[ResultLine | UnreadableResult]:
    return [item async for item in upstream.results(ref)]


async def test_submit_status_and_results_against_the_simulator(start_simulator) -> None:
    upstream = adapter(start_simulator(lines_per_second=1000))
    try:
        lines = [chat_line("a", "hello"), chat_line("b", "SIMULATE_ERROR_400")]
        submit_job = job("batch_ours", lines)
        ref = await upstream.submit(submit_job)
        assert SAVED[-1]["create_attempted"] is True  # recorded before the create went out
        assert ref["batch_id"] and ref["input_file_id"]
        assert await upstream.find(job("batch_someone_else", lines)) is None
        status = await upstream.status(ref)
        while not status.ended:
            status = await upstream.status(ref)
        assert (status.state, status.total, status.completed, status.failed) == ("completed", 2, 1, 1)
        results = {line.custom_id: line for line in await collect(upstream, ref)}
        assert results["a"].ok and results["a"].usage.total_tokens > 0
        assert results["b"].status_code == 400 and results["b"].error_code
    finally:
        await upstream.aclose()


async def test_a_retried_submit_finds_the_batch_behind_150_newer_ones() -> None:
    hostile = HostileUpstream(Faults(lost_create="503", decoy_batches=150))
    with serve_in_thread(hostile.app) as url:
        upstream = adapter(url + "/v1")
        try:
            submit_job = job("batch_lost", [chat_line("a", "1")])
            with pytest.raises(RetryableUpstreamError):
                await upstream.submit(submit_job)  # created upstream, but the answer was lost
            ref = await upstream.submit(submit_job)  # the retry pages back to it instead of creating
        finally:
            await upstream.aclose()
    stats = hostile.stats()
    assert stats["batches_created"]["batch_lost"] == 1
    assert stats["file_uploads"] == 1
    assert ref["batch_id"]


async def test_a_duplicate_upstream_batch_is_cancelled_and_the_oldest_kept() -> None:
    hostile = HostileUpstream()
    with serve_in_thread(hostile.app) as url:
        sdk = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        uploaded = await sdk.files.create(file=("in.jsonl", jsonl([chat_line("a", "1")])), purpose="batch")
        created = [
            await sdk.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={BATCHWAY_TAG: "batch_twice"},
            )
            for _ in range(2)
        ]
        upstream = adapter(url + "/v1")
        try:
            found = await upstream.find(job("batch_twice", [chat_line("a", "1")]))
        finally:
            await upstream.aclose()
            await sdk.close()
    assert found is not None and found["batch_id"] == created[0].id
    assert hostile.stats()["cancels"] == {created[1].id: 1}


async def test_unreadable_result_lines_are_reported_not_raised() -> None:
    hostile = HostileUpstream(Faults(corruptions=ALL_CORRUPTIONS))
    lines = [chat_line(f"r-{i}", f"line {i}") for i in range(10)]
    with serve_in_thread(hostile.app) as url:
        upstream = adapter(url + "/v1")
        try:
            ref = await upstream.submit(job("batch_garbage", lines))
            while not (await upstream.status(ref)).ended:
                time.sleep(0.05)
            items = await collect(upstream, ref)
        finally:
            await upstream.aclose()
    corrupted = next(iter(hostile.stats()["corrupted"].values()))
    unreadable = [item for item in items if isinstance(item, UnreadableResult)]
    readable = {item.custom_id for item in items if isinstance(item, ResultLine)}
    assert unreadable, "the corruptions must be reported"
    for name in UNREADABLE_CORRUPTIONS:
        if name in corrupted:
            assert corrupted[name] not in readable, name
    # A line whose error is a string still names its custom_id, so it can end as that line's error.
    assert any(item.custom_id == corrupted["error_string"] for item in unreadable)


STATUS_OF = {"rate": 429, "rate-ms": 429, "down": 503, "gone": 404, "bad": 400}


def scripted_upstream() -> FastAPI:
    app = FastAPI()
    responses = {
        "rate": (429, {"retry-after": "7"}, "rate_limit_exceeded"),
        "rate-ms": (429, {"retry-after-ms": "1500"}, "rate_limit_exceeded"),
        "down": (503, {}, "server_error"),
        "gone": (404, {}, "invalid_request_error"),
        "bad": (400, {}, "invalid_request_error"),
    }

    @app.get("/v1/batches/{batch_id}")
    def retrieve(batch_id: str) -> JSONResponse:
        status, headers, kind = responses[batch_id]
        body = {"error": {"message": f"scripted {status}", "type": kind, "param": None, "code": None}}
        return JSONResponse(body, status_code=status, headers=headers)

    return app


@pytest.mark.parametrize(
    ("batch_id", "error", "retry_after"),
    [
        ("rate", RetryableUpstreamError, 7.0),
        ("rate-ms", RetryableUpstreamError, 1.5),
        ("down", RetryableUpstreamError, None),
        ("gone", PermanentUpstreamError, None),
        ("bad", PermanentUpstreamError, None),
    ],
)
async def test_upstream_errors_are_classified(batch_id: str, error: type, retry_after: float | None) -> None:
    with serve_in_thread(scripted_upstream()) as url:
        upstream = adapter(url + "/v1")
        try:
            with pytest.raises(error) as raised:
                await upstream.status({"batch_id": batch_id})
        finally:
            await upstream.aclose()
    assert raised.value.status_code == STATUS_OF[batch_id]
    if error is RetryableUpstreamError:
        assert raised.value.retry_after == retry_after


async def test_unreachable_upstream_is_retryable_and_wrong_key_is_permanent(start_simulator) -> None:
    nobody = adapter(f"http://127.0.0.1:{free_port()}/v1")
    wrong_key = adapter(start_simulator(), key="not-the-key")
    try:
        with pytest.raises(RetryableUpstreamError):
            await nobody.status({"batch_id": "batch_x"})
        with pytest.raises(PermanentUpstreamError) as raised:
            await wrong_key.status({"batch_id": "batch_x"})
        assert raised.value.status_code == 401
    finally:
        await nobody.aclose()
        await wrong_key.aclose()
