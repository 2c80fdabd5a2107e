"""Key checks and owner scoping shared by every simulated API."""

import hashlib
import hmac

from starlette.requests import Request


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def key_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def owner_key(token: str) -> str:
    """Objects are scoped by this hash of the caller's key, so no key is ever written to disk."""
    return hashlib.sha256(token.encode()).hexdigest()


def mask_key(key: str) -> str:
    return key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "*" * len(key)
