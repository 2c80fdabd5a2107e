"""CSRF tokens for every dashboard form that changes something.

A token is an HMAC of the session's nonce under the session secret, so it needs no server-side storage,
differs per sign-in and dies with the session. Before sign-in there is no session: the login form's
token is bound the same way to a random nonce in a short-lived `batchway_login` cookie (so another site
cannot sign a browser into its own org either). SameSite=Lax cookies already keep other sites' POSTs
unauthenticated; the token is the check that does not depend on the browser.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from api.dashboard.session import clear_cookie, set_cookie

FIELD = "csrf_token"
LOGIN_COOKIE = "batchway_login"
LOGIN_COOKIE_SECONDS = 3600


class CsrfTokens:
    def __init__(self, session_secrets: list[str]) -> None:
        self._keys = [secret.encode() for secret in session_secrets]  # the first one mints tokens

    @staticmethod
    def _mac(key: bytes, purpose: str, nonce: str) -> str:
        return hmac.new(key, f"batchway.csrf\x00{purpose}\x00{nonce}".encode(), hashlib.sha256).hexdigest()

    def token(self, purpose: str, nonce: str) -> str:
        return self._mac(self._keys[0], purpose, nonce)

    def valid(self, purpose: str, nonce: str | None, presented: object) -> bool:
        if not nonce or not isinstance(presented, str) or not presented:
            return False
        return any(hmac.compare_digest(self._mac(key, purpose, nonce), presented) for key in self._keys)


def login_nonce(request: Request) -> str | None:
    return request.cookies.get(LOGIN_COOKIE) or None


def new_login_nonce() -> str:
    return secrets.token_urlsafe(16)


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_COOKIE_SECONDS)


def clear_login_cookie(response: Response, request: Request) -> None:
    clear_cookie(response, request, LOGIN_COOKIE)
