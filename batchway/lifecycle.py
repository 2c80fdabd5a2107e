"""The one writer of batch status: the status enum, the transitions allowed between them, the terminal
set, and the guarded UPDATEs that apply them. API, CLI, activities and recovery all go through here.

Every write is a single UPDATE guarded by the statuses it may leave, so concurrent writers (an API
cancel racing the worker's progress) cannot undo each other: nothing leaves a terminal status, and
progress never overwrites a requested cancel.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from batchway.clock import now
from batchway.errors import bad_request
from batchway.storage.models import BatchRecord


class Status(StrEnum):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.FAILED, Status.COMPLETED, Status.EXPIRED, Status.CANCELLED})
ACTIVE = frozenset(Status) - TERMINAL
# A cancel is accepted only before the results are being written.
CANCELLABLE = frozenset({Status.VALIDATING, Status.IN_PROGRESS})

# target status -> the statuses it may be entered from
ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    Status.IN_PROGRESS: frozenset({Status.VALIDATING, Status.IN_PROGRESS}),
    Status.CANCELLING: CANCELLABLE | {Status.CANCELLING},
    Status.FINALIZING: frozenset({Status.IN_PROGRESS, Status.CANCELLING, Status.FINALIZING}),
    # Endings: from any live status (an upstream can finish before our cancel reaches it).
    **{status: ACTIVE for status in TERMINAL},
}
# Statuses a pending cancel must win over: entering them is refused once a cancel was requested.
OVERRIDDEN_BY_CANCEL = frozenset({Status.IN_PROGRESS, Status.FINALIZING})

TIMESTAMP_OF = {
    Status.IN_PROGRESS: "in_progress_at",
    Status.FINALIZING: "finalizing_at",
    Status.COMPLETED: "completed_at",
    Status.FAILED: "failed_at",
    Status.EXPIRED: "expired_at",
    Status.CANCELLING: "cancelling_at",
    Status.CANCELLED: "cancelled_at",
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def _apply(
    session: Session,
    batch_id: str,
    status: Status | None,
    fields: dict[str, Any],
    with_status: dict[str, Any] | None = None,
) -> bool:
    """The guarded UPDATEs, in the caller's transaction; returns whether the status moved. `fields` are
    written while the batch is live; `with_status` only together with the status change."""
    if fields:
        session.execute(
            update(BatchRecord)
            .where(BatchRecord.id == batch_id, BatchRecord.status.in_(ACTIVE))
            .values(**fields)
        )
    if status is None:
        return False
    status = Status(status)
    values: dict[str, Any] = {"status": status, **(with_status or {})}
    stamps = [TIMESTAMP_OF[status]]
    if status is Status.CANCELLED:
        stamps.insert(0, TIMESTAMP_OF[Status.CANCELLING])  # a cancel that never passed `cancelling`
    for stamp in stamps:
        values[stamp] = func.coalesce(getattr(BatchRecord, stamp), now())
    guard = [BatchRecord.id == batch_id, BatchRecord.status.in_(ALLOWED_FROM[status])]
    if status in OVERRIDDEN_BY_CANCEL:
        guard.append(BatchRecord.cancel_requested.is_(False))
    return session.execute(update(BatchRecord).where(*guard).values(**values)).rowcount > 0


def transition(engine: Engine, batch_id: str, status: Status | None = None, **fields: Any) -> BatchRecord:
    """Set `fields` (while the batch is live) and move to `status` if allowed; returns the row as stored."""
    with Session(engine, expire_on_commit=False) as session:
        _apply(session, batch_id, status, fields)
        session.commit()
        return _get(session, batch_id)


def transition_in(session: Session, batch_id: str, status: Status, **fields: Any) -> bool:
    """The same guarded write inside the caller's transaction (e.g. with the result file rows)."""
    return _apply(session, batch_id, status, fields)


def request_cancel(session: Session, batch_id: str) -> BatchRecord:
    """Record a cancel request (API, CLI, Temporal UI): `cancelling` at once while the batch is still
    validating or running; a repeat is fine; otherwise 400 (never 409: SDKs retry 409)."""
    _apply(session, batch_id, Status.CANCELLING, {}, with_status={"cancel_requested": True})
    session.commit()
    row = _get(session, batch_id)
    session.refresh(row)
    if row.status != Status.CANCELLING:
        raise bad_request(f"Cannot cancel a batch with status '{row.status}'.", param="batch_id")
    return row


def load(engine: Engine, batch_id: str) -> BatchRecord:
    with Session(engine, expire_on_commit=False) as session:
        return _get(session, batch_id)


def _get(session: Session, batch_id: str) -> BatchRecord:
    row = session.get(BatchRecord, batch_id)
    if row is None:
        raise LookupError(f"batch {batch_id} not found")
    return row
