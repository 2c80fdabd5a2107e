"""What the dashboard keeps per process (the session signer, CSRF tokens, the live-key check), built on
first use from the API's own state, and who is signed in on a request."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.dashboard.csrf import CsrfTokens
from api.dashboard.session import SESSION_COOKIE, DashboardSession, LiveKeys, SessionSigner
from api.dashboard.session_secret import session_secrets
from api.state import AppState
from batchway.storage.models import Org

SESSION_PURPOSE = "session"
LOGIN_PURPOSE = "login"
_build_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class DashboardState:
    signer: SessionSigner
    csrf: CsrfTokens
    live_keys: LiveKeys


def core_state(request: Request) -> AppState:
    return request.app.state.batchway


def dashboard_state(request: Request) -> DashboardState:
    app_state = request.app.state
    state: DashboardState | None = getattr(app_state, "dashboard", None)
    if state is None:
        with _build_lock:  # once per process: the key file is read (or created) here
            state = getattr(app_state, "dashboard", None)
            if state is None:
                core = core_state(request)
                keys = session_secrets(core.settings)
                state = DashboardState(SessionSigner(keys), CsrfTokens(keys), LiveKeys(core.engine))
                app_state.dashboard = state
    return state


class SignInRequired(Exception):
    """No live session: the route class sends the browser to the login page."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in org, its session, and the CSRF token its forms carry."""

    org: Org
    session: DashboardSession
    csrf_token: str


def session_of(request: Request) -> DashboardSession | None:
    return dashboard_state(request).signer.read(request.cookies.get(SESSION_COOKIE))


def current_viewer(request: Request) -> Viewer:
    """The signed-in org (a sync dependency: the key check may ask the database, in the thread pool)."""
    state = dashboard_state(request)
    session = session_of(request)
    org = state.live_keys.org_for(session) if session is not None else None
    if session is None or org is None:
        raise SignInRequired()
    viewer = Viewer(org, session, state.csrf.token(SESSION_PURPOSE, session.nonce))
    request.state.dashboard_viewer = viewer  # error pages keep the header (and its sign-out form)
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
