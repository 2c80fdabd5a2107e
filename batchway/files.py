"""The Files API: uploads streamed into the blob store, org-scoped reads, deletes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from sqlmodel import Session, select

from batchway import ids
from batchway.batch_input import InputFileError, InputScanner
from batchway.clock import now, now_ns
from batchway.errors import APIError, bad_request, not_found
from batchway.ids import looks_like_id
from batchway.jsonl import read_chunks
from batchway.lifecycle import TERMINAL
from batchway.paging import page
from batchway.settings import Settings
from batchway.storage.blobstore import BlobStore
from batchway.storage.models import BatchRecord, FileRecord

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
FILE_TTL_SECONDS = 30 * 24 * 3600  # OpenAI's default for batch files
MIN_TTL_SECONDS, MAX_TTL_SECONDS = 3600, 30 * 24 * 3600


def blob_key(org_id: str, file_id: str) -> str:
    return f"{org_id}/{file_id}"


def too_large(limit: int) -> APIError:
    return bad_request(f"File is larger than the {limit} byte limit.", param="file", code="file_too_large")


def check_expires_after(anchor: str | None, seconds: int | None) -> int | None:
    """Validate `expires_after[anchor]` / `[seconds]`; return the TTL in seconds if one was given."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise bad_request("expires_after.anchor must be 'created_at'.", param="expires_after.anchor")
    if seconds is None or not MIN_TTL_SECONDS <= seconds <= MAX_TTL_SECONDS:
        raise bad_request(
            f"expires_after.seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}.",
            param="expires_after.seconds",
        )
    return seconds


def upload(
    session: Session,
    blobs: BlobStore,
    settings: Settings,
    *,
    org_id: str,
    filename: str,
    purpose: str,
    source: BinaryIO,
    ttl_seconds: int | None = None,
) -> FileRecord:
    """Copy `source` into the blob store, checking limits (and JSONL shape for batch files) as it
    streams; on any problem nothing is kept."""
    if purpose not in UPLOAD_PURPOSES:
        raise bad_request(f"'{purpose}' is not one of {list(UPLOAD_PURPOSES)} - 'purpose'", param="purpose")
    file_id = ids.new_file_id()
    key = blob_key(org_id, file_id)
    scanner = InputScanner(settings.max_lines, settings.max_line_bytes) if purpose == "batch" else None
    size = 0

    def counted_chunks() -> Iterator[bytes]:
        nonlocal size
        for chunk in read_chunks(source):
            size += len(chunk)
            if size > settings.max_input_bytes:
                raise too_large(settings.max_input_bytes)
            out.write(chunk)
            yield chunk

    try:
        with blobs.open_write(key) as out:
            if scanner is None:
                for _ in counted_chunks():
                    pass
            else:
                scan = scanner.scan(counted_chunks())
    except InputFileError as exc:
        raise bad_request(f"Invalid batch input file: {exc.message}", param="file", code=exc.code) from None
    if size == 0:
        blobs.delete(key)
        raise bad_request("The file is empty.", param="file", code="empty_file")

    created = now()
    row = FileRecord(
        id=file_id,
        org_id=org_id,
        filename=filename.replace("\x00", "")[:255] or "upload",
        purpose=purpose,
        bytes=size,
        created_at=created,
        created_ns=now_ns(),
        expires_at=created + (ttl_seconds or FILE_TTL_SECONDS) if purpose == "batch" or ttl_seconds else None,
        blob_key=key,
        line_count=scan.line_count if scanner else None,
        scan=scan.model_dump() if scanner else None,
    )
    session.add(row)
    session.commit()
    return row


def get_file(session: Session, org_id: str, file_id: str) -> FileRecord:
    row = session.get(FileRecord, file_id) if looks_like_id(file_id) else None
    if row is None or row.org_id != org_id or row.deleted:
        raise not_found("File", file_id)
    return row


def list_files(
    session: Session, org_id: str, *, purpose: str | None, limit: int, order: str, after: str | None
) -> tuple[list[FileRecord], bool]:
    filters = (FileRecord.deleted.is_(False),)
    if purpose:
        filters += (FileRecord.purpose == purpose,)
    return page(
        session,
        FileRecord,
        org_id=org_id,
        after=after,
        limit=limit,
        descending=order == "desc",
        filters=filters,
    )


def delete_file(session: Session, blobs: BlobStore, org_id: str, file_id: str) -> None:
    row = get_file(session, org_id, file_id)
    if _running_batch_reading(session, file_id):
        # A running batch still needs the lines to write its results: hide the file now, purge later.
        row.deleted = True
        session.add(row)
        session.commit()
        return
    session.delete(row)
    session.commit()
    blobs.delete(row.blob_key)


def purge_if_deleted(session: Session, blobs: BlobStore, file_id: str) -> None:
    """Remove an input file its org deleted while batches were still reading it, once none is."""
    row = session.get(FileRecord, file_id)
    if row is None or not row.deleted or _running_batch_reading(session, file_id):
        return
    session.delete(row)
    session.commit()
    blobs.delete(row.blob_key)


def _running_batch_reading(session: Session, file_id: str) -> str | None:
    return session.exec(
        select(BatchRecord.id).where(
            BatchRecord.input_file_id == file_id, BatchRecord.status.not_in(TERMINAL)
        )
    ).first()
