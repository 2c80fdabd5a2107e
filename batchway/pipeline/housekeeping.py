"""What the sweeper tidies every run: files past their `expires_at` (kept while a running batch still
reads them) with, for result files, the stored results they were assembled from; and hidden files (deleted
by their org, or uploads that never finished) whose blobs and rows can now go. Blocking: call from a
thread."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_
from sqlmodel import Session, select

from batchway import files
from batchway.clock import now
from batchway.pipeline.deps import Deps
from batchway.storage.models import BatchRecord, FileRecord, ResultChunk

UPLOAD_GRACE_SECONDS = 3600  # an upload still unfinished this long after it began was abandoned
ROWS_PER_RUN = 500


@dataclass(frozen=True, slots=True)
class Tidied:
    expired: int
    purged: int


def housekeep(deps: Deps) -> Tidied:
    return Tidied(expired=expire_files(deps), purged=purge_hidden(deps))


def expire_files(deps: Deps) -> int:
    moment = now()
    with Session(deps.engine) as session:
        rows = session.exec(
            select(FileRecord)
            .where(
                FileRecord.deleted.is_(False),
                FileRecord.expires_at.is_not(None),
                FileRecord.expires_at < moment,
            )
            .limit(ROWS_PER_RUN)
        ).all()
        expired = 0
        for row in rows:
            row.deleted = True  # hidden at once; purged below unless a running batch still reads it
            session.add(row)
            session.commit()
            if row.purpose == "batch_output":
                _drop_results_of(session, deps, row.id)
            files.purge_if_deleted(session, deps.blobs, row.id)
            expired += 1
    return expired


def _drop_results_of(session: Session, deps: Deps, file_id: str) -> None:
    """A batch's result files expired: the stored results they were assembled from go too (the request
    log keeps its rows, without bodies)."""
    batch = session.exec(
        select(BatchRecord).where(
            or_(BatchRecord.output_file_id == file_id, BatchRecord.error_file_id == file_id)
        )
    ).first()
    if batch is None:
        return
    for key in session.exec(select(ResultChunk.key).where(ResultChunk.batch_id == batch.id)).all():
        deps.blobs.delete(key)
    session.execute(delete(ResultChunk).where(ResultChunk.batch_id == batch.id))
    session.commit()


def purge_hidden(deps: Deps) -> int:
    abandoned = now() - UPLOAD_GRACE_SECONDS
    with Session(deps.engine) as session:
        rows = session.exec(
            select(FileRecord)
            .where(
                FileRecord.deleted.is_(True),
                or_(FileRecord.upload_complete.is_(True), FileRecord.created_at < abandoned),
            )
            .limit(ROWS_PER_RUN)
        ).all()
        purged = 0
        for row in rows:
            if files.running_batch_reading(session, row.id):
                continue
            files.purge(session, deps.blobs, row)
            purged += 1
    return purged
