"""What the OpenAI Files and Batches routes share: bearer auth, cursor pages, JSON bodies."""

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import Request

from batchway.simulator.auth import bearer_token, key_matches, mask_key, owner_key
from batchway.simulator.config import SimulatorConfig
from batchway.simulator.errors import OpenAIError, bad_request


def openai_caller(config: SimulatorConfig) -> Callable[[Request], str]:
    """A dependency returning the caller's owner key (scopes objects like an OpenAI project)."""

    def caller(request: Request) -> str:
        token = bearer_token(request)
        if config.api_key is not None:
            if not token:
                raise OpenAIError(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
            if not key_matches(config.api_key, token):
                raise OpenAIError(
                    401, f"Incorrect API key provided: {mask_key(token)}.", code="invalid_api_key"
                )
        return owner_key(token)

    return caller


def cursor_seq(seq_by_id: dict[str, int], after: str | None) -> int | None:
    """The sequence number of an `after` cursor; deleted objects still count."""
    if after is None:
        return None
    if after not in seq_by_id:
        raise bad_request(f"Invalid 'after': no object with id {after!r}.", "after")
    return seq_by_id[after]


def paginate(items: list[Any], after_seq: int | None, descending: bool, limit: int) -> dict[str, Any]:
    """One cursor page; `items` are already sorted and filtered. `has_more` is always present."""
    if after_seq is not None:
        items = [it for it in items if (it.seq < after_seq if descending else it.seq > after_seq)]
    page = items[:limit]
    return {
        "object": "list",
        "data": [item.to_json() for item in page],
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
        "has_more": len(items) > limit,
    }


async def read_json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise bad_request("You must provide a JSON body in your request.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly.)"
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def parse_expires_after(anchor: Any, seconds: Any, param: str) -> float | None:
    """Validate an `expires_after`-style policy; returns the TTL in seconds, or None if absent."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise bad_request(f"Invalid '{param}.anchor': the only supported value is 'created_at'.", param)
    try:
        ttl = int(seconds)
    except (TypeError, ValueError):
        ttl = -1
    if isinstance(seconds, bool) or not 3600 <= ttl <= 2_592_000:
        raise bad_request(f"Invalid '{param}.seconds': expected an integer between 3600 and 2592000.", param)
    return float(ttl)
