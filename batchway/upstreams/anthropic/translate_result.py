"""Anthropic Message Batch result → OpenAI `chat.completion` body and `ResultLine` (contract §4.2, §4.3).

Pure: no I/O. Input that is not the documented shape raises `UnreadableResult` and nothing else, so
the adapter can turn it into an error line for that custom_id.

Decisions where the contract leaves a choice:
- `thinking`/`redacted_thinking` blocks are dropped (no non-standard `reasoning_content`), and so are
  block types batchway never asks for (server-tool blocks, future types). The thinking tokens still
  show up in `usage.completion_tokens_details.reasoning_tokens`.
- Text blocks are concatenated with nothing in between. Anthropic splits one answer into several text
  blocks around citations, and the citations themselves are dropped.
- An unknown `stop_reason` string reads as `stop`, so a new Anthropic reason does not make every answer
  unreadable. A missing or non-string `stop_reason` is unreadable.
- An `errored` result whose error type is unknown gets status 500. `request_id` is the error's
  `request_id` when present, otherwise None (the output writer may fill one in).
- The error is read double-nested as the SDK types it (`error.error.type`). A single-nested
  `error.type`/`error.message` is accepted too.
"""

from __future__ import annotations

from typing import Any

import orjson

from batchway.upstreams.result_line import BATCH_CANCELLED, BATCH_EXPIRED, ResultLine, UnreadableResult

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
UNKNOWN_STOP_REASON_FINISH = "stop"

# Anthropic error type → HTTP status (§3.4; the conflict types are in anthropic 2.14's `ErrorType`,
# with the statuses its exception table gives 409 and 412).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "memory_path_conflict_error": 409,
    "memory_precondition_failed_error": 412,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
UNKNOWN_ERROR_STATUS = 500

UNEXECUTED_CODES = {"canceled": BATCH_CANCELLED, "expired": BATCH_EXPIRED}


def to_openai_completion(message: dict[str, Any], *, created: int) -> dict[str, Any]:
    """The OpenAI `chat.completion` body for the Anthropic Message of a `succeeded` result."""
    if not isinstance(message, dict):
        raise UnreadableResult("the message is not an object")
    message_id, model = _string(message, "id"), _string(message, "model")
    content, tool_calls = _content_and_tool_calls(message.get("content"))
    chat_message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        chat_message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{message_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": chat_message,
                "logprobs": None,
                "finish_reason": _finish_reason(message.get("stop_reason")),
            }
        ],
        "usage": _usage(message.get("usage")),
    }


def result_line_from_anthropic(custom_id: str, result: Any, *, created: int) -> ResultLine:
    """The `ResultLine` for one Anthropic result object (the `result` of a results-file line), reported
    under the client's `custom_id`. Raises only `UnreadableResult` (with `custom_id` set)."""
    try:
        return _result_line(custom_id, result, created)
    except UnreadableResult as exc:
        raise UnreadableResult(exc.reason, custom_id) from None


def _result_line(custom_id: str, result: Any, created: int) -> ResultLine:
    if not isinstance(result, dict):
        raise UnreadableResult("the result is not an object")
    kind = result.get("type")
    if kind == "succeeded":
        body = to_openai_completion(result.get("message"), created=created)
        return ResultLine.answered(custom_id, 200, body, request_id=result["message"]["id"])
    if kind == "errored":
        status, body, request_id = _error_answer(result.get("error"))
        return ResultLine.answered(custom_id, status, body, request_id=request_id)
    if isinstance(kind, str) and kind in UNEXECUTED_CODES:
        return ResultLine.unexecuted(custom_id, UNEXECUTED_CODES[kind])
    shown = kind[:100] if isinstance(kind, str) else type(kind).__name__
    raise UnreadableResult(f"unknown result type {shown!r}")


# --- succeeded ---------------------------------------------------------------------------------------


def _string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise UnreadableResult(f"message.{key} is not a string")
    return value


def _content_and_tool_calls(blocks: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """The joined text (None without any text block) and the tool calls of the message's content."""
    if not isinstance(blocks, list):
        raise UnreadableResult("message.content is not a list")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str):
            raise UnreadableResult(f"message.content[{index}] is not a typed block")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise UnreadableResult(f"message.content[{index}].text is not a string")
            texts.append(text)
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block, index))
        # Anything else (thinking, redacted_thinking, server-tool blocks) has no chat.completion field.
    return ("".join(texts) if texts else None), tool_calls


def _tool_call(block: dict[str, Any], index: int) -> dict[str, Any]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, dict):
        raise UnreadableResult(f"message.content[{index}] is not a tool_use block with id, name and input")
    try:
        encoded = orjson.dumps(arguments).decode()
    except orjson.JSONEncodeError:
        raise UnreadableResult(f"message.content[{index}].input cannot be encoded as JSON") from None
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": encoded}}


def _finish_reason(stop_reason: Any) -> str:
    if not isinstance(stop_reason, str):
        raise UnreadableResult("message.stop_reason is not a string")
    return FINISH_REASONS.get(stop_reason, UNKNOWN_STOP_REASON_FINISH)


def _token_count(
    counts: dict[str, Any], key: str, *, required: bool = False, at: str = "message.usage"
) -> int:
    value = counts.get(key)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnreadableResult(f"{at}.{key} is not a non-negative integer")
    return value


def _usage(usage: Any) -> dict[str, Any]:
    """OpenAI usage. Anthropic's `input_tokens` leaves out cached tokens, so the prompt is the sum of
    fresh, cache-written and cache-read input tokens."""
    if not isinstance(usage, dict):
        raise UnreadableResult("message.usage is not an object")
    fresh_input = _token_count(usage, "input_tokens", required=True)
    output = _token_count(usage, "output_tokens", required=True)
    cache_write = _token_count(usage, "cache_creation_input_tokens")
    cache_read = _token_count(usage, "cache_read_input_tokens")
    details = usage.get("output_tokens_details")
    if details is not None and not isinstance(details, dict):
        raise UnreadableResult("message.usage.output_tokens_details is not an object")
    thinking = _token_count(details or {}, "thinking_tokens", at="message.usage.output_tokens_details")
    prompt = fresh_input + cache_write + cache_read
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
        "completion_tokens_details": {"reasoning_tokens": thinking},
    }


# --- errored -------------------------------------------------------------------------------------------


def _openai_error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    return "server_error" if status >= 500 else "invalid_request_error"


def _error_answer(envelope: Any) -> tuple[int, dict[str, Any], str | None]:
    """(status, OpenAI error body, request id) of an errored result's `error`, which is Anthropic's whole
    error response: `{"type": "error", "error": {"type", "message"}, "request_id"}`."""
    if not isinstance(envelope, dict):
        raise UnreadableResult("the errored result has no error object")
    inner = envelope.get("error")
    error = inner if isinstance(inner, dict) else envelope  # tolerate a single-nested error
    error_type, message = error.get("type"), error.get("message")
    if not isinstance(error_type, str) or not isinstance(message, str):
        raise UnreadableResult("the errored result's error has no string type and message")
    status = ERROR_STATUS.get(error_type, UNKNOWN_ERROR_STATUS)
    body = {
        "error": {"message": message, "type": _openai_error_type(status), "param": None, "code": error_type}
    }
    request_id = envelope.get("request_id")
    return status, body, request_id if isinstance(request_id, str) else None
