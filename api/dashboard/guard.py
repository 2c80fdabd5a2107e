"""The route class of every dashboard route: what each page and action gets without asking.

- Every POST carries a form no larger than `MAX_FORM_BYTES` with a valid CSRF token, or is refused (403)
  before the route runs.
- No live session: a redirect to the login page, which comes back here afterwards.
- Errors are pages, not JSON: the domain's `APIError` (another org's id is a 404 exactly like a missing
  one) and invalid parameters render the error page with their status.
- Every response carries the security headers (CSP, no-store, nosniff, no framing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.dashboard.csrf import FIELD, login_nonce
from api.dashboard.rendering import error_page, secure
from api.dashboard.state import LOGIN_PURPOSE, SESSION_PURPOSE, SignInRequired, dashboard_state, session_of
from batchway.errors import APIError

MAX_FORM_BYTES = 16 * 1024
LOGIN_PATH = "/dashboard/login"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if (
        target
        and (target == "/dashboard" or target.startswith(("/dashboard/", "/dashboard?")))
        and not target.startswith("/dashboard/login")
        and not any(char in target for char in "\\\r\n")
    ):
        return target
    return "/dashboard/batches"


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = LOGIN_PATH if request.method != "GET" else f"{LOGIN_PATH}?next={quote(safe_next(here), safe='')}"
    return RedirectResponse(target, status_code=303)


async def csrf_problem(request: Request) -> str | None:
    """Why this POST must be refused, or None. The form is parsed (and cached on the request) here."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        return "The form is missing or larger than a dashboard form can be."
    try:
        form = await request.form(max_files=0, max_fields=32)
    except Exception:  # a malformed body is refused like a missing token
        return "The form could not be read."
    token = form.get(FIELD)
    state = dashboard_state(request)
    session = session_of(request)
    if session is not None and state.csrf.valid(SESSION_PURPOSE, session.nonce, token):
        return None
    if state.csrf.valid(LOGIN_PURPOSE, login_nonce(request), token):
        return None
    return "This form expired or did not come from this dashboard. Go back, reload the page and try again."


class DashboardRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if request.method == "POST" and (problem := await csrf_problem(request)):
                return secure(error_page(request, 403, problem))
            try:
                response = await handle(request)
            except SignInRequired:
                response = login_redirect(request)
            except APIError as error:
                response = error_page(
                    request, error.status_code, _page_message(error), viewer=_viewer(request)
                )
            except RequestValidationError:
                response = error_page(
                    request, 400, "A parameter in the address is not valid.", viewer=_viewer(request)
                )
            return secure(response)

        return guarded


NOT_FOUND = re.compile(r"No such (\w+) object: (.*)")


def _page_message(error: APIError) -> str:
    """The domain's message, in words for people ("No such Batch object: x" is for SDKs). Another org's
    id reads exactly like one that never existed."""
    if error.status_code == 404 and (match := NOT_FOUND.fullmatch(error.message)):
        return f"There is no {match[1].lower()} {match[2]} in your organization."
    return error.message


def _viewer(request: Request) -> Any:
    return getattr(request.state, "dashboard_viewer", None)
