"""Reading a JSON request body by hand, after authentication: at most `limit` bytes (a chunked body is
cut off there), every string checked for what cannot be stored or rendered back."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request

from batchway.errors import APIError, bad_request


async def read_json(request: Request, limit: int) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = _lenient(raw)  # e.g. an escaped lone surrogate: find which field holds it
    check_strings(value)
    return value


def _lenient(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The request body is not valid JSON.") from None


def check_strings(value: Any, path: str = "") -> None:
    """400 naming the field of the first string (or key) with a NUL or a lone surrogate."""
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            field = path or "body"
            raise bad_request(f"'{field}' contains a NUL character or an unpaired surrogate.", param=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key or not _encodable(key):  # never echo the key itself: it cannot be rendered
                where = path or "body"
                raise bad_request(
                    f"A key in '{where}' contains a NUL character or an unpaired surrogate.", param=where
                )
            check_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_strings(item, f"{path}[{index}]")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
