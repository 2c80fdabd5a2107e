"""Status transitions of the batch row, each a guarded UPDATE so concurrent writers cannot undo each
other: nothing leaves a terminal status, and progress never overwrites a requested cancel."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from batchway.clock import now
from batchway.models import TERMINAL_STATUSES, BatchRecord

TIMESTAMP_OF = {
    "in_progress": "in_progress_at",
    "finalizing": "finalizing_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}
# Statuses a pending cancel must win over.
PROGRESS_STATUSES = frozenset({"validating", "in_progress"})


def transition(engine: Engine, batch_id: str, status: str | None = None, **fields: Any) -> BatchRecord:
    """Set `fields` and move to `status` (stamping its `*_at` once) unless the batch already ended."""
    with Session(engine, expire_on_commit=False) as session:
        not_ended = BatchRecord.status.not_in(TERMINAL_STATUSES)
        if fields:
            session.execute(update(BatchRecord).where(BatchRecord.id == batch_id, not_ended).values(**fields))
        if status is not None:
            values: dict[str, Any] = {"status": status}
            if stamp := TIMESTAMP_OF.get(status):
                column = getattr(BatchRecord, stamp)
                values[stamp] = func.coalesce(column, now())
            guard = [BatchRecord.id == batch_id, not_ended]
            if status in PROGRESS_STATUSES:
                guard.append(BatchRecord.cancel_requested.is_(False))
            session.execute(update(BatchRecord).where(*guard).values(**values))
        session.commit()
        row = session.get(BatchRecord, batch_id)
        if row is None:
            raise LookupError(f"batch {batch_id} vanished")
        return row


def load(engine: Engine, batch_id: str) -> BatchRecord:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(BatchRecord, batch_id)
        if row is None:
            raise LookupError(f"batch {batch_id} not found")
        return row
