"""The Batches API below HTTP: create (checks and the row), org-scoped reads, the cancel flag."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from batchway import ids
from batchway.batch_input import InputScan
from batchway.clock import now, now_ns
from batchway.errors import bad_request, not_found
from batchway.files import get_file
from batchway.ids import looks_like_id
from batchway.models import BatchRecord, ProviderConfig
from batchway.paging import page
from batchway.settings import Settings

SUPPORTED_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses")
COMPLETION_WINDOWS = ("24h",)
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
CANCELLABLE_STATUSES = ("validating", "in_progress")


def check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise bad_request("metadata must be an object of string keys and string values.", param="metadata")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise bad_request(f"metadata can hold at most {MAX_METADATA_PAIRS} pairs.", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise bad_request(
                f"metadata keys can be at most {MAX_METADATA_KEY} characters; '{key[:20]}...' is longer.",
                param="metadata",
            )
        if not isinstance(value, str):
            raise bad_request(f"metadata value for '{key}' must be a string.", param="metadata")
        if "\x00" in key or "\x00" in value:
            raise bad_request("metadata cannot contain NUL characters.", param="metadata")
        if len(value) > MAX_METADATA_VALUE:
            raise bad_request(
                f"metadata value for '{key}' is longer than {MAX_METADATA_VALUE} characters.",
                param="metadata",
            )
    return metadata


def create_batch(
    session: Session,
    settings: Settings,
    *,
    org_id: str,
    provider: ProviderConfig,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: Any,
) -> BatchRecord:
    if endpoint not in SUPPORTED_ENDPOINTS:
        raise bad_request(
            f"Invalid endpoint '{endpoint}'; supported: {', '.join(SUPPORTED_ENDPOINTS)}.", param="endpoint"
        )
    if completion_window not in COMPLETION_WINDOWS:
        raise bad_request(
            f"Invalid completion_window '{completion_window}'; the only supported value is '24h'.",
            param="completion_window",
        )
    checked_metadata = check_metadata(metadata)
    input_file = get_file(session, org_id, input_file_id)
    if input_file.purpose != "batch" or input_file.scan is None:
        raise bad_request(
            f"File {input_file_id} has purpose '{input_file.purpose}'; a batch needs a file uploaded "
            "with purpose 'batch'.",
            param="input_file_id",
        )
    problems = InputScan.model_validate(input_file.scan).problems_for(endpoint)
    if problems:
        first = problems[0]
        raise bad_request(
            f"Invalid batch input file {input_file_id}: {first.message}",
            param="input_file_id",
            code=first.code,
        )
    created = now()
    row = BatchRecord(
        id=ids.new_batch_id(),
        org_id=org_id,
        provider=provider.name,
        endpoint=endpoint,
        input_file_id=input_file_id,
        completion_window=completion_window,
        status="validating",
        created_at=created,
        created_ns=now_ns(),
        expires_at=created + settings.completion_window_seconds,
        batch_metadata=checked_metadata,
    )
    session.add(row)
    session.commit()
    return row


def get_batch(session: Session, org_id: str, batch_id: str) -> BatchRecord:
    row = session.get(BatchRecord, batch_id) if looks_like_id(batch_id) else None
    if row is None or row.org_id != org_id:
        raise not_found("Batch", batch_id)
    return row


def list_batches(
    session: Session, org_id: str, *, limit: int, after: str | None
) -> tuple[list[BatchRecord], bool]:
    return page(session, BatchRecord, org_id=org_id, after=after, limit=limit, descending=True)


def mark_cancelling(session: Session, org_id: str, batch_id: str) -> BatchRecord:
    """Flag the batch `cancelling` if it is still validating or running; otherwise 400 (never 409:
    SDKs retry 409)."""
    row = get_batch(session, org_id, batch_id)
    if row.status == "cancelling":
        return row
    result = session.execute(
        update(BatchRecord)
        .where(BatchRecord.id == batch_id, BatchRecord.status.in_(CANCELLABLE_STATUSES))
        .values(status="cancelling", cancelling_at=now(), cancel_requested=True)
    )
    session.commit()
    session.refresh(row)
    if result.rowcount == 0:
        raise bad_request(f"Cannot cancel a batch with status '{row.status}'.", param="batch_id")
    return row
