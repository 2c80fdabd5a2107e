"""What batchway keeps of the headers a client sent with a batch create: everything but credentials,
bounded in size. Every line of the batch is logged with them and with the session the client named."""

from __future__ import annotations

from collections.abc import Iterable

SESSION_HEADER = "batchway-session-id"
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
CREDENTIAL_WORDS = ("key", "token", "secret", "password", "auth")
MAX_HEADERS_BYTES = 4096
MAX_SESSION_ID = 256


def is_credential(name: str) -> bool:
    lowered = name.lower()
    return lowered in CREDENTIAL_HEADERS or any(word in lowered for word in CREDENTIAL_WORDS)


def kept_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers to keep, credentials removed; once past the size bound the rest are dropped."""
    kept: dict[str, str] = {}
    size = 0
    for name, value in headers:
        lowered = name.lower()
        if is_credential(lowered) or lowered in kept:
            continue
        size += len(lowered) + len(value)
        if size > MAX_HEADERS_BYTES:
            break
        kept[lowered] = value
    return kept


def session_id(headers: dict[str, str]) -> str | None:
    value = headers.get(SESSION_HEADER, "").strip()
    return value[:MAX_SESSION_ID] or None
