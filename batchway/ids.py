"""Identifier formats, shaped like OpenAI's so clients that sniff prefixes keep working."""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid

_BASE62 = string.ascii_letters + string.digits


def _base62(n: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(n))


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex}"


def new_file_id() -> str:
    return f"file-{_base62(24)}"


def new_request_line_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def new_org_id() -> str:
    return f"org_{uuid.uuid4().hex[:24]}"


def new_api_key() -> str:
    return f"bw-{_base62(40)}"


def derived_file_id(seed: str) -> str:
    """A file id that is the same every time for `seed`, so a retried step rewrites, not duplicates."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(24):
        number, index = divmod(number, len(_BASE62))
        chars.append(_BASE62[index])
    return "file-" + "".join(chars)
