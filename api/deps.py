"""Request dependencies as Annotated aliases: the app state, a DB session, the caller's org."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from api.state import AppState
from batchway.errors import unauthorized
from batchway.storage.models import Org


async def get_state(request: Request) -> AppState:  # async: no thread-pool hop for a lookup
    return request.app.state.batchway


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with Session(state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_org(request: Request) -> Org:
    """The caller's org: `EdgeMiddleware` authenticated every `/v1/` request before its body was read."""
    org = getattr(request.state, "org", None)
    if org is None:
        raise unauthorized(
            "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'."
        )
    return org


OrgDep = Annotated[Org, Depends(get_org)]
