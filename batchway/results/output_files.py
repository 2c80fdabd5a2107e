"""A batch's output and error files, assembled from its stored lines (the request log points at each
line's bytes in a result chunk). Nothing is parsed or re-encoded: the bytes are copied as stored, so a
retried assembly writes identical files under the same ids.

Blocking I/O: call from a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from batchway import ids
from batchway.clock import now, now_ns
from batchway.files import FILE_TTL_SECONDS, blob_key
from batchway.storage.blobstore import BlobStore
from batchway.storage.models import BatchRecord, FileRecord, RequestLog

Heartbeat = Callable[[], None]
HEARTBEAT_EVERY_ROWS = 2000


class ResultFile:
    """One output or error file being written; it only becomes a file row if it has lines."""

    def __init__(self, blobs: BlobStore, batch: BatchRecord, kind: str) -> None:
        self.ttl = batch.output_ttl_seconds or FILE_TTL_SECONDS
        self.file_id = ids.derived_file_id(f"{batch.id}/{kind}")
        self.filename = f"{batch.id}_{kind}.jsonl"
        self.key = blob_key(batch.org_id, self.file_id)
        self.lines = 0
        self.bytes = 0
        self._blobs = blobs
        self._context = blobs.open_write(self.key)
        self._out = self._context.__enter__()

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self.lines += 1
        self.bytes += len(data)

    def close(self, org_id: str) -> FileRecord | None:
        self._context.__exit__(None, None, None)
        if self.lines == 0:
            self._blobs.delete(self.key)
            return None
        created = now()
        return FileRecord(
            id=self.file_id,
            org_id=org_id,
            filename=self.filename,
            purpose="batch_output",
            bytes=self.bytes,
            created_at=created,
            created_ns=now_ns(),
            expires_at=created + self.ttl,  # anchored on the file's creation, as OpenAI does
            blob_key=self.key,
        )

    def abort(self) -> None:
        self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_result_files(
    engine: Engine, blobs: BlobStore, batch: BatchRecord, heartbeat: Heartbeat
) -> tuple[FileRecord | None, FileRecord | None]:
    """Copy every stored line of the batch into its output file (2xx answers) or error file (the rest);
    returns their file rows (None for a file that would be empty), not yet committed."""
    output = ResultFile(blobs, batch, "output")
    errors = ResultFile(blobs, batch, "error")
    log = RequestLog
    query = (
        select(log.chunk_key, log.chunk_offset, log.chunk_length, log.ok)
        .where(log.batch_id == batch.id, log.source == "batch")
        .order_by(log.chunk_key, log.chunk_offset)
    )
    stream: BinaryIO | None = None
    current_key: str | None = None
    try:
        with Session(engine) as session:
            for count, (key, offset, length, ok) in enumerate(session.exec(query).yield_per(1000)):
                if key != current_key:
                    if stream is not None:
                        stream.close()
                    stream, current_key = blobs.open_read(key), key
                    heartbeat()
                elif count % HEARTBEAT_EVERY_ROWS == 0:
                    heartbeat()
                assert stream is not None
                if stream.tell() != offset:  # a line stored twice in this chunk: only one copy counts
                    stream.seek(offset)
                data = stream.read(length)
                if len(data) != length:
                    raise OSError(f"result chunk {key} ends before byte {offset + length}")
                (output if ok else errors).write(data)
    except BaseException:
        output.abort()
        errors.abort()
        raise
    finally:
        if stream is not None:
            stream.close()
    return output.close(batch.org_id), errors.close(batch.org_id)
