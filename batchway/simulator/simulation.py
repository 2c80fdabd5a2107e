"""What every simulated answer shares: deterministic ids, words as tokens, and trigger phrases.

Triggers are plain strings anywhere in a request body (any nested string value):
`SIMULATE_ERROR_<4xx|5xx>` makes the request fail with that HTTP status; each API may know more.
"""

import hashlib
import re
from collections.abc import Iterator
from typing import Any

_SIMULATE_ERROR = re.compile(r"SIMULATE_ERROR_([45]\d\d)")


def det_hex(*parts: object, length: int = 32) -> str:
    """Deterministic hex id, so re-running the same batch input yields the same result ids."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


def words(text: str) -> int:
    """The simulator's token count: whitespace-separated words."""
    return len(text.split())


def iter_strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, depth first in document order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def find_error_trigger(body: Any) -> int | None:
    """The status of the first `SIMULATE_ERROR_<status>` in any string of the body."""
    for text in iter_strings(body):
        match = _SIMULATE_ERROR.search(text)
        if match:
            return int(match.group(1))
    return None


def has_trigger(body: Any, trigger: str) -> bool:
    return any(trigger in text for text in iter_strings(body))
