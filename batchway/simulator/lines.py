"""What one OpenAI batch line answers (run in a worker thread when a batch is created).

Lines succeed with a deterministic "echo: <last user text>" reply shaped like the endpoint's real
response body (chat completion, embeddings, completion, response). Any string in a line's `body`
containing `SIMULATE_ERROR_<4xx|5xx>` makes that line fail with that HTTP status. Malformed lines
(bad JSON, wrong url, missing model, ...) become error lines too: a line never raises.
"""

import base64
import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from batchway.simulator.simulation import det_hex, find_error_trigger, words

DEFAULT_EMBEDDING_DIMENSIONS = 8


def error_type(status: int) -> str:
    """OpenAI's error `type` for an HTTP status."""
    if status >= 500:
        return "server_error"
    if status == 429:
        return "rate_limit_exceeded"
    return "invalid_request_error"


class LineError(Exception):
    """A request the endpoint itself would reject; becomes an error line with this status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


@dataclass
class LineResult:
    """One line's precomputed result, plus what the batch object's counters need from it."""

    custom_id: str | None
    line: dict[str, Any]
    ok: bool
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None


def _content_text(content: Any) -> str:
    """Text of a message `content`: a string, or the `text` of each content part joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise LineError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise LineError(400, "Invalid 'model': expected a non-empty string.", "model")
    return model


def _reject_stream(body: dict[str, Any]) -> None:
    # The Batch API never streams.
    if body.get("stream"):
        raise LineError(400, "Streaming is not supported in the Batch API.", "stream")


def _chat_completion(body: dict[str, Any], seed: str, created: int) -> tuple[dict[str, Any], int, int]:
    model = _require_model(body)
    _reject_stream(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise LineError(400, "Invalid 'messages': expected a non-empty array of messages.", "messages")
    prompt_tokens = 0
    last_user_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise LineError(
                400, f"Invalid 'messages[{index}]': expected an object with a 'role'.", "messages"
            )
        text = _content_text(message.get("content"))
        prompt_tokens += words(text)
        if message["role"] == "user":
            last_user_text = text
    reply = f"echo: {last_user_text}"
    completion_tokens = words(reply)
    response = {
        "id": "chatcmpl-" + det_hex(seed, "chatcmpl", length=29),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }
    return response, prompt_tokens, completion_tokens


def _embedding_vector(key: str, dimensions: int) -> list[float]:
    # Seeded from a hash so the same input always embeds to the same unit vector.
    rng = random.Random(int(det_hex("embedding", key, length=16), 16))
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def _embeddings(body: dict[str, Any], seed: str, created: int) -> tuple[dict[str, Any], int, int]:
    model = _require_model(body)
    value = body.get("input")
    items: list[str | list[int]]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        items = [value]  # one pre-tokenized input
    elif isinstance(value, list) and value and all(isinstance(x, str | list) for x in value):
        items = value
    else:
        raise LineError(400, "Invalid 'input': expected a string or a non-empty array.", "input")
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 4096:
        raise LineError(400, "Invalid 'dimensions': expected an integer between 1 and 4096.", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise LineError(400, "Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    data = []
    tokens = 0
    for index, item in enumerate(items):
        if isinstance(item, str):
            tokens += words(item)
            key = item
        else:
            tokens += len(item)
            key = orjson.dumps(item).decode()
        vector = _embedding_vector(key, dimensions)
        embedding: list[float] | str = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    response = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return response, tokens, 0


def _completion(body: dict[str, Any], seed: str, created: int) -> tuple[dict[str, Any], int, int]:
    model = _require_model(body)
    _reject_stream(body)
    prompt = body.get("prompt")
    prompts = prompt if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt) else [prompt]
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise LineError(400, "Invalid 'prompt': expected a string or an array of strings.", "prompt")
    replies = [f"echo: {p}" for p in prompts]
    prompt_tokens = sum(words(p) for p in prompts)
    completion_tokens = sum(words(r) for r in replies)
    response = {
        "id": "cmpl-" + det_hex(seed, "cmpl", length=29),
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"text": reply, "index": index, "logprobs": None, "finish_reason": "stop"}
            for index, reply in enumerate(replies)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": None,
    }
    return response, prompt_tokens, completion_tokens


def _response(body: dict[str, Any], seed: str, created: int) -> tuple[dict[str, Any], int, int]:
    model = _require_model(body)
    _reject_stream(body)
    value = body.get("input")
    instructions = body.get("instructions")
    texts: list[str] = [instructions] if isinstance(instructions, str) else []
    last_user_text = ""
    if isinstance(value, str):
        texts.append(value)
        last_user_text = value
    elif isinstance(value, list) and value:
        for item in value:
            if not isinstance(item, dict):
                raise LineError(400, "Invalid 'input': expected an array of input items.", "input")
            text = _content_text(item.get("content"))
            texts.append(text)
            if item.get("role") == "user":
                last_user_text = text
    else:
        raise LineError(400, "Invalid 'input': expected a string or a non-empty array.", "input")
    reply = f"echo: {last_user_text}"
    input_tokens = sum(words(t) for t in texts)
    output_tokens = words(reply)
    response = {
        "id": "resp_" + det_hex(seed, "resp", length=48),
        "object": "response",
        "created_at": created,
        "completed_at": created,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_" + det_hex(seed, "msg", length=48),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply, "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
        "metadata": {},
    }
    return response, input_tokens, output_tokens


_BUILDERS: dict[str, Callable[[dict[str, Any], str, int], tuple[dict[str, Any], int, int]]] = {
    "/v1/chat/completions": _chat_completion,
    "/v1/embeddings": _embeddings,
    "/v1/completions": _completion,
    "/v1/responses": _response,
}
SUPPORTED_ENDPOINTS = tuple(_BUILDERS)


def simulate_line(raw: bytes, index: int, endpoint: str, batch_id: str, created: int) -> LineResult:
    """The result line for one input line. Never raises: every problem becomes an error line."""
    seed = f"{batch_id}:{index}"
    line_id = "batch_req_" + det_hex(seed, "line")
    request_id = "req_" + det_hex(seed, "request")
    custom_id: str | None = None

    def failure(status: int, message: str, param: str | None = None, code: str | None = None) -> LineResult:
        error = {"message": message, "type": error_type(status), "param": param, "code": code}
        response = {"status_code": status, "request_id": request_id, "body": {"error": error}}
        line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
        return LineResult(custom_id, line, ok=False)

    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return failure(400, "This line is not parseable as valid JSON.", None, "invalid_json_line")
    if not isinstance(request, dict):
        return failure(400, "Each line must be a JSON object.", None, "invalid_json_line")
    if isinstance(request.get("custom_id"), str) and request["custom_id"]:
        custom_id = request["custom_id"]
    else:
        return failure(400, "Missing or invalid 'custom_id': expected a non-empty string.", "custom_id")
    if request.get("method") != "POST":
        return failure(400, "Invalid 'method': only POST is supported.", "method")
    if request.get("url") != endpoint:
        return failure(
            400, f"The url {request.get('url')!r} does not match the batch endpoint {endpoint}.", "url"
        )
    body = request.get("body")
    if not isinstance(body, dict):
        return failure(400, "Missing or invalid 'body': expected a JSON object.", "body")
    model = body.get("model") if isinstance(body.get("model"), str) else None
    status = find_error_trigger(body)
    if status is not None:
        result = failure(status, f"Simulated error: SIMULATE_ERROR_{status} was found in the request body.")
        result.model = model
        return result
    try:
        response_body, input_tokens, output_tokens = _BUILDERS[endpoint](body, seed, created)
    except LineError as exc:
        result = failure(exc.status, exc.message, exc.param, exc.code)
        result.model = model
        return result
    response = {"status_code": 200, "request_id": request_id, "body": response_body}
    line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
    return LineResult(custom_id, line, True, input_tokens, output_tokens, model)
