"""Cursor paging shared by `/v1/files` and `/v1/batches`: order by (created_ns, id), page after an id."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from batchway.errors import APIError, bad_request
from batchway.ids import looks_like_id

Row = TypeVar("Row", bound=Any)


def no_such_anchor(after: str) -> APIError:
    return bad_request(f"No such object to page after: {after}", param="after")


def page(
    session: Session,
    model: type[Row],
    *,
    org_id: str,
    after: str | None,
    limit: int,
    descending: bool,
    filters: tuple[Any, ...] = (),
    options: tuple[Any, ...] = (),
) -> tuple[list[Row], bool]:
    """One page of `model` rows of an org and whether more follow (`options`: e.g. columns to defer)."""
    query = select(model).where(model.org_id == org_id, *filters).options(*options)
    if after is not None:
        anchor = session.get(model, after) if looks_like_id(after) else None
        if anchor is None or anchor.org_id != org_id:
            raise no_such_anchor(after)
        if descending:
            query = query.where(
                or_(
                    model.created_ns < anchor.created_ns,
                    and_(model.created_ns == anchor.created_ns, model.id < anchor.id),
                )
            )
        else:
            query = query.where(
                or_(
                    model.created_ns > anchor.created_ns,
                    and_(model.created_ns == anchor.created_ns, model.id > anchor.id),
                )
            )
    if descending:
        query = query.order_by(model.created_ns.desc(), model.id.desc())
    else:
        query = query.order_by(model.created_ns.asc(), model.id.asc())
    rows = list(session.exec(query.limit(limit + 1)).all())
    return rows[:limit], len(rows) > limit
