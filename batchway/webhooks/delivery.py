"""One delivery attempt of a webhook event: POST it signed, and say whether it is worth retrying.

Retrying and backoff are not done here: the caller (a Temporal activity) turns a retryable failure into
an activity failure and Temporal's retry policy schedules the next attempt.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
from pydantic import BaseModel

from batchway.webhooks.signing import sign

DEFAULT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "batchway-webhooks"
# Statuses below 500 worth another attempt: the receiver timed out, or asks us to slow down.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
GONE = 410
# How much of a failed answer's body goes into the error (for the delivery log), in bytes.
ERROR_BODY_EXCERPT_BYTES = 200


class DeliveryResult(BaseModel):
    status_code: int | None  # None: no HTTP answer (refused URL, timeout, connection error)
    ok: bool
    retryable: bool
    error: str | None
    duration_ms: int


def event_body(event: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed (compact JSON, UTF-8)."""
    return orjson.dumps(event)


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    event: dict[str, Any],
    *,
    now: int,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> DeliveryResult:
    """POST `event` to `url`, signed with `secret` at `now` (unix seconds: the time of this attempt).

    Never raises for a bad URL or an HTTP-level problem: the result says what happened. `client` should
    carry no credentials of its own (its default headers would be sent to the receiver)."""
    started = time.monotonic()

    def result(status_code: int | None, *, ok: bool, retryable: bool, error: str | None) -> DeliveryResult:
        duration_ms = round((time.monotonic() - started) * 1000)
        return DeliveryResult(
            status_code=status_code, ok=ok, retryable=retryable, error=error, duration_ms=duration_ms
        )

    refusal = unsupported_url_reason(url)
    if refusal is not None:
        return result(None, ok=False, retryable=False, error=refusal)

    body = event_body(event)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **sign(secret, msg_id=event["id"], timestamp=now, body=body),
    }
    try:
        # httpx's timeout bounds each phase (connect, write, read); this bounds the whole attempt.
        async with asyncio.timeout(timeout_seconds):
            # Redirects are not followed: a signed event must not be replayed to a host nobody set.
            request = client.stream(
                "POST", url, content=body, headers=headers, timeout=timeout_seconds, follow_redirects=False
            )
            async with request as response:
                status_code = response.status_code
                excerpt = "" if response.is_success else await _body_excerpt(response)
    except (TimeoutError, httpx.TimeoutException):
        return result(None, ok=False, retryable=True, error=f"no answer within {timeout_seconds:g} s")
    except httpx.TransportError as exc:  # refused, reset, dropped mid-answer, DNS, TLS...
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return result(None, ok=False, retryable=True, error=detail)
    except httpx.InvalidURL as exc:
        return result(None, ok=False, retryable=False, error=f"invalid webhook URL: {exc}")

    if 200 <= status_code < 300:
        return result(status_code, ok=True, retryable=False, error=None)
    return result(
        status_code,
        ok=False,
        retryable=is_retryable_status(status_code),
        error=_status_error(status_code, excerpt),
    )


def is_retryable_status(status_code: int) -> bool:
    """Whether another attempt may succeed after a non-2xx answer. 410 Gone means "stop sending"; other
    4xx (and 3xx, which we do not follow) mean the request or URL is wrong and will stay wrong."""
    return status_code >= 500 or status_code in RETRYABLE_CLIENT_ERRORS


def unsupported_url_reason(url: str) -> str | None:
    """Why `url` cannot receive webhooks, or None if it can (an absolute http(s) URL with a host)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"invalid webhook URL: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"webhook URLs must be http:// or https://, not {url!r}"
    if not parsed.host:
        return f"webhook URL has no host: {url!r}"
    return None


async def _body_excerpt(response: httpx.Response) -> str:
    # Read only the start: the body is for the delivery log, and a receiver may answer with a lot.
    # Best effort: the status already decided the outcome, a body cut short must not change it.
    received = b""
    try:
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) >= ERROR_BODY_EXCERPT_BYTES:
                break
    except httpx.TransportError:
        pass
    return received[:ERROR_BODY_EXCERPT_BYTES].decode("utf-8", errors="replace").strip()


def _status_error(status_code: int, excerpt: str) -> str:
    reason = f"HTTP {status_code}"
    if status_code == GONE:
        reason += " Gone: the receiver asks for no more deliveries"
    elif 300 <= status_code < 400:
        reason += ": redirects are not followed, set the final URL"
    return f"{reason}: {excerpt}" if excerpt else reason
