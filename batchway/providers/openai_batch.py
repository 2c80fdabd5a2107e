"""OpenAI's Batch API (and any OpenAI-compatible server with `/v1/files` + `/v1/batches`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, BinaryIO

import httpx
import openai

from batchway.providers.base import (
    BATCHWAY_TAG,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
    UpstreamBatch,
)

RETRYABLE_STATUS = frozenset({408, 409, 429})
FIND_BATCH_SCAN_LIMIT = 100  # recent upstream batches searched for our tag on a retried submit


def _retry_after(response: httpx.Response | Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def classify(exc: Exception) -> ProviderError:
    """Map an SDK exception onto the provider error tree."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"upstream answered {status}: {exc.message}"
        if status in RETRYABLE_STATUS or status >= 500:
            return RetryableProviderError(message, status_code=status, retry_after=_retry_after(exc.response))
        return PermanentProviderError(message, status_code=status)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):  # includes timeouts
        return RetryableProviderError(f"upstream unreachable: {exc}")
    return RetryableProviderError(f"unexpected upstream error: {exc!r}")


@asynccontextmanager
async def _mapped_errors() -> AsyncIterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except (openai.OpenAIError, httpx.HTTPError) as exc:
        raise classify(exc) from exc


def _upstream_batch(batch: Any) -> UpstreamBatch:
    counts = batch.request_counts
    errors = None
    if batch.errors and batch.errors.data:
        errors = [e.model_dump() for e in batch.errors.data]
    return UpstreamBatch(
        id=batch.id,
        status=batch.status,
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        errors=errors,
        usage=batch.usage.model_dump() if getattr(batch, "usage", None) else None,
    )


class OpenAIBatchProvider:
    def __init__(self, *, api_key: str | None, base_url: str | None, timeout_seconds: float) -> None:
        # Temporal retries; the SDK must not (max_retries=0), and a call ends before the activity does.
        self.client = openai.AsyncOpenAI(
            api_key=api_key or "unset",
            base_url=base_url,
            max_retries=0,
            timeout=httpx.Timeout(timeout_seconds, connect=10.0),
        )

    async def upload_input(self, filename: str, stream: BinaryIO) -> str:
        async with _mapped_errors():
            uploaded = await self.client.files.create(file=(filename, stream), purpose="batch")
        return uploaded.id

    async def find_batch(self, batchway_batch_id: str) -> UpstreamBatch | None:
        async with _mapped_errors():
            page = await self.client.batches.list(limit=FIND_BATCH_SCAN_LIMIT)
        for batch in page.data:
            if (batch.metadata or {}).get(BATCHWAY_TAG) == batchway_batch_id:
                return _upstream_batch(batch)
        return None

    async def create_batch(self, input_file_id: str, endpoint: str, batchway_batch_id: str) -> UpstreamBatch:
        async with _mapped_errors():
            batch = await self.client.batches.create(
                input_file_id=input_file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata={BATCHWAY_TAG: batchway_batch_id},
            )
        return _upstream_batch(batch)

    async def retrieve_batch(self, upstream_batch_id: str) -> UpstreamBatch:
        async with _mapped_errors():
            return _upstream_batch(await self.client.batches.retrieve(upstream_batch_id))

    async def cancel_batch(self, upstream_batch_id: str) -> UpstreamBatch:
        async with _mapped_errors():
            return _upstream_batch(await self.client.batches.cancel(upstream_batch_id))

    async def download_file(self, upstream_file_id: str, out: BinaryIO) -> None:
        async with (
            _mapped_errors(),
            self.client.files.with_streaming_response.content(upstream_file_id) as response,
        ):
            async for chunk in response.iter_bytes():
                out.write(chunk)

    async def aclose(self) -> None:
        await self.client.close()
