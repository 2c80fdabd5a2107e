"""What every dashboard page handler shares: a database session and the context every template gets."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.requests import Request

from api.dashboard.state import Viewer, core_state

REFRESH_MS = 2000  # how often a page with a running batch refreshes its live parts


def db_session(request: Request) -> Session:
    return Session(core_state(request).engine, expire_on_commit=False)


def page_context(viewer: Viewer | None, nav: str | None, **context: Any) -> dict[str, Any]:
    """`viewer`: the signed-in org (None on the login page); `nav`: the highlighted tab."""
    return {"viewer": viewer, "nav": nav, "refresh_ms": REFRESH_MS, **context}
