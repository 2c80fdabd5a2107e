"""Request dependencies as Annotated aliases: the app state, a DB session, the caller's org."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from api.state import AppState
from batchway import tenancy
from batchway.models import Org


def get_state(request: Request) -> AppState:
    return request.app.state.batchway


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with Session(state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_org(request: Request, session: SessionDep) -> Org:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    return tenancy.org_for_key(session, key.strip() if scheme.lower() == "bearer" else None)


OrgDep = Annotated[Org, Depends(get_org)]
