"""Identifier formats, shaped like OpenAI's so clients that sniff prefixes keep working."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import uuid

_BASE62 = string.ascii_letters + string.digits
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def looks_like_id(value: str) -> bool:
    """Whether `value` could be one of our ids; anything else is not looked up at all (a NUL byte in a
    query parameter would make PostgreSQL refuse the statement)."""
    return _ID_PATTERN.fullmatch(value) is not None


def _base62(n: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(n))


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex}"


def new_file_id() -> str:
    return f"file-{_base62(24)}"


def result_line_id(batch_id: str, custom_id: str) -> str:
    """The `id` of a line in a batch's output or error file: the same on every retry of the step that
    writes it, so a rewritten file is byte-identical."""
    return "batch_req_" + hashlib.sha256(f"{batch_id}\x00{custom_id}".encode()).hexdigest()[:32]


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
