"""Questions about a batch's stored lines (blocking)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from batchway.storage.models import RequestLog


def stored_custom_ids(engine: Engine, batch_id: str) -> set[str]:
    with Session(engine) as session:
        query = select(RequestLog.custom_id).where(
            RequestLog.batch_id == batch_id, RequestLog.source == "batch"
        )
        return set(session.exec(query).all())
