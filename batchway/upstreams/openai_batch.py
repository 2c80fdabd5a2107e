"""OpenAI's Batch API (and any OpenAI-compatible server with `/v1/files` + `/v1/batches`), as a remote
upstream.

Its reference (what the batch row keeps in `upstream`): `{"input_file_id": ..., "batch_id": ...}`, plus
`create_attempted` once a create call went out (only then can a lost response have created a batch
that a retry must find first).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, BinaryIO, Literal

import httpx
import openai
import orjson

from batchway.batch_input import InputIndex
from batchway.jsonl import LineTooLong, iter_lines, read_chunks
from batchway.upstreams import sdk_errors
from batchway.upstreams.base import (
    BATCHWAY_TAG,
    PermanentUpstreamError,
    RemoteState,
    RemoteStatus,
    RetryableUpstreamError,
    SubmitJob,
    UpstreamError,
)
from batchway.upstreams.result_line import ResultLine, UnreadableResult
from batchway.upstreams.sdk_errors import retry_after, worth_retrying

KNOWN_STATES: frozenset[str] = frozenset(RemoteState.__args__)  # type: ignore[attr-defined]
LIST_PAGE = 100
# Upstream clocks drift: batches created this long before our first attempt are still searched.
CLOCK_SLACK_SECONDS = 600
MAX_RESULT_LINE_BYTES = 64 * 1024 * 1024
DOWNLOAD_CHUNK = 64 * 1024


def classify(exc: Exception) -> UpstreamError:
    """Map an SDK exception onto the upstream error tree."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"upstream answered {status}: {exc.message}"
        code = exc.code or exc.type
        if worth_retrying(status):
            return RetryableUpstreamError(
                message, status_code=status, code=code, retry_after=retry_after(exc.response)
            )
        return PermanentUpstreamError(message, status_code=status, code=code)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):  # includes timeouts
        return RetryableUpstreamError(f"upstream unreachable: {exc}")
    return RetryableUpstreamError(f"unexpected upstream answer: {exc!r}")


def mapped_errors() -> AbstractAsyncContextManager[None]:
    return sdk_errors.mapped_errors("openai", openai.OpenAIError, classify)


def _status(batch: Any) -> RemoteStatus:
    counts = batch.request_counts
    errors = None
    if batch.errors and batch.errors.data:
        errors = [e.model_dump() for e in batch.errors.data]
    state = batch.status if batch.status in KNOWN_STATES else "unknown"
    return RemoteStatus(
        state=state,
        total=(counts.total or 0) if counts else 0,
        completed=(counts.completed or 0) if counts else 0,
        failed=(counts.failed or 0) if counts else 0,
        usage=batch.usage.model_dump() if getattr(batch, "usage", None) else None,
        errors=errors,
    )


def _local_file(stream: BinaryIO) -> BinaryIO:
    """The SDK reads an upload synchronously inside the event loop: fine for a local file, not for a
    network stream (S3), which is copied to a temporary file first (call from a thread)."""
    try:
        stream.fileno()
        return stream
    except (OSError, AttributeError):
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the caller)
        with stream:
            shutil.copyfileobj(stream, spool, 1024 * 1024)
        spool.seek(0)
        return spool


class OpenAIBatchUpstream:
    style: Literal["remote"] = "remote"

    def __init__(self, *, api_key: str | None, base_url: str | None, timeout_seconds: float) -> None:
        # Temporal retries; the SDK must not (max_retries=0), and a call ends before the activity does.
        self.client = openai.AsyncOpenAI(
            api_key=api_key or "unset",
            base_url=base_url,
            max_retries=0,
            timeout=httpx.Timeout(timeout_seconds, connect=10.0),
        )

    async def submit(self, job: SubmitJob) -> dict[str, Any]:
        checkpoint = dict(job.checkpoint)
        retried = bool(checkpoint.get("create_attempted"))
        if retried and (found := await self.find(job)):
            return found
        if "input_file_id" not in checkpoint:
            stream = await asyncio.to_thread(lambda: _local_file(job.open_input()))
            with stream:
                async with mapped_errors():
                    uploaded = await self.client.files.create(
                        file=(f"{job.batch_id}.jsonl", stream), purpose="batch"
                    )
            checkpoint["input_file_id"] = uploaded.id
        checkpoint["create_attempted"] = True
        await job.save(checkpoint)
        async with mapped_errors():
            batch = await self.client.batches.create(
                input_file_id=checkpoint["input_file_id"],
                endpoint=job.endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata={BATCHWAY_TAG: job.batch_id},
            )
        ref = {"input_file_id": checkpoint["input_file_id"], "batch_id": batch.id}
        if retried:  # an earlier create may yet appear upstream: keep one batch, cancel the others
            return await self.find(job) or ref
        return ref

    async def find(self, job: SubmitJob) -> dict[str, Any] | None:
        """Page through the upstream's batches, newest first, back to our first attempt; keep the oldest
        one tagged with this batch and cancel any other (a duplicate from a lost create response)."""
        tagged: list[Any] = []
        oldest_wanted = job.started_at - CLOCK_SLACK_SECONDS
        after: str | None = None
        while True:
            async with mapped_errors():
                page = await self.client.batches.list(limit=LIST_PAGE, **({"after": after} if after else {}))
            for batch in page.data:
                if (batch.metadata or {}).get(BATCHWAY_TAG) == job.batch_id:
                    tagged.append(batch)
            if not page.data or not page.has_more or (page.data[-1].created_at or 0) < oldest_wanted:
                break
            after = page.data[-1].id
        if not tagged:
            return None
        *duplicates, keep = tagged  # the list is newest first: keep the oldest
        for duplicate in duplicates:
            async with mapped_errors():
                await self.client.batches.cancel(duplicate.id)
        return {"input_file_id": keep.input_file_id, "batch_id": keep.id}

    async def status(self, ref: dict[str, Any]) -> RemoteStatus:
        async with mapped_errors():
            return _status(await self.client.batches.retrieve(ref["batch_id"]))

    async def cancel(self, ref: dict[str, Any]) -> None:
        async with mapped_errors():
            await self.client.batches.cancel(ref["batch_id"])

    async def results(
        self, ref: dict[str, Any], index: InputIndex | None = None
    ) -> AsyncIterator[ResultLine | UnreadableResult]:
        async with mapped_errors():
            batch = await self.client.batches.retrieve(ref["batch_id"])
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                async for item in self._file_lines(file_id):
                    yield item

    async def _file_lines(self, file_id: str) -> AsyncIterator[ResultLine | UnreadableResult]:
        """Download to a temporary file, then parse it in a thread a slice at a time: parsing a large
        result file is CPU work the worker's event loop must not do."""
        with tempfile.TemporaryFile() as spool:
            async with (
                mapped_errors(),
                self.client.files.with_streaming_response.content(file_id) as response,
            ):
                async for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    spool.write(chunk)
            spool.seek(0)
            parser = _ResultFileParser(spool)
            while items := await asyncio.to_thread(parser.next_slice):
                for item in items:
                    yield item

    async def cleanup(self, ref: dict[str, Any]) -> None:
        async with mapped_errors():
            batch = await self.client.batches.retrieve(ref["batch_id"])
        for file_id in {ref.get("input_file_id"), batch.output_file_id, batch.error_file_id} - {None}:
            try:
                async with mapped_errors():
                    await self.client.files.delete(file_id)
            except PermanentUpstreamError:  # already gone
                continue

    async def aclose(self) -> None:
        await self.client.close()


class _ResultFileParser:
    """Reads an OpenAI result file a slice of lines at a time (blocking)."""

    SLICE_LINES = 1000

    def __init__(self, stream: BinaryIO) -> None:
        self._lines = iter_lines(read_chunks(stream), MAX_RESULT_LINE_BYTES)
        self._done = False

    def next_slice(self) -> list[ResultLine | UnreadableResult]:
        items: list[ResultLine | UnreadableResult] = []
        if self._done:
            return items
        try:
            for _, raw in self._lines:
                items.append(_parse(raw))
                if len(items) >= self.SLICE_LINES:
                    return items
        except LineTooLong as exc:
            # Nothing after an oversized line can be trusted to start on a line boundary.
            items.append(UnreadableResult(str(exc)))
        self._done = True
        return items


def _parse(raw: bytes) -> ResultLine | UnreadableResult:
    if not raw.strip():
        return UnreadableResult("blank line")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UnreadableResult("not JSON")
    try:
        return ResultLine.from_openai_line(obj)
    except UnreadableResult as exc:
        return exc
