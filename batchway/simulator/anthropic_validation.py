"""What `POST /v1/messages/batches` rejects outright (400 `invalid_request_error`), contract §3.2.

Messages follow Anthropic's validation style: `<location>: <problem>`. Problems Anthropic only
finds when it runs a request (see `anthropic_messages`) are not checked here.
"""

import re
from typing import Any

from batchway.simulator.anthropic_errors import invalid_request

CUSTOM_ID_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
_CUSTOM_ID = re.compile(CUSTOM_ID_PATTERN)


def checked_requests(body: Any, max_requests: int) -> list[tuple[str, dict[str, Any]]]:
    """(custom_id, params) of every request in a create body, or AnthropicError for the first problem."""
    if not isinstance(body, dict):
        raise invalid_request("Input should be a valid dictionary")
    requests = body.get("requests")
    if "requests" not in body:
        raise invalid_request("requests: Field required")
    if not isinstance(requests, list):
        raise invalid_request("requests: Input should be a valid list")
    if not requests:
        raise invalid_request("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > max_requests:
        raise invalid_request(
            f"requests: List should have at most {max_requests} items after validation, not {len(requests)}"
        )
    checked = []
    seen: set[str] = set()
    for index, request in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(request, dict):
            raise invalid_request(f"{where}: Input should be a valid dictionary")
        for key in request:
            if key not in ("custom_id", "params"):
                raise invalid_request(f"{where}.{key}: Extra inputs are not permitted")
        custom_id = _custom_id(request, where)
        if custom_id in seen:
            raise invalid_request(
                f"{where}.custom_id: Duplicate custom_id {custom_id!r}; custom_id values must be unique "
                "within a batch"
            )
        seen.add(custom_id)
        checked.append((custom_id, _params(request, where)))
    return checked


def _custom_id(request: dict[str, Any], where: str) -> str:
    if "custom_id" not in request:
        raise invalid_request(f"{where}.custom_id: Field required")
    custom_id = request["custom_id"]
    if not isinstance(custom_id, str):
        raise invalid_request(f"{where}.custom_id: Input should be a valid string")
    if not _CUSTOM_ID.fullmatch(custom_id):
        raise invalid_request(f"{where}.custom_id: String should match pattern '{CUSTOM_ID_PATTERN}'")
    return custom_id


def _params(request: dict[str, Any], where: str) -> dict[str, Any]:
    where = f"{where}.params"
    params = request.get("params")
    if params is None:
        raise invalid_request(f"{where}: Field required")
    if not isinstance(params, dict):
        raise invalid_request(f"{where}: Input should be a valid dictionary")
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            raise invalid_request(f"{where}.{name}: Field required")
    model, max_tokens, messages = params["model"], params["max_tokens"], params["messages"]
    if not isinstance(model, str) or not model:
        raise invalid_request(f"{where}.model: Input should be a non-empty string")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise invalid_request(f"{where}.max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise invalid_request(f"{where}.max_tokens: Input should be greater than or equal to 1")
    if not isinstance(messages, list):
        raise invalid_request(f"{where}.messages: Input should be a valid list")
    if not messages:
        raise invalid_request(f"{where}.messages: List should have at least 1 item after validation, not 0")
    if params.get("stream"):
        raise invalid_request(f"{where}.stream: streaming is not supported in the Message Batches API")
    return params
