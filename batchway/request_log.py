"""The Requests API below HTTP: an org's request-log rows (one per batch line, and one per judge call),
filtered and paged newest first, and one request in full (its request and response bodies are read from
the blob store: the input file and the result chunk the row points at)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import desc
from sqlmodel import Session, select

from batchway.errors import bad_request, not_found
from batchway.ids import looks_like_id
from batchway.storage.blobstore import BlobStore
from batchway.storage.models import BatchRecord, FileRecord, RequestLog

MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RequestFilters:
    batch_id: str | None = None
    status: str | None = None  # "ok", "error", or an HTTP status code
    model: str | None = None
    provider: str | None = None
    session_id: str | None = None
    source: str | None = None  # "batch" or "judge"


def status_filter(status: str) -> Any:
    if status == "ok":
        return RequestLog.ok.is_(True)
    if status == "error":
        return RequestLog.ok.is_(False)
    if status.isdigit() and len(status) == 3:
        return RequestLog.status_code == int(status)
    raise bad_request("status must be 'ok', 'error' or an HTTP status code.", param="status")


def list_requests(
    session: Session, org_id: str, filters: RequestFilters, *, limit: int, after: str | None
) -> tuple[list[RequestLog], bool]:
    query = select(RequestLog).where(RequestLog.org_id == org_id)
    for column, value in (
        (RequestLog.batch_id, filters.batch_id),
        (RequestLog.model, filters.model),
        (RequestLog.provider, filters.provider),
        (RequestLog.session_id, filters.session_id),
        (RequestLog.source, filters.source),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.status is not None:
        query = query.where(status_filter(filters.status))
    if after is not None:
        anchor = _find(session, org_id, after)
        if anchor is None:
            raise bad_request(f"No such object to page after: {after}", param="after")
        query = query.where(RequestLog.id < anchor.id)
    rows = list(session.exec(query.order_by(desc(RequestLog.id)).limit(limit + 1)).all())
    return rows[:limit], len(rows) > limit


def _find(session: Session, org_id: str, line_id: str) -> RequestLog | None:
    if not looks_like_id(line_id):
        return None
    row = session.exec(select(RequestLog).where(RequestLog.line_id == line_id)).first()
    return row if row is not None and row.org_id == org_id else None


def get_request(session: Session, org_id: str, line_id: str) -> RequestLog:
    row = _find(session, org_id, line_id)
    if row is None:
        raise not_found("Request", line_id)
    return row


def request_object(row: RequestLog) -> dict[str, Any]:
    return {
        "id": row.line_id,
        "object": "batch.request",
        "batch_id": row.batch_id,
        "custom_id": row.custom_id,
        "line": row.line,
        "source": row.source,
        "session_id": row.session_id,
        "provider": row.provider,
        "endpoint": row.endpoint,
        "model": row.model,
        "status": "ok" if row.ok else "error",
        "status_code": row.status_code,
        "error_code": row.error_code,
        "upstream_request_id": row.request_id,
        "usage": {
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "total_tokens": row.total_tokens,
            "cached_tokens": row.cached_tokens,
            "reasoning_tokens": row.reasoning_tokens,
        },
        "cost_usd": row.cost_micros / 1_000_000,
        "latency_ms": row.latency_ms,
        "scores": {
            "heuristic": row.heuristic_score,
            "heuristic_reasons": row.heuristic_reasons,
            "judge": row.judge_score,
            "judge_reason": row.judge_reason,
        },
        "created_at": row.created_at,
    }


def request_detail(session: Session, blobs: BlobStore, row: RequestLog) -> dict[str, Any]:
    """The row with what was asked and answered, and the headers sent when the batch was created."""
    batch = session.get(BatchRecord, row.batch_id)
    detail = request_object(row)
    detail["request"] = _request_body(session, blobs, row, batch)
    line = _read(blobs, row.chunk_key, row.chunk_offset, row.chunk_length)
    detail["response"] = line.get("response") if isinstance(line, dict) else None
    detail["error"] = line.get("error") if isinstance(line, dict) else None
    detail["request_headers"] = (batch.request_headers if batch else None) or {}
    return detail


def _request_body(session: Session, blobs: BlobStore, row: RequestLog, batch: BatchRecord | None) -> Any:
    if batch is None or row.input_offset is None or row.input_length is None:
        return None
    input_file = session.get(FileRecord, batch.input_file_id)
    if input_file is None:
        return None  # the input file was deleted (or expired): the response is still there
    line = _read(blobs, input_file.blob_key, row.input_offset, row.input_length)
    return line.get("body") if isinstance(line, dict) else None


def _read(blobs: BlobStore, key: str, offset: int, length: int) -> Any:
    if not key or length <= 0 or length > MAX_BODY_BYTES:
        return None
    try:
        with blobs.open_read(key) as stream:
            stream.seek(offset)
            return orjson.loads(stream.read(length))
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
