"""Request dependencies as Annotated aliases: the app state, a DB session, the caller's org."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from api.state import AppState
from batchway.errors import bad_request, unauthorized
from batchway.storage.models import Org


async def get_state(request: Request) -> AppState:  # async: no thread-pool hop for a lookup
    return request.app.state.batchway


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with Session(state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def org_of(request: Request) -> Org:
    """The caller's org: `EdgeMiddleware` authenticated every `/v1/` request before its body was read."""
    org = request.scope.get("state", {}).get("org")
    if org is None:
        raise unauthorized(
            "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'."
        )
    return org


async def get_org(request: Request) -> Org:
    return org_of(request)


OrgDep = Annotated[Org, Depends(get_org)]


def caller(request: Request) -> tuple[AppState, Org]:
    """The app state and the caller's org, for the routes clients poll: called directly, not declared as
    dependencies, which FastAPI solves at a cost that was a fifth of a cheap GET (bench/read_path.py)."""
    return request.app.state.batchway, org_of(request)


def int_query(query: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter read by hand on a polled route, refused as FastAPI would refuse it."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        problem = "a valid integer, unable to parse string as an integer"
    else:
        if low <= value <= high:
            return value
        problem = f"greater than or equal to {low}" if value < low else f"less than or equal to {high}"
    raise bad_request(f"Invalid value for '{name}': Input should be {problem}.", param=name)
