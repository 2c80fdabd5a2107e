"""The OpenAI batch adapter against real HTTP: the simulator for the happy calls, and a scripted server
for how upstream errors map onto retryable and permanent provider errors."""

from __future__ import annotations

import io

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from batchway.providers.base import PermanentProviderError, RetryableProviderError
from batchway.providers.openai_batch import OpenAIBatchProvider
from batchway.servers import free_port
from tests.batch_helpers import chat_line, jsonl
from tests.conftest import SIMULATOR_KEY
from tests.servers import serve_in_thread


def provider(base_url: str, key: str = SIMULATOR_KEY) -> OpenAIBatchProvider:
    return OpenAIBatchProvider(api_key=key, base_url=base_url, timeout_seconds=5)


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


async def test_upload_create_find_and_download_against_the_simulator(start_simulator) -> None:
    upstream = provider(start_simulator(lines_per_second=1000))
    try:
        data = jsonl([chat_line("a", "hello"), chat_line("b", "SIMULATE_ERROR_400")])
        file_id = await upstream.upload_input("in.jsonl", io.BytesIO(data))
        assert await upstream.find_batch("batch_ours") is None
        created = await upstream.create_batch(file_id, "/v1/chat/completions", "batch_ours")
        found = await upstream.find_batch("batch_ours")
        assert found is not None and found.id == created.id  # a retried submit finds it by our tag
        assert await upstream.find_batch("batch_someone_else") is None
        state = await upstream.retrieve_batch(created.id)
        while not state.terminal:
            state = await upstream.retrieve_batch(created.id)
        assert (state.status, state.total, state.completed, state.failed) == ("completed", 2, 1, 1)
        out = io.BytesIO()
        await upstream.download_file(state.output_file_id, out)
        assert b'"custom_id":"a"' in out.getvalue()
    finally:
        await upstream.aclose()


@pytest.mark.parametrize(
    ("batch_id", "error", "retry_after"),
    [
        ("rate", RetryableProviderError, 7.0),
        ("rate-ms", RetryableProviderError, 1.5),
        ("down", RetryableProviderError, None),
        ("gone", PermanentProviderError, None),
        ("bad", PermanentProviderError, None),
    ],
)
async def test_upstream_errors_are_classified(batch_id: str, error: type, retry_after: float | None) -> None:
    with serve_in_thread(scripted_upstream()) as url:
        upstream = provider(url + "/v1")
        try:
            with pytest.raises(error) as raised:
                await upstream.retrieve_batch(batch_id)
        finally:
            await upstream.aclose()
    assert raised.value.status_code == int(
        {"rate": 429, "rate-ms": 429, "down": 503, "gone": 404, "bad": 400}[batch_id]
    )
    if error is RetryableProviderError:
        assert raised.value.retry_after == retry_after


async def test_unreachable_upstream_is_retryable_and_wrong_key_is_permanent(start_simulator) -> None:
    nobody = provider(f"http://127.0.0.1:{free_port()}/v1")
    wrong_key = provider(start_simulator(), key="not-the-key")
    try:
        with pytest.raises(RetryableProviderError):
            await nobody.retrieve_batch("batch_x")
        with pytest.raises(PermanentProviderError) as raised:
            await wrong_key.retrieve_batch("batch_x")
        assert raised.value.status_code == 401
    finally:
        await nobody.aclose()
        await wrong_key.aclose()
