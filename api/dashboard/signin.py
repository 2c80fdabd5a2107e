"""Signing in and out of the dashboard with one of the org's API keys."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.dashboard import csrf
from api.dashboard.guard import DashboardRoute, safe_next
from api.dashboard.pages import db_session, page_context
from api.dashboard.rendering import render
from api.dashboard.session import clear_session_cookie, set_session_cookie
from api.dashboard.state import LOGIN_PURPOSE, ViewerDep, dashboard_state, session_of
from batchway import tenancy
from batchway.errors import APIError
from batchway.storage.models import ApiKey

router = APIRouter(route_class=DashboardRoute)


def _login_page(request: Request, *, next_url: str, error: str | None, notice: str | None) -> Response:
    nonce = csrf.login_nonce(request) or csrf.new_login_nonce()
    token = dashboard_state(request).csrf.token(LOGIN_PURPOSE, nonce)
    response = render(
        request,
        "login.html",
        page_context(None, None, csrf_token=token, next_url=next_url, error=error, notice=notice),
        status_code=401 if error else 200,
    )
    csrf.set_login_cookie(response, request, nonce)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None, signed_out: str | None = None) -> Response:
    session = session_of(request)
    if session is not None and dashboard_state(request).live_keys.org_for(session) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    notice = "You are signed out." if signed_out else None
    return _login_page(request, next_url=safe_next(next), error=None, notice=notice)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()  # parsed (and its CSRF token checked) by the route class
    api_key = str(form.get("api_key") or "").strip()
    next_url = safe_next(str(form.get("next") or ""))

    def key_row() -> ApiKey | None:
        with db_session(request) as session:
            try:
                tenancy.org_for_key(session, api_key)
            except APIError:
                return None
            return session.exec(select(ApiKey).where(ApiKey.key_hash == tenancy.hash_key(api_key))).first()

    key = await run_in_threadpool(key_row) if api_key else None
    if key is None:
        error = (
            "Enter an API key of your organization."
            if not api_key
            else "That key is not valid or was revoked."
        )
        return _login_page(request, next_url=next_url, error=error, notice=None)
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, request, dashboard_state(request).signer.issue(key))
    csrf.clear_login_cookie(response, request)
    return response


@router.get("/logout")
def logout_form(request: Request, viewer: ViewerDep) -> Response:
    return render(request, "logout.html", page_context(viewer, None))


@router.post("/logout")
def logout(request: Request) -> Response:
    # No live session needed: a session whose key was revoked can still be cleared.
    response = RedirectResponse("/dashboard/login?signed_out=1", status_code=303)
    clear_session_cookie(response, request)
    return response
