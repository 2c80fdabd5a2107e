"""Dashboard sign-in sessions: a signed cookie, checked against the API key it was made with.

The cookie holds the org id, the key's row id and a fingerprint of its hash, and a random nonce (the
CSRF token is derived from it), signed with `itsdangerous` (the signer Starlette's SessionMiddleware
uses; here HMAC-SHA256 over a timestamped payload). It is HttpOnly, SameSite=Lax (so a link shared in a chat
still opens a signed-in view, while no other site can make the browser POST with it), scoped to
`/dashboard`, Secure when the request came over https, and expires after `SESSION_SECONDS`: the browser
drops it (Max-Age) and the server refuses an older signature whatever the browser sends.

A session is only as good as its key: revoking the key ends every session made with it within
`KEY_RECHECK_SECONDS` (each process asks the database again at most that often per key).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from batchway.storage.models import ApiKey, Org

SESSION_COOKIE = "batchway_session"
COOKIE_PATH = "/dashboard"
SESSION_SECONDS = 8 * 3600
KEY_RECHECK_SECONDS = 5.0
FINGERPRINT_CHARS = 16
MAX_REMEMBERED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class DashboardSession:
    org_id: str
    key_id: int
    key_fingerprint: str  # the first characters of the key's sha256: a key row reused by id cannot match
    nonce: str  # per sign-in; the CSRF token is derived from it
    expires_at: int


def key_fingerprint(key: ApiKey) -> str:
    return key.key_hash[:FINGERPRINT_CHARS]


class SessionSigner:
    def __init__(self, session_secrets: list[str]) -> None:
        # itsdangerous lists keys oldest to newest and signs with the last; ours put the signing one first.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(session_secrets)),
            salt="batchway.dashboard.session",
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def issue(self, key: ApiKey) -> str:
        payload = {"o": key.org_id, "k": key.id, "f": key_fingerprint(key), "n": secrets.token_urlsafe(16)}
        return self._serializer.dumps(payload)

    def read(self, value: str | None) -> DashboardSession | None:
        """The session a cookie value holds, or None if it is missing, tampered with or expired."""
        if not value:
            return None
        try:
            payload, signed_at = self._serializer.loads(value, max_age=SESSION_SECONDS, return_timestamp=True)
            return DashboardSession(
                org_id=str(payload["o"]),
                key_id=int(payload["k"]),
                key_fingerprint=str(payload["f"]),
                nonce=str(payload["n"]),
                expires_at=int(signed_at.timestamp()) + SESSION_SECONDS,
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            return None


class LiveKeys:
    """Whether a session's key is still live (not revoked, still its org's), remembered for
    `KEY_RECHECK_SECONDS` per session key. Blocking: call from the thread pool."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._checked: dict[tuple[int, str, str], tuple[float, Org | None]] = {}
        self._lock = threading.Lock()

    def org_for(self, session: DashboardSession) -> Org | None:
        token = (session.key_id, session.key_fingerprint, session.org_id)
        remembered = self._checked.get(token)
        if remembered is not None and time.monotonic() - remembered[0] < KEY_RECHECK_SECONDS:
            return remembered[1]
        org = self._lookup(session)
        with self._lock:
            if len(self._checked) >= MAX_REMEMBERED_KEYS:
                self._checked.clear()
            self._checked[token] = (time.monotonic(), org)
        return org

    def _lookup(self, session: DashboardSession) -> Org | None:
        with Session(self.engine, expire_on_commit=False) as db:
            key = db.get(ApiKey, session.key_id)
            live = (
                key is not None
                and key.revoked_at is None
                and key.org_id == session.org_id
                and key_fingerprint(key) == session.key_fingerprint
            )
            return db.get(Org, session.org_id) if live else None


def is_https(request: Request) -> bool:
    """Over https, directly or behind a proxy that says so (trusting the header can only add `Secure`)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """Every dashboard cookie: HttpOnly, SameSite=Lax, scoped to the dashboard, Secure over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request))


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    set_cookie(response, request, SESSION_COOKIE, value, SESSION_SECONDS)


def clear_session_cookie(response: Response, request: Request) -> None:
    clear_cookie(response, request, SESSION_COOKIE)
