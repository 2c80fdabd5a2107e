"""The Files API: uploads streamed into the blob store, org-scoped reads, deletes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy.orm import defer
from sqlmodel import Session, select

from batchway import ids
from batchway.batch_input import InputFileError, InputScan, InputScanner
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
    created = now()
    # Recorded (hidden) before a byte is stored: an upload cut short by a crash leaves a row the sweeper
    # finds and removes with its blob, never a blob nobody knows about.
    row = FileRecord(
        id=file_id,
        org_id=org_id,
        filename=filename.replace("\x00", "")[:255] or "upload",
        purpose=purpose,
        bytes=0,
        created_at=created,
        created_ns=now_ns(),
        expires_at=created + (ttl_seconds or FILE_TTL_SECONDS) if purpose == "batch" or ttl_seconds else None,
        blob_key=key,
        deleted=True,
        upload_complete=False,
    )
    session.add(row)
    session.commit()
    try:
        size, scan = _store(blobs, settings, key, source, scanner)
        row.bytes, row.deleted, row.upload_complete = size, False, True
        row.line_count = scan.line_count if scan else None
        row.scan = scan.model_dump() if scan else None
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        _discard(session, blobs, row)
        raise
    return row


def _store(
    blobs: BlobStore, settings: Settings, key: str, source: BinaryIO, scanner: InputScanner | None
) -> tuple[int, InputScan | None]:
    size = 0
    scan: InputScan | None = None

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
        raise bad_request("The file is empty.", param="file", code="empty_file")
    return size, scan


def _discard(session: Session, blobs: BlobStore, row: FileRecord) -> None:
    """Remove an upload that did not finish: its blob first, then its row (each step safe to repeat)."""
    try:
        blobs.delete(row.blob_key)
        session.delete(row)
        session.commit()
    except Exception:  # the sweeper removes what is left (the row stays hidden)
        session.rollback()


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
        options=(defer(FileRecord.scan),),  # what the upload scan learned is never needed to list files
    )


def delete_file(session: Session, blobs: BlobStore, org_id: str, file_id: str) -> None:
    row = get_file(session, org_id, file_id)
    # Hidden first, then the blob, then the row: a crash in between leaves a hidden row the sweeper
    # purges, never a row pointing at a missing blob nor a blob nobody knows about.
    row.deleted = True
    session.add(row)
    session.commit()
    if running_batch_reading(session, file_id):
        return  # a running batch still needs the lines to write its results: purged when it ends
    purge(session, blobs, row)


def purge_if_deleted(session: Session, blobs: BlobStore, file_id: str) -> None:
    """Remove an input file its org deleted while batches were still reading it, once none is."""
    row = session.get(FileRecord, file_id)
    if row is None or not row.deleted or running_batch_reading(session, file_id):
        return
    purge(session, blobs, row)


def purge(session: Session, blobs: BlobStore, row: FileRecord) -> None:
    """Remove a hidden file for good: its blob, then its row."""
    blobs.delete(row.blob_key)
    session.delete(row)
    session.commit()


def running_batch_reading(session: Session, file_id: str) -> str | None:
    return session.exec(
        select(BatchRecord.id).where(
            BatchRecord.input_file_id == file_id, BatchRecord.status.not_in(TERMINAL)
        )
    ).first()
