"""Cheap refusals before any route runs (a pure ASGI middleware, so nothing is parsed or spooled first):

- a query string or path with a NUL or bytes that are not UTF-8 (a database refuses to store NUL, and a
  lone surrogate cannot be rendered back): 400 naming the parameter;
- `/v1/...` without a valid API key: 401, before a single byte of the body is read (the org is handed to
  the route in `request.state.org`);
- a JSON body declared larger than `max_json_body_bytes`: 413 (chunked bodies are cut off by the route's
  reader at the same limit).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import bearer_key
from batchway.errors import APIError

PUBLIC_PREFIXES = ("/v1/",)


def _clean(raw: bytes) -> bool:
    decoded = unquote_to_bytes(raw)
    if b"\x00" in decoded:
        return False
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _query_problem(query_string: bytes) -> str | None:
    for pair in query_string.split(b"&"):
        name, _, value = pair.partition(b"=")
        if not _clean(name.replace(b"+", b" ")) or not _clean(value.replace(b"+", b" ")):
            return unquote_to_bytes(name).decode("utf-8", "replace") or "query"
    return None


_WANTED = frozenset((b"authorization", b"content-length", b"content-type"))


def _wanted_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The few headers the checks read (ASGI servers send names lower-cased), not a dict of them all."""
    return {name: value.decode("latin-1") for name, value in raw if name in _WANTED}


async def _send_error(send: Send, error: APIError) -> None:
    body = orjson.dumps(error.envelope())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._check(scope)
        except APIError as error:
            await _send_error(send, error)
            return
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope) -> None:
        if not _clean(scope.get("raw_path") or scope["path"].encode()):
            raise APIError(400, "The request path contains a NUL character or bytes that are not UTF-8.")
        if param := _query_problem(scope.get("query_string", b"")):
            raise APIError(
                400,
                f"The query parameter '{param}' contains a NUL character or bytes that are not UTF-8.",
                param=param,
            )
        if not scope["path"].startswith(PUBLIC_PREFIXES):
            return
        headers = _wanted_headers(scope["headers"])
        state = scope["app"].state.batchway
        org = await state.keys.org_for(bearer_key(headers.get(b"authorization", "")))
        scope.setdefault("state", {})["org"] = org
        declared = headers.get(b"content-length", "")
        is_form = headers.get(b"content-type", "").startswith("multipart/form-data")
        if not is_form and declared.isdigit() and int(declared) > state.settings.max_json_body_bytes:
            raise APIError(
                413,
                f"The request body is larger than {state.settings.max_json_body_bytes} bytes.",
                code="request_too_large",
            )
