"""The steps of a batch on an executed upstream (the fan-out): plan the input into chunks, then run each
chunk's lines against the upstream, storing every line's result as it arrives.

The database is the checkpoint (decision 6): a chunk skips the lines already stored, so a chunk retried
after a crash only sends again the lines that had no stored answer: the calls in flight, plus the answers
received since the last flush (at most `FLUSH_SECONDS` of them). It reports an estimate of how many, from
the lines its killed attempt had last reported sent (a heartbeat, so up to a few seconds old).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson
from sqlmodel import Session, select

from batchway import lifecycle
from batchway.batch_input import LineSpan
from batchway.contracts import ChunkInput, ChunkResult, ChunkSpec
from batchway.jsonl import iter_line_spans, read_chunks
from batchway.pipeline.deps import Deps
from batchway.pipeline.inputs import input_file, open_input
from batchway.pipeline.sinks import sink_for
from batchway.results.sink import ResultSink
from batchway.results.totals import line_totals
from batchway.storage.models import BatchRecord, RequestLog
from batchway.upstreams.base import ExecutedUpstream, RequestLine
from batchway.upstreams.fanout.adapter import Dispatch
from batchway.upstreams.result_line import ResultLine

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5  # a stored line is a line a crash cannot cost again
FLUSH_LINES = 200
PROGRESS_SECONDS = 2.0  # how often a chunk refreshes the batch's counts
MAX_LINES_IN_MEMORY = 256  # lines read ahead of the upstream, per chunk
Heartbeat = Callable[[dict[str, Any]], None]  # records the details the activity's next heartbeat sends


def plan_chunks(deps: Deps, batch_id: str) -> list[ChunkSpec]:
    """Cut the input into chunks of `fanout_chunk_lines` lines (finding each one's byte offset), and
    start the batch running. Blocking."""
    batch = lifecycle.load(deps.engine, batch_id)
    with open_input(deps, batch) as stream:
        starts, total = line_starts(stream, every=deps.settings.fanout_chunk_lines)
    chunks = [
        ChunkSpec(
            index=index,
            first_line=first,
            last_line=starts[index + 1][0] - 1 if index + 1 < len(starts) else total,
            start_byte=offset,
        )
        for index, (first, offset) in enumerate(starts)
    ]
    lifecycle.transition(deps.engine, batch_id, lifecycle.Status.IN_PROGRESS, total=total)
    return chunks


def line_starts(stream: BinaryIO, *, every: int) -> tuple[list[tuple[int, int]], int]:
    """(line number, byte offset) of lines 1, 1 + every, 1 + 2*every...; and the number of lines."""
    starts: list[tuple[int, int]] = []
    line = offset = 0
    at_line_start = True
    for data in read_chunks(stream):
        position = 0
        while position < len(data):
            if at_line_start:
                line += 1
                if (line - 1) % every == 0:
                    starts.append((line, offset + position))
                at_line_start = False
            end = data.find(b"\n", position)
            if end == -1:
                break  # the line goes on in the next read
            position, at_line_start = end + 1, True
        offset += len(data)
    return starts, line


def _stored_lines(deps: Deps, batch_id: str, chunk: ChunkSpec) -> set[int]:
    with Session(deps.engine) as session:
        rows = session.exec(
            select(RequestLog.line).where(
                RequestLog.batch_id == batch_id,
                RequestLog.line >= chunk.first_line,
                RequestLog.line <= chunk.last_line,
            )
        ).all()
    return {line for line in rows if line is not None}


class _ChunkReader:
    """The chunk's input lines, read from its byte offset a slice at a time (blocking)."""

    def __init__(self, stream: BinaryIO, chunk: ChunkSpec, skip: set[int], max_line_bytes: int) -> None:
        stream.seek(chunk.start_byte)
        self._stream = stream
        self._lines: Iterator[tuple[int, int, bytes]] = iter_line_spans(stream, max_line_bytes)
        self._chunk = chunk
        self._skip = skip

    def next_slice(self, most: int) -> list[RequestLine]:
        requests: list[RequestLine] = []
        for offset, start, raw in self._lines:
            number = self._chunk.first_line + offset - 1
            if number > self._chunk.last_line:
                break
            if number in self._skip:
                continue
            obj = orjson.loads(raw)  # the upload scan checked every line
            requests.append(
                RequestLine(
                    obj["custom_id"],
                    number,
                    obj["url"],
                    obj["body"],
                    self._chunk.start_byte + start,
                    len(raw),
                )
            )
            if len(requests) >= most:
                return requests
        self.close()
        return requests

    def close(self) -> None:
        self._stream.close()


async def run_chunk(
    deps: Deps, request: ChunkInput, heartbeat: Heartbeat, previous: dict[str, Any]
) -> ChunkResult:
    """Run the chunk's unstored lines. `previous` is the heartbeat detail of a killed earlier attempt."""
    batch = await deps.blocking(lifecycle.load, deps.engine, request.batch_id)
    upstream = await deps.upstream(batch)
    assert isinstance(upstream, ExecutedUpstream), f"provider {batch.provider} does not answer single lines"
    chunk = request.chunk
    stored = await deps.blocking(_stored_lines, deps, batch.id, chunk)
    resent = len(set(previous.get("sent", ())) - stored)
    if resent:
        log.warning("chunk %s of %s sends %d lines a killed attempt had sent", chunk.index, batch.id, resent)
    runner = _ChunkRunner(deps, batch, upstream, request, heartbeat)
    await runner.run(stored)
    stats = upstream.limiter.stats() if hasattr(upstream, "limiter") else None
    return ChunkResult(
        stored=runner.sink.stored if runner.sink else 0,
        resent=resent,
        rate_limited=stats.rate_limited if stats else 0,
        admitted_per_second=stats.admitted_per_second if stats else 0.0,
        concurrency=stats.concurrency_limit if stats else 0,
        cancel_requested=runner.cancel_requested,
    )


class _ChunkRunner:
    def __init__(
        self,
        deps: Deps,
        batch: BatchRecord,
        upstream: ExecutedUpstream,
        request: ChunkInput,
        heartbeat: Heartbeat,
    ) -> None:
        self.deps = deps
        self.batch = batch
        self.upstream = upstream
        self.request = request
        self.heartbeat = heartbeat
        self.sink: ResultSink | None = None  # built in `run` (it reads the prices)
        self.dispatch = Dispatch()
        self.pending: list[int] = []  # lines queued in the sink, not stored yet
        self._last_flush = time.monotonic()
        self._last_progress = 0.0
        self.cancel_requested = False

    async def run(self, skip: set[int]) -> None:
        self.sink = await self.deps.blocking(sink_for, self.deps, self.batch)
        file = await self.deps.blocking(input_file, self.deps, self.batch)
        stream = await self.deps.blocking(self.deps.blobs.open_read, file.blob_key)
        reader = _ChunkReader(stream, self.request.chunk, skip, self.deps.settings.max_line_bytes)
        tasks: set[asyncio.Task[None]] = set()
        room = asyncio.Semaphore(MAX_LINES_IN_MEMORY)
        try:
            while not self._stopping():
                requests = await self.deps.blocking(reader.next_slice, 64)
                if not requests:
                    break
                for line in requests:
                    if not await self._wait_for_room(room):
                        break
                    task = asyncio.create_task(self._run_line(line))
                    tasks.add(task)
                    task.add_done_callback(lambda t: (tasks.discard(t), room.release()))
                    await self._maybe_flush()
                    if self._stopping():
                        break
            while tasks and not self._stopping():
                await asyncio.wait(tasks, timeout=FLUSH_SECONDS)
                await self._maybe_flush()
            if tasks:  # stopped: nothing new is sent; calls already out get a short grace to answer
                self.dispatch.stop.set()
                await asyncio.wait(tasks, timeout=self.deps.settings.fanout_stop_grace_seconds)
        except asyncio.CancelledError:  # the workflow cancelled the chunk (a cancel, or the deadline)
            self.dispatch.stop.set()
            if tasks:
                await asyncio.wait(tasks, timeout=self.deps.settings.fanout_stop_grace_seconds)
            await self._close(tasks, reader)
            raise
        await self._close(tasks, reader)

    async def _wait_for_room(self, room: asyncio.Semaphore) -> bool:
        """Wait until fewer lines are out than the chunk may hold in memory (flushing meanwhile); False
        if the chunk stopped first."""
        while True:
            try:
                await asyncio.wait_for(room.acquire(), timeout=FLUSH_SECONDS)
                return True
            except TimeoutError:
                await self._maybe_flush()
                if self._stopping():
                    return False

    def _stopping(self) -> bool:
        return self.dispatch.stop.is_set() or time.time() >= self.request.stop_at

    async def _run_line(self, request: RequestLine) -> None:
        result: ResultLine | None = await self.upstream.execute(request, self.dispatch)
        if result is not None:
            assert self.sink is not None
            self.sink.add(result, LineSpan(request.line, request.offset or 0, request.length or 0))
            self.pending.append(request.line)

    async def _maybe_flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and len(self.pending) < FLUSH_LINES and now - self._last_flush < FLUSH_SECONDS:
            return
        self._last_flush = now
        lines, self.pending = self.pending, []
        if self.sink is not None:
            await self.deps.blocking(self.sink.flush)
        self.dispatch.sent.difference_update(lines)
        self.heartbeat({"sent": sorted(self.dispatch.sent)})
        if force or now - self._last_progress >= PROGRESS_SECONDS:
            self._last_progress = now
            if await self.deps.blocking(_record_progress, self.deps, self.batch.id):
                self.cancel_requested = True  # the API recorded a cancel: stop, even if its signal is lost
                self.dispatch.stop.set()

    async def _close(self, tasks: set[asyncio.Task[None]], reader: _ChunkReader) -> None:
        for task in tasks:  # still running after the grace: cut (their lines end as not executed)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.shield(self._maybe_flush(force=True))
        reader.close()


def _record_progress(deps: Deps, batch_id: str) -> bool:
    """Refresh the batch's counts from its stored lines; returns whether a cancel was requested."""
    with Session(deps.engine) as session:
        totals = line_totals(session, batch_id)
    row = lifecycle.transition(
        deps.engine, batch_id, completed=totals.completed, failed=totals.failed, usage=totals.batch_usage()
    )
    return row.cancel_requested
