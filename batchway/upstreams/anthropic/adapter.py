"""Anthropic Message Batches as a remote upstream, through the official `anthropic` SDK (its retries off:
Temporal retries). An OpenAI batch may run as several Anthropic batches (its parts, see `parts.py`),
reunited into one batchway batch: one status, one set of counts, one set of result lines.

Checkpoint: `{"parts": [...], "created": {part index: msgbatch id}, "creating": index, "creating_since":
unix seconds}`; reference: `{"parts": [{...part, "id": msgbatch id}]}`.

Anthropic batches carry no metadata, so a create whose answer was lost cannot be found by a tag: a
retry adopts the one batch created since that attempt with exactly the part's number of requests that
no other part claims, if there is exactly one; otherwise it creates the part again (documented: a lost
answer at the wrong moment, with another same-sized batch created on the same key at that moment, can
cost a duplicate).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, BinaryIO, Literal

import anthropic
import httpx
import orjson
from anthropic.types.messages import MessageBatch

from batchway.batch_input import InputIndex
from batchway.jsonl import LineTooLong, iter_lines, read_chunks
from batchway.upstreams import sdk_errors
from batchway.upstreams.anthropic.parts import AnthropicOptions, Part, PartBody
from batchway.upstreams.anthropic.translate import client_custom_id, result_line_from_anthropic
from batchway.upstreams.base import (
    PermanentUpstreamError,
    RemoteStatus,
    RetryableUpstreamError,
    SubmitJob,
    UpstreamError,
)
from batchway.upstreams.result_line import ResultLine, UnreadableResult
from batchway.upstreams.sdk_errors import retry_after, worth_retrying

CLOCK_SLACK_SECONDS = 600
DOWNLOAD_CHUNK = 64 * 1024
MAX_RESULT_LINE_BYTES = 64 * 1024 * 1024


def classify(exc: Exception) -> UpstreamError:
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        message = f"upstream answered {status}: {exc.message}"
        body = exc.body if isinstance(exc.body, dict) else {}
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("type") if isinstance(inner.get("type"), str) else None
        if worth_retrying(status):
            return RetryableUpstreamError(
                message, status_code=status, code=code, retry_after=retry_after(exc.response)
            )
        return PermanentUpstreamError(message, status_code=status, code=code)
    if isinstance(exc, anthropic.APIConnectionError | httpx.TransportError):
        return RetryableUpstreamError(f"upstream unreachable: {exc}")
    return RetryableUpstreamError(f"unexpected upstream answer: {exc!r}")


def mapped_errors() -> AbstractAsyncContextManager[None]:
    return sdk_errors.mapped_errors("anthropic", anthropic.AnthropicError, classify)


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


class _RemappedByLine(Mapping[int, str]):
    """The client's custom_id of a line, read from the input index (for remapped ids)."""

    def __init__(self, index: InputIndex) -> None:
        self._index = index

    def __getitem__(self, line: int) -> str:
        custom_id = self._index.custom_id_at(line)
        if custom_id is None:
            raise KeyError(line)
        return custom_id

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


class AnthropicBatchUpstream:
    style: Literal["remote"] = "remote"

    def __init__(
        self, *, api_key: str | None, base_url: str | None, options: AnthropicOptions, timeout_seconds: float
    ) -> None:
        self.options = options
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key or "unset",
            base_url=base_url,
            max_retries=0,
            timeout=timeout_seconds,  # a float: the SDK runs on its own httpx fork and refuses httpx objects
        )

    # -- submit ------------------------------------------------------------------------------------------

    async def submit(self, job: SubmitJob) -> dict[str, Any]:
        checkpoint = dict(job.checkpoint)
        parts = [Part.model_validate(p) for p in checkpoint.get("parts") or []]
        if not parts:
            raise PermanentUpstreamError("the batch was not planned into Anthropic batches")
        created: dict[str, str] = dict(checkpoint.get("created") or {})
        for index, part in enumerate(parts):
            if str(index) in created:
                continue
            if checkpoint.get("creating") == index:  # an earlier attempt's answer may have been lost
                found = await self._adopt(part, checkpoint["creating_since"], set(created.values()))
                if found:
                    created[str(index)] = found
                    checkpoint |= {"created": created, "creating": None}
                    await job.save(checkpoint)
                    continue
            checkpoint |= {"creating": index, "creating_since": int(time.time())}
            await job.save(checkpoint)
            batch = await self._create(job, part)
            created[str(index)] = batch.id
            checkpoint |= {"created": created, "creating": None}
            await job.save(checkpoint)
        return {"parts": [part.model_dump() | {"id": created[str(i)]} for i, part in enumerate(parts)]}

    async def _create(self, job: SubmitJob, part: Part) -> MessageBatch:
        stream = await asyncio.to_thread(job.open_input)
        body = PartBody(stream, part, self.options)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while data := await asyncio.to_thread(body.next_slice):
                    yield data
            finally:
                body.close()

        async with mapped_errors():
            return await self.client.post(
                "/v1/messages/batches",
                cast_to=MessageBatch,
                content=chunks(),
                options={"headers": {"content-type": "application/json"}},
            )

    async def _adopt(self, part: Part, since: int, known: set[str]) -> str | None:
        candidates: list[str] = []
        async with mapped_errors():
            async for batch in self.client.messages.batches.list(limit=100):
                created = _unix(batch.created_at) or 0
                if created < since - CLOCK_SLACK_SECONDS:
                    break
                counts = batch.request_counts
                total = (
                    counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
                )
                if batch.id not in known and total == part.requests:
                    candidates.append(batch.id)
        return candidates[0] if len(candidates) == 1 else None

    async def find(self, job: SubmitJob) -> dict[str, Any] | None:
        """The parts an earlier attempt created (enough to cancel them), if any."""
        checkpoint = job.checkpoint
        created = dict(checkpoint.get("created") or {})
        parts = [Part.model_validate(p) for p in checkpoint.get("parts") or []]
        creating = checkpoint.get("creating")
        if creating is not None and str(creating) not in created and creating < len(parts):
            found = await self._adopt(parts[creating], checkpoint["creating_since"], set(created.values()))
            if found:
                created[str(creating)] = found
        if not created:
            return None
        return {
            "parts": [
                parts[int(i)].model_dump() | {"id": batch_id} for i, batch_id in sorted(created.items())
            ]
        }

    # -- status, cancel ----------------------------------------------------------------------------------

    async def _batches(self, ref: dict[str, Any]) -> list[MessageBatch]:
        async with mapped_errors():
            return [await self.client.messages.batches.retrieve(part["id"]) for part in ref["parts"]]

    async def status(self, ref: dict[str, Any]) -> RemoteStatus:
        batches = await self._batches(ref)
        counts = [b.request_counts for b in batches]
        total = sum(c.processing + c.succeeded + c.errored + c.canceled + c.expired for c in counts)
        completed = sum(c.succeeded for c in counts)
        failed = sum(c.errored + c.canceled + c.expired for c in counts)
        if any(b.processing_status != "ended" for b in batches):
            state = "cancelling" if any(b.cancel_initiated_at for b in batches) else "in_progress"
            return RemoteStatus(state=state, total=total)
        if any(b.cancel_initiated_at for b in batches):
            state = "cancelled"
        elif any(c.expired for c in counts) and any(
            b.ended_at and b.expires_at and b.ended_at >= b.expires_at for b in batches
        ):
            state = "expired"
        else:
            state = "completed"
        return RemoteStatus(state=state, total=total, completed=completed, failed=failed)

    async def cancel(self, ref: dict[str, Any]) -> None:
        refused: UpstreamError | None = None
        for part in ref["parts"]:
            try:
                async with mapped_errors():
                    await self.client.messages.batches.cancel(part["id"])
            except PermanentUpstreamError as exc:  # e.g. that part already ended
                refused = exc
        if refused is not None:
            raise refused

    # -- results -----------------------------------------------------------------------------------------

    async def results(
        self, ref: dict[str, Any], index: InputIndex
    ) -> AsyncIterator[ResultLine | UnreadableResult]:
        remapped = _RemappedByLine(index)
        for batch in await self._batches(ref):
            if batch.processing_status != "ended" or not batch.results_url:
                continue
            created = _unix(batch.ended_at) or int(time.time())
            with tempfile.TemporaryFile() as spool:
                async with (
                    mapped_errors(),
                    self.client.messages.batches.with_streaming_response.results(batch.id) as response,
                ):
                    async for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                        spool.write(chunk)
                spool.seek(0)
                parser = _ResultsParser(spool, remapped, created)
                while items := await asyncio.to_thread(parser.next_slice):
                    for item in items:
                        yield item

    async def cleanup(self, ref: dict[str, Any]) -> None:
        for part in ref["parts"]:
            try:
                async with mapped_errors():
                    await self.client.messages.batches.delete(part["id"])
            except PermanentUpstreamError:  # already gone, or not ended (a cancel it ignored)
                continue

    async def aclose(self) -> None:
        await self.client.close()


class _ResultsParser:
    """Anthropic result lines, read a slice at a time in a thread, under the client's custom_ids."""

    SLICE_LINES = 1000

    def __init__(self, stream: BinaryIO, remapped: Mapping[int, str], created: int) -> None:
        self._lines = iter_lines(read_chunks(stream), MAX_RESULT_LINE_BYTES)
        self._remapped = remapped
        self._created = created
        self._done = False

    def next_slice(self) -> list[ResultLine | UnreadableResult]:
        items: list[ResultLine | UnreadableResult] = []
        if self._done:
            return items
        try:
            for _, raw in self._lines:
                items.append(self._parse(raw))
                if len(items) >= self.SLICE_LINES:
                    return items
        except LineTooLong as exc:
            items.append(UnreadableResult(str(exc)))
        self._done = True
        return items

    def _parse(self, raw: bytes) -> ResultLine | UnreadableResult:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return UnreadableResult("not JSON")
        if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
            return UnreadableResult("no custom_id")
        custom_id = client_custom_id(obj["custom_id"], self._remapped)
        if custom_id is None:
            return UnreadableResult(f"unknown custom_id {obj['custom_id'][:64]!r}")
        try:
            return result_line_from_anthropic(custom_id, obj.get("result"), created=self._created)
        except UnreadableResult as exc:
            return exc
