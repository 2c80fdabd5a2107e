"""Storing `ResultLine`s as they arrive (decision 13): each flush writes one result chunk blob holding the
lines in output-file format, then one request-log row per line in one bounded transaction.

The request-log row is unique per (batch, custom_id) and the first writer wins, so a line stored twice
(a retried activity, a duplicate upstream line) is counted once and points at one copy of its bytes.
Blocking I/O throughout: call from a thread, never from the worker's event loop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from batchway import ids, metrics
from batchway.batch_input import LineSpan
from batchway.clock import now
from batchway.jsonl import dumps_line
from batchway.results.pricing import PriceBook
from batchway.storage.blobstore import BlobStore
from batchway.storage.db import insert_ignoring_conflicts
from batchway.storage.models import RequestLog, ResultChunk
from batchway.upstreams.result_line import ResultLine

FLUSH_LINES = 500  # bounds a transaction (and a chunk blob) whatever the batch size


@dataclass(frozen=True, slots=True)
class BatchLabels:
    """What every request-log row of a batch carries besides the line itself."""

    org_id: str
    batch_id: str
    provider: str
    endpoint: str
    model: str | None
    session_id: str | None = None
    source: str = "batch"


def chunk_key(org_id: str, batch_id: str) -> str:
    return f"{org_id}/results/{batch_id}/{uuid.uuid4().hex}.jsonl"


class ResultSink:
    def __init__(
        self, engine: Engine, blobs: BlobStore, labels: BatchLabels, prices: PriceBook | None = None
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.labels = labels
        self.prices = prices or PriceBook()
        self._pending: list[tuple[ResultLine, LineSpan | None]] = []
        self.stored = 0  # rows this sink inserted (lines already stored by someone else are not counted)

    def add(self, line: ResultLine, span: LineSpan | None) -> None:
        """Queue a line (`span`: where its request is in the input file)."""
        self._pending.append((line, span))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Store every queued line; returns how many were new."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, []
        labels = self.labels
        key = chunk_key(labels.org_id, labels.batch_id)
        with Session(self.engine) as session:  # recorded first, so a write cut short can be found
            session.add(ResultChunk(key=key, batch_id=labels.batch_id, created_at=now()))
            session.commit()
        rows = []
        offset = 0
        created = now()
        with self.blobs.open_write(key) as out:
            for line, span in pending:
                line_id = ids.result_line_id(labels.batch_id, line.custom_id)
                data = dumps_line(line.output_line(line_id))
                out.write(data)
                cost = self.prices.cost_micros(
                    line.model or labels.model, line.usage, batch=labels.source == "batch"
                )
                rows.append(_log_row(labels, line, line_id, span, (key, offset, len(data)), cost, created))
                offset += len(data)
        with Session(self.engine) as session:
            inserted = set(
                insert_ignoring_conflicts(
                    session, RequestLog, rows, ["batch_id", "custom_id"], returning="custom_id"
                )
            )
            session.commit()
        self._count(pending, inserted)
        self.stored += len(inserted)
        return len(inserted)

    def _count(self, pending: list[tuple[ResultLine, LineSpan | None]], inserted: set[str]) -> None:
        provider = self.labels.provider
        for line, _ in pending:
            if line.custom_id in inserted:
                metrics.LINES.labels(provider, "ok" if line.ok else "error").inc()
                if line.usage.total_tokens:
                    metrics.TOKENS.labels(provider, "prompt").inc(line.usage.input_tokens)
                    metrics.TOKENS.labels(provider, "completion").inc(line.usage.output_tokens)


def _log_row(
    labels: BatchLabels,
    line: ResultLine,
    line_id: str,
    span: LineSpan | None,
    stored_at: tuple[str, int, int],
    cost_micros: int,
    created: int,
) -> dict[str, object]:
    usage = line.usage
    chunk_key, chunk_offset, chunk_length = stored_at
    return {
        "line_id": line_id,
        "org_id": labels.org_id,
        "batch_id": labels.batch_id,
        "custom_id": line.custom_id,
        "line": span.line if span else None,
        "source": labels.source,
        "session_id": labels.session_id,
        "provider": labels.provider,
        "endpoint": labels.endpoint,
        "model": line.model or labels.model,
        "ok": line.ok,
        "status_code": line.status_code,
        "error_code": line.error_code,
        "request_id": line.request_id,
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "latency_ms": line.latency_ms,
        "cost_micros": cost_micros,
        "chunk_key": chunk_key,
        "chunk_offset": chunk_offset,
        "chunk_length": chunk_length,
        "input_offset": span.offset if span else None,
        "input_length": span.length if span else None,
        "created_at": created,
    }
