"""Request dependencies as Annotated aliases: the app state, a DB session, the caller's org."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from api.state import AppState
from batchway import tenancy
from batchway.storage.models import Org


def get_state(request: Request) -> AppState:
    return request.app.state.batchway


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with Session(state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# Key -> org lookups are a third of a cheap GET's cost; remember good keys briefly (a key's org never
# changes, so the only staleness is a deleted key working for up to this long).
KEY_CACHE_SECONDS = 30.0
_known_keys: dict[str, tuple[float, Org]] = {}


def get_org(request: Request, state: StateDep) -> Org:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    cached = _known_keys.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    with Session(state.engine, expire_on_commit=False) as session:
        org = tenancy.org_for_key(session, key or None)
    _known_keys[key] = (time.monotonic() + KEY_CACHE_SECONDS, org)
    return org


OrgDep = Annotated[Org, Depends(get_org)]
