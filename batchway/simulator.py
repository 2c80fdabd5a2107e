"""A fake of OpenAI's Files + Batch API, served over real HTTP.

The official `openai` SDK works against it unchanged (`base_url="http://host:port/v1"`). It follows
the wire contract in `batch-api-contract.md` (§1 Files, §2 Batches, §5 response shapes).

How a batch moves (all computed lazily from timestamps whenever a batch is read):
- `validating` for `validate_seconds`, then `in_progress`; lines finish in input order at
  `lines_per_second`; then `finalizing` for `FINALIZE_SECONDS`, then `completed`.
- Cancel: `cancelling` for `cancel_seconds`, then `cancelled`. Lines done before the cancel keep
  their results; the rest become `batch_cancelled` error lines.
- Still unfinished at `created_at + window_seconds`: `expired`, the rest become `batch_expired` lines.
- `stall=True`: nothing progresses once in progress and nothing expires; cancel still works.
- An empty input file, a duplicate `custom_id` or more than 50,000 lines: `failed` with `errors`.

Per-line trigger: any string in a line's `body` containing `SIMULATE_ERROR_<4xx|5xx>` makes that
line fail with that HTTP status. Other lines succeed with a deterministic "echo: <last user text>"
reply. Objects are scoped by bearer token, like OpenAI scopes them by project.

State survives restarts: a new app on the same `data_dir` sees the same files and batches, and each
batch's state machine carries on by wall clock from its stored timestamps. Layout under `data_dir`:
- `files/<file_id>`: file contents.
- `batches/<batch_id>.results.jsonl`: every line's precomputed result, until the result files exist.
- `batches/<batch_id>.prepared.json`: what validation learned (counts, custom_ids); written once.
- `state/files/<file_id>.json`, `state/batches/<batch_id>.json`: small metadata records, rewritten
  atomically on every change that replay cannot recompute (create, cancel, status change, config
  change, result files written). A deleted file leaves a tombstone so it still works as a cursor.
Unreadable records are skipped with a warning. Owners are stored as a hash, never as the bearer token.
"""

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import itertools
import logging
import math
import os
import random
import re
import secrets
import string
import struct
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import fastapi
import orjson
import pydantic
import uvicorn
from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, Response

from batchway.errors import APIError
from batchway.http import RequestIdMiddleware

__all__ = ["SimulatorConfig", "create_simulator_app", "run_simulator"]

_log = logging.getLogger(__name__)

SUPPORTED_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses")
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
FILE_TTL_SECONDS = 30 * 86400  # batch input and output files default to 30 days
FINALIZE_SECONDS = 0.1
MAX_BATCH_LINES = 50_000
MAX_FORM_FIELD_BYTES = 64 * 1024
MAX_VALIDATION_ERRORS = 10
DEFAULT_EMBEDDING_DIMENSIONS = 8

_SIMULATE_ERROR = re.compile(r"SIMULATE_ERROR_([45]\d\d)")
_BASE62 = string.ascii_letters + string.digits
_CANCELLED_ERROR = {
    "code": "batch_cancelled",
    "message": "This request was cancelled before it could be executed.",
}
_EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


class SimulatorConfig(pydantic.BaseModel):
    data_dir: Path
    api_key: str | None = None
    validate_seconds: float = pydantic.Field(default=0.2, ge=0)
    lines_per_second: float = pydantic.Field(default=200.0, gt=0)
    cancel_seconds: float = pydantic.Field(default=0.3, ge=0)
    window_seconds: float = pydantic.Field(default=86400.0, gt=0)
    stall: bool = False


class _ConfigUpdate(pydantic.BaseModel):
    """Body of `POST /_simulator/config`: only the runtime knobs, never data_dir or api_key."""

    model_config = pydantic.ConfigDict(extra="forbid")

    validate_seconds: float | None = None
    lines_per_second: float | None = None
    cancel_seconds: float | None = None
    window_seconds: float | None = None
    stall: bool | None = None


# ---------------------------------------------------------------------------------------------------
# Errors and small helpers


def _bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _error_response(status: int, message: str, type: str, param: str | None, code: str | None) -> Response:
    return _json({"error": {"message": message, "type": type, "param": param, "code": code}}, status)


def _file_id() -> str:
    return "file-" + "".join(secrets.choice(_BASE62) for _ in range(24))


def _det_hex(*parts: object, length: int = 32) -> str:
    """Deterministic hex id, so re-running the same batch input yields the same result ids."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


def _words(text: str) -> int:
    return len(text.split())


def _error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    if status == 429:
        return "rate_limit_exceeded"
    return "invalid_request_error"


# ---------------------------------------------------------------------------------------------------
# Stored objects


@dataclass
class _StoredFile:
    id: str
    owner: str
    seq: int
    filename: str
    purpose: str
    bytes: int
    created_at: float
    expires_at: float | None
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None if self.expires_at is None else int(self.expires_at),
            "status_details": None,
        }


@dataclass
class _PreparedInput:
    """What validation learned from the input file; results themselves live in a scratch file."""

    total: int = 0
    model: str | None = None
    custom_ids: list[str | None] = field(default_factory=list)
    # Cumulative sums over lines in input order (index i = first i lines), so counts and usage for
    # "the first k lines are done" are O(1) lookups.
    ok_prefix: array = field(default_factory=lambda: array("q", [0]))
    input_tokens_prefix: array = field(default_factory=lambda: array("q", [0]))
    output_tokens_prefix: array = field(default_factory=lambda: array("q", [0]))
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Batch:
    id: str
    owner: str
    seq: int
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    output_ttl_seconds: float
    created_at: float
    expires_at: float
    prepared: _PreparedInput
    scratch_path: Path
    status: str = "validating"
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None
    progress: float = 0.0  # lines done, fractional; advanced piecewise so config changes apply from "now"
    progressed_at: float = 0.0
    output_file_id: str | None = None
    error_file_id: str | None = None
    materialized: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def total(self) -> int:
        return self.prepared.total

    @property
    def done(self) -> int:
        # The epsilon absorbs float error, e.g. 0.1 s * 30 lines/s landing on 2.9999999.
        return min(self.total, int(math.floor(self.progress + 1e-9)))

    def request_counts(self) -> dict[str, int]:
        if self.status in ("failed", "validating"):
            return {"total": 0, "completed": 0, "failed": 0}
        succeeded = self.prepared.ok_prefix[self.done]
        if self.status in ("cancelled", "expired"):
            # Unexecuted lines count as failed so completed + failed == total.
            return {"total": self.total, "completed": succeeded, "failed": self.total - succeeded}
        return {"total": self.total, "completed": succeeded, "failed": self.done - succeeded}

    def usage(self) -> dict[str, Any] | None:
        if self.in_progress_at is None and self.status not in ("cancelled", "expired"):
            return None
        input_tokens = self.prepared.input_tokens_prefix[self.done]
        output_tokens = self.prepared.output_tokens_prefix[self.done]
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }

    def to_json(self) -> dict[str, Any]:
        def ts(value: float | None) -> int | None:
            return None if value is None else int(value)

        errors = self.prepared.errors if self.status == "failed" else []
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.prepared.model,
            "errors": {"object": "list", "data": errors} if errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "in_progress_at": ts(self.in_progress_at),
            "expires_at": int(self.expires_at),
            "finalizing_at": ts(self.finalizing_at),
            "completed_at": ts(self.completed_at),
            "failed_at": ts(self.failed_at),
            "expired_at": ts(self.expired_at),
            "cancelling_at": ts(self.cancelling_at),
            "cancelled_at": ts(self.cancelled_at),
            "request_counts": self.request_counts(),
            "usage": self.usage(),
            "metadata": self.metadata,
        }


# ---------------------------------------------------------------------------------------------------
# Per-line simulation (runs in a worker thread at batch creation)


class _LineError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


@dataclass
class _LineResult:
    custom_id: str | None
    line: dict[str, Any]
    ok: bool
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None


def _find_trigger(body: Any) -> int | None:
    """First `SIMULATE_ERROR_<status>` in any string of the body, depth first in document order."""
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            match = _SIMULATE_ERROR.search(value)
            if match:
                return int(match.group(1))
        elif isinstance(value, dict):
            stack.extend(reversed(list(value.values())))
        elif isinstance(value, list):
            stack.extend(reversed(value))
    return None


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
        raise _LineError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _LineError(400, "Invalid 'model': expected a non-empty string.", "model")
    return model


def _reject_stream(body: dict[str, Any]) -> None:
    # The Batch API never streams.
    if body.get("stream"):
        raise _LineError(400, "Streaming is not supported in the Batch API.", "stream")


def _chat_completion(body: dict[str, Any], seed: str, created: int) -> tuple[dict[str, Any], int, int]:
    model = _require_model(body)
    _reject_stream(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _LineError(400, "Invalid 'messages': expected a non-empty array of messages.", "messages")
    prompt_tokens = 0
    last_user_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _LineError(
                400, f"Invalid 'messages[{index}]': expected an object with a 'role'.", "messages"
            )
        text = _content_text(message.get("content"))
        prompt_tokens += _words(text)
        if message["role"] == "user":
            last_user_text = text
    reply = f"echo: {last_user_text}"
    completion_tokens = _words(reply)
    response = {
        "id": "chatcmpl-" + _det_hex(seed, "chatcmpl", length=29),
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
    rng = random.Random(int(_det_hex("embedding", key, length=16), 16))
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
        raise _LineError(400, "Invalid 'input': expected a string or a non-empty array.", "input")
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 4096:
        raise _LineError(400, "Invalid 'dimensions': expected an integer between 1 and 4096.", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _LineError(400, "Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    data = []
    tokens = 0
    for index, item in enumerate(items):
        if isinstance(item, str):
            tokens += _words(item)
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
        raise _LineError(400, "Invalid 'prompt': expected a string or an array of strings.", "prompt")
    replies = [f"echo: {p}" for p in prompts]
    prompt_tokens = sum(_words(p) for p in prompts)
    completion_tokens = sum(_words(r) for r in replies)
    response = {
        "id": "cmpl-" + _det_hex(seed, "cmpl", length=29),
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
                raise _LineError(400, "Invalid 'input': expected an array of input items.", "input")
            text = _content_text(item.get("content"))
            texts.append(text)
            if item.get("role") == "user":
                last_user_text = text
    else:
        raise _LineError(400, "Invalid 'input': expected a string or a non-empty array.", "input")
    reply = f"echo: {last_user_text}"
    input_tokens = sum(_words(t) for t in texts)
    output_tokens = _words(reply)
    response = {
        "id": "resp_" + _det_hex(seed, "resp", length=48),
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
                "id": "msg_" + _det_hex(seed, "msg", length=48),
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


def _simulate_line(raw: bytes, index: int, endpoint: str, batch_id: str, created: int) -> _LineResult:
    """The result line for one input line. Never raises: every problem becomes an error line."""
    seed = f"{batch_id}:{index}"
    line_id = "batch_req_" + _det_hex(seed, "line")
    request_id = "req_" + _det_hex(seed, "request")
    custom_id: str | None = None

    def failure(status: int, message: str, param: str | None = None, code: str | None = None) -> _LineResult:
        error = {"message": message, "type": _error_type(status), "param": param, "code": code}
        response = {"status_code": status, "request_id": request_id, "body": {"error": error}}
        line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
        return _LineResult(custom_id, line, ok=False)

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
    status = _find_trigger(body)
    if status is not None:
        result = failure(status, f"Simulated error: SIMULATE_ERROR_{status} was found in the request body.")
        result.model = model
        return result
    try:
        response_body, input_tokens, output_tokens = _BUILDERS[endpoint](body, seed, created)
    except _LineError as exc:
        result = failure(exc.status, exc.message, exc.param, exc.code)
        result.model = model
        return result
    response = {"status_code": 200, "request_id": request_id, "body": response_body}
    line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
    return _LineResult(custom_id, line, True, input_tokens, output_tokens, model)


def _prepare_input(
    input_path: Path, scratch_path: Path, endpoint: str, batch_id: str, created: int
) -> _PreparedInput:
    """Validate the input file and precompute every line's result into a scratch file.

    Streams line by line so big files never sit in memory; only per-line counters are kept.
    """
    prepared = _PreparedInput()
    seen: set[str] = set()
    with input_path.open("rb") as src, scratch_path.open("wb") as dst:
        for line_no, raw in enumerate(src, start=1):
            if not raw.strip():
                continue
            if prepared.total >= MAX_BATCH_LINES:
                prepared.errors.append(
                    {
                        "code": "too_many_tasks",
                        "message": f"The batch input file has more than {MAX_BATCH_LINES} requests.",
                        "param": None,
                        "line": line_no,
                    }
                )
                break
            result = _simulate_line(raw, prepared.total, endpoint, batch_id, created)
            if result.custom_id is not None:
                if result.custom_id in seen and len(prepared.errors) < MAX_VALIDATION_ERRORS:
                    prepared.errors.append(
                        {
                            "code": "duplicate_custom_id",
                            "message": f"The custom_id {result.custom_id!r} is used more than once.",
                            "param": "custom_id",
                            "line": line_no,
                        }
                    )
                seen.add(result.custom_id)
            if prepared.model is None:
                prepared.model = result.model
            dst.write(orjson.dumps(result.line) + b"\n")
            prepared.total += 1
            prepared.custom_ids.append(result.custom_id)
            prepared.ok_prefix.append(prepared.ok_prefix[-1] + int(result.ok))
            prepared.input_tokens_prefix.append(prepared.input_tokens_prefix[-1] + result.input_tokens)
            prepared.output_tokens_prefix.append(prepared.output_tokens_prefix[-1] + result.output_tokens)
    if prepared.total == 0 and not prepared.errors:
        prepared.errors.append(
            {"code": "empty_file", "message": "The batch input file is empty.", "param": None, "line": None}
        )
    return prepared


def _write_results(
    batch: _Batch, out_path: Path, err_path: Path, unexecuted_error: dict[str, str]
) -> tuple[int, int]:
    """Split the precomputed results into output/error files. Returns (output lines, error lines).

    Lines done before the batch stopped keep their result; the rest get `unexecuted_error`.
    Output order is input order, which is deterministic (OpenAI does not promise any order).
    """
    prepared, done = batch.prepared, batch.done
    n_out = n_err = 0
    with batch.scratch_path.open("rb") as scratch, out_path.open("wb") as out, err_path.open("wb") as err:
        for index, raw in enumerate(itertools.islice(scratch, done)):
            if prepared.ok_prefix[index + 1] > prepared.ok_prefix[index]:
                out.write(raw)
                n_out += 1
            else:
                err.write(raw)
                n_err += 1
        for index in range(done, prepared.total):
            line = {
                "id": "batch_req_" + _det_hex(f"{batch.id}:{index}", "line"),
                "custom_id": prepared.custom_ids[index],
                "response": None,
                "error": unexecuted_error,
            }
            err.write(orjson.dumps(line) + b"\n")
            n_err += 1
    return n_out, n_err


# ---------------------------------------------------------------------------------------------------
# On-disk state


def _record_model(cls: type, exclude: tuple[str, ...]) -> type[pydantic.BaseModel]:
    """A pydantic model of a dataclass's persisted fields, so records are type-checked on load.

    Derived from the dataclass so the two never drift; defaults keep older records loadable.
    """
    definitions: dict[str, Any] = {
        f.name: (f.type, ... if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
        if f.name not in exclude
    }
    return pydantic.create_model(f"{cls.__name__}Record", **definitions)


_FileRecord = _record_model(_StoredFile, exclude=("path",))  # the path is derived from the id
_BatchRecord = _record_model(_Batch, exclude=("prepared", "scratch_path", "lock"))


class _Tombstone(pydantic.BaseModel):
    """What a deleted file leaves behind: its id still works as a paging cursor after a restart."""

    id: str
    seq: int
    deleted: Literal[True]


class _PreparedRecord(pydantic.BaseModel):
    """On-disk form of `_PreparedInput`. Written once when the batch is created, never changed."""

    total: int
    model: str | None
    custom_ids: list[str | None]
    ok_prefix: list[int]
    input_tokens_prefix: list[int]
    output_tokens_prefix: list[int]
    errors: list[dict[str, Any]]

    @pydantic.model_validator(mode="after")
    def _consistent_lengths(self) -> "_PreparedRecord":
        # request_counts() indexes these by lines done, so a mismatch would fail on every read.
        prefixes = (self.ok_prefix, self.input_tokens_prefix, self.output_tokens_prefix)
        if len(self.custom_ids) != self.total or any(len(p) != self.total + 1 for p in prefixes):
            raise ValueError("per-line lists do not match 'total'")
        return self

    @classmethod
    def dump(cls, prepared: _PreparedInput) -> bytes:
        values = {name: getattr(prepared, name) for name in cls.model_fields}
        return orjson.dumps({k: v.tolist() if isinstance(v, array) else v for k, v in values.items()})

    def load(self) -> _PreparedInput:
        return _PreparedInput(
            total=self.total,
            model=self.model,
            custom_ids=self.custom_ids,
            ok_prefix=array("q", self.ok_prefix),
            input_tokens_prefix=array("q", self.input_tokens_prefix),
            output_tokens_prefix=array("q", self.output_tokens_prefix),
            errors=self.errors,
        )


def _dump_record(obj: Any, model: type[pydantic.BaseModel]) -> bytes:
    return orjson.dumps({name: getattr(obj, name) for name in model.model_fields})


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file, then rename: a crash leaves the old or the new version, never half.

    No fsync: this guards against the process dying, which is what a dev restart looks like.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # dot-prefixed: never loaded
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _records(directory: Path) -> Iterator[tuple[str, Path]]:
    """(object id, path) of every record in a state directory, skipping leftover temp files."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                yield entry.name.removesuffix(".json"), Path(entry.path)


def _owner_key(token: str) -> str:
    """Objects are scoped by this hash of the bearer token, so no token is ever written to disk."""
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Multipart upload, streamed straight to disk


class _UploadSink:
    """python-multipart callbacks: small text fields in memory, the `file` part written to disk."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self._handle: Any = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._part_name = ""
        self._part_is_file = False
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        }

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _on_part_begin(self) -> None:
        self._disposition = b""
        self._buffer.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        self._part_is_file = self._part_name == "file" and b"filename" in options
        if self._part_is_file:
            if self.filename is not None:
                raise _bad_request("Only one file may be uploaded per request.", "file")
            self.filename = os.path.basename(options[b"filename"].decode("utf-8", "replace")) or "upload"
            self._handle = self.tmp_path.open("wb")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            # Synchronous write of one network chunk (~64 KiB): cheap, and keeps memory flat.
            self._handle.write(data[start:end])
            self.size += end - start
            return
        self._buffer += data[start:end]
        if len(self._buffer) > MAX_FORM_FIELD_BYTES:
            raise _bad_request(f"The form field {self._part_name!r} is too large.", self._part_name or None)

    def _on_part_end(self) -> None:
        if self._part_is_file:
            self.close()
        elif self._part_name:
            self.fields[self._part_name] = self._buffer.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------
# The simulator state


class _Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.files: dict[str, _StoredFile] = {}
        self.batches: dict[str, _Batch] = {}
        self.seq_by_id: dict[str, int] = {}  # includes deleted files, so stale cursors still page
        self.files_dir = config.data_dir / "files"
        self.tmp_dir = config.data_dir / "tmp"
        self.scratch_dir = config.data_dir / "batches"
        self.file_state_dir = config.data_dir / "state" / "files"
        self.batch_state_dir = config.data_dir / "state" / "batches"
        for directory in (
            self.files_dir,
            self.tmp_dir,
            self.scratch_dir,
            self.file_state_dir,
            self.batch_state_dir,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self._load()
        # New objects sort after everything restored.
        self._seq = itertools.count(max(self.seq_by_id.values(), default=-1) + 1)

    def next_seq(self, object_id: str) -> int:
        seq = next(self._seq)
        self.seq_by_id[object_id] = seq
        return seq

    # -- persistence ----------------------------------------------------------------------------

    def scratch_path(self, batch_id: str) -> Path:
        return self.scratch_dir / f"{batch_id}.results.jsonl"

    def prepared_path(self, batch_id: str) -> Path:
        return self.scratch_dir / f"{batch_id}.prepared.json"

    def save_file(self, stored: _StoredFile) -> None:
        _write_atomic(self.file_state_dir / f"{stored.id}.json", _dump_record(stored, _FileRecord))

    def save_batch(self, batch: _Batch) -> None:
        _write_atomic(self.batch_state_dir / f"{batch.id}.json", _dump_record(batch, _BatchRecord))

    def _load(self) -> None:
        """Restore every readable record. Anything unreadable is skipped with a warning: one bad file
        must not take the whole simulator (and every other object in it) down."""
        for file_id, path in _records(self.file_state_dir):
            try:
                raw = orjson.loads(path.read_bytes())
                if isinstance(raw, dict) and raw.get("deleted") is True:
                    tombstone = _Tombstone.model_validate(raw)
                    if tombstone.id != file_id:
                        raise ValueError(f"record is for {tombstone.id!r}")
                    self.seq_by_id[file_id] = tombstone.seq
                    continue
                fields = _FileRecord.model_validate(raw).model_dump()
                if fields["id"] != file_id:  # also keeps a tampered id from pointing outside files_dir
                    raise ValueError(f"record is for {fields['id']!r}")
            except (OSError, ValueError) as exc:  # JSON and validation errors are ValueErrors
                _log.warning("simulator: skipping unreadable file record %s: %s", path, exc)
                continue
            self.files[file_id] = _StoredFile(**fields, path=self.files_dir / file_id)
            self.seq_by_id[file_id] = fields["seq"]
        for batch_id, path in _records(self.batch_state_dir):
            try:
                fields = _BatchRecord.model_validate_json(path.read_bytes()).model_dump()
                if fields["id"] != batch_id:
                    raise ValueError(f"record is for {fields['id']!r}")
                prepared = _PreparedRecord.model_validate_json(self.prepared_path(batch_id).read_bytes())
                scratch = self.scratch_path(batch_id)
                if not fields["materialized"] and not scratch.exists():
                    raise ValueError(f"its results file {scratch} is missing")
            except (OSError, ValueError) as exc:
                _log.warning("simulator: skipping unreadable batch record %s: %s", path, exc)
                continue
            self.batches[batch_id] = _Batch(**fields, prepared=prepared.load(), scratch_path=scratch)
            self.seq_by_id[batch_id] = fields["seq"]
        if self.files or self.batches:
            _log.info("simulator: restored %d files and %d batches", len(self.files), len(self.batches))

    # -- files ----------------------------------------------------------------------------------

    def get_file(self, file_id: str, owner: str) -> _StoredFile:
        stored = self.files.get(file_id)
        if stored is None or stored.owner != owner:
            raise APIError(404, f"No such File object: {file_id}", param="id")
        return stored

    def add_file(
        self, owner: str, tmp_path: Path, filename: str, purpose: str, size: int, ttl: float | None
    ) -> _StoredFile:
        file_id = _file_id()
        path = self.files_dir / file_id
        os.replace(tmp_path, path)
        now = time.time()
        stored = _StoredFile(
            id=file_id,
            owner=owner,
            seq=self.next_seq(file_id),
            filename=filename,
            purpose=purpose,
            bytes=size,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            path=path,
        )
        self.save_file(stored)  # contents are in place first, so a record never points at nothing
        self.files[file_id] = stored
        return stored

    def delete_file(self, stored: _StoredFile) -> None:
        tombstone = {"id": stored.id, "seq": stored.seq, "deleted": True}
        _write_atomic(self.file_state_dir / f"{stored.id}.json", orjson.dumps(tombstone))
        del self.files[stored.id]
        stored.path.unlink(missing_ok=True)

    # -- batches --------------------------------------------------------------------------------

    def add_batch(self, batch: _Batch) -> None:
        self.save_batch(batch)
        self.batches[batch.id] = batch

    def get_batch(self, batch_id: str, owner: str) -> _Batch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.owner != owner:
            raise APIError(404, f"No such Batch object: {batch_id}", param="id")
        return batch

    def advance(self, batch: _Batch, now: float) -> None:
        """Move a batch forward to `now` under the current config. Idempotent; never moves back."""
        cfg = self.config
        expiry_enabled = not cfg.stall  # a stalled batch never expires by itself
        while True:
            if batch.status == "validating":
                validated_at = batch.created_at + cfg.validate_seconds
                if expiry_enabled and batch.expires_at < validated_at and batch.expires_at <= now:
                    batch.status, batch.expired_at = "expired", batch.expires_at
                    return
                if validated_at > now:
                    return
                if batch.prepared.errors:
                    batch.status, batch.failed_at = "failed", validated_at
                    return
                batch.status, batch.in_progress_at = "in_progress", validated_at
                batch.progressed_at = validated_at
            elif batch.status == "in_progress":
                rate = 0.0 if cfg.stall else cfg.lines_per_second
                remaining = batch.total - batch.progress
                finish_at = batch.progressed_at + remaining / rate if rate > 0 else math.inf
                expire_at = max(batch.expires_at, batch.progressed_at) if expiry_enabled else math.inf
                if finish_at <= now and finish_at <= expire_at:
                    batch.progress, batch.progressed_at = float(batch.total), finish_at
                    batch.status, batch.finalizing_at = "finalizing", finish_at
                elif expire_at <= now:
                    batch.progress += (expire_at - batch.progressed_at) * rate
                    batch.progressed_at = expire_at
                    batch.status, batch.expired_at = "expired", expire_at
                    return
                else:
                    batch.progress += (now - batch.progressed_at) * rate
                    batch.progressed_at = now
                    return
            elif batch.status == "finalizing":
                assert batch.finalizing_at is not None
                completed_at = batch.finalizing_at + FINALIZE_SECONDS
                if completed_at > now:
                    return
                batch.status, batch.completed_at = "completed", completed_at
                return
            elif batch.status == "cancelling":
                assert batch.cancelling_at is not None
                cancelled_at = batch.cancelling_at + cfg.cancel_seconds
                if cancelled_at > now:
                    return
                batch.status, batch.cancelled_at = "cancelled", cancelled_at
                return
            else:
                return

    async def refresh(self, batch: _Batch) -> _Batch:
        """Advance to now; on the first read after reaching a terminal state, write the result files."""
        status = batch.status
        self.advance(batch, time.time())
        if batch.status != status:
            # Replay from the previous record would mostly agree, but not if a restart brings another
            # config: a completed batch must never come back as in_progress.
            self.save_batch(batch)
        if batch.status in TERMINAL_STATUSES and not batch.materialized:
            async with batch.lock:  # concurrent readers must not write the files twice
                if not batch.materialized:
                    await self._materialize(batch)
        return batch

    async def _materialize(self, batch: _Batch) -> None:
        if batch.status != "failed":
            error = _EXPIRED_ERROR if batch.status == "expired" else _CANCELLED_ERROR
            token = secrets.token_hex(8)
            out_tmp = self.tmp_dir / f"{batch.id}.{token}.output"
            err_tmp = self.tmp_dir / f"{batch.id}.{token}.error"
            n_out, n_err = await asyncio.to_thread(_write_results, batch, out_tmp, err_tmp, error)
            for count, tmp, kind in ((n_out, out_tmp, "output"), (n_err, err_tmp, "error")):
                if count == 0:
                    tmp.unlink(missing_ok=True)
                    continue
                stored = self.add_file(
                    batch.owner,
                    tmp,
                    f"{batch.id}_{kind}.jsonl",
                    "batch_output",
                    tmp.stat().st_size,
                    batch.output_ttl_seconds,
                )
                if kind == "output":
                    batch.output_file_id = stored.id
                else:
                    batch.error_file_id = stored.id
        batch.materialized = True
        self.save_batch(batch)
        # Only now: until the record says "materialized", a restart needs the scratch file to redo this.
        batch.scratch_path.unlink(missing_ok=True)

    def update_config(self, update: _ConfigUpdate) -> None:
        # Settle every batch under the old settings first, so new speeds apply from now on.
        now = time.time()
        for batch in self.batches.values():
            self.advance(batch, now)
            if not batch.materialized:
                # Progress is piecewise per config; the record must hold the point where speeds change.
                self.save_batch(batch)
        merged = {**self.config.model_dump(), **update.model_dump(exclude_none=True)}
        validated = SimulatorConfig.model_validate(merged)
        for name in update.model_dump(exclude_none=True):
            setattr(self.config, name, getattr(validated, name))  # in place: callers share the object


# ---------------------------------------------------------------------------------------------------
# HTTP layer


def _mask_key(key: str) -> str:
    return key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "*" * len(key)


def _paginate(items: list[Any], after_seq: int | None, descending: bool, limit: int) -> dict[str, Any]:
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


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise _bad_request("You must provide a JSON body in your request.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly.)"
        ) from None
    if not isinstance(body, dict):
        raise _bad_request("The request body must be a JSON object.")
    return body


def _parse_expires_after(anchor: Any, seconds: Any, param: str) -> float | None:
    """Validate an `expires_after`-style policy; returns the TTL in seconds, or None if absent."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise _bad_request(f"Invalid '{param}.anchor': the only supported value is 'created_at'.", param)
    try:
        ttl = int(seconds)
    except (TypeError, ValueError):
        ttl = -1
    if isinstance(seconds, bool) or not 3600 <= ttl <= 2_592_000:
        raise _bad_request(f"Invalid '{param}.seconds': expected an integer between 3600 and 2592000.", param)
    return float(ttl)


def create_simulator_app(config: SimulatorConfig) -> fastapi.FastAPI:
    sim = _Simulator(config)
    app = fastapi.FastAPI(title="batchway OpenAI Files + Batch simulator", docs_url=None, redoc_url=None)
    app.state.simulator = sim
    app.add_middleware(RequestIdMiddleware)

    # -- error envelope: every failure looks like OpenAI's, never a bare 422 or 500 ----------------

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        return _json(exc.envelope(), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
        param = ".".join(loc) or None
        message = f"Invalid '{param}': {first.get('msg', 'invalid value')}." if param else "Invalid request."
        return _error_response(400, message, "invalid_request_error", param, None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})"
        else:
            message = str(exc.detail)
        return _error_response(exc.status_code, message, "invalid_request_error", None, None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return _error_response(500, f"The simulator failed: {exc!r}", "server_error", None, None)

    # -- auth -----------------------------------------------------------------------------------

    def caller(request: Request) -> str:
        """The owner key: a hash of the bearer token, which scopes objects (like an OpenAI project)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if config.api_key is not None:
            if not token:
                raise APIError(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
            if not hmac.compare_digest(token.encode(), config.api_key.encode()):
                raise APIError(
                    401, f"Incorrect API key provided: {_mask_key(token)}.", code="invalid_api_key"
                )
        return _owner_key(token)

    v1 = fastapi.APIRouter(prefix="/v1")

    def after_seq(after: str | None) -> int | None:
        if after is None:
            return None
        if after not in sim.seq_by_id:
            raise _bad_request(f"Invalid 'after': no object with id {after!r}.", "after")
        return sim.seq_by_id[after]

    # -- files ----------------------------------------------------------------------------------

    @v1.post("/files")
    async def create_file(request: Request, owner: str = Depends(caller)) -> Response:
        content_type, options = parse_options_header(request.headers.get("content-type"))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            raise _bad_request("Invalid Content-Type header: expected multipart/form-data with a boundary.")
        sink = _UploadSink(sim.tmp_dir / f"upload-{secrets.token_hex(12)}")
        try:
            # python-multipart's callbacks TypedDict exists only under TYPE_CHECKING, hence the ignore.
            parser = MultipartParser(options[b"boundary"], sink.callbacks())  # type: ignore[arg-type]
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except FormParserError:
            sink.close()
            sink.tmp_path.unlink(missing_ok=True)
            raise _bad_request("The multipart body could not be parsed.") from None
        except BaseException:
            sink.close()
            sink.tmp_path.unlink(missing_ok=True)
            raise
        sink.close()
        try:
            purpose = sink.fields.get("purpose")
            if purpose is None:
                raise _bad_request(
                    "Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter"
                )
            if purpose not in UPLOAD_PURPOSES:
                raise _bad_request(
                    f"Invalid value for 'purpose': {purpose!r}. "
                    f"Supported values are: {', '.join(UPLOAD_PURPOSES)}.",
                    "purpose",
                )
            if sink.filename is None:
                raise _bad_request(
                    "Missing required parameter: 'file'.", "file", "missing_required_parameter"
                )
            if purpose == "batch" and not sink.filename.lower().endswith(".jsonl"):
                # Real OpenAI rejects this too, e.g. raw bytes that the SDK names "upload".
                raise _bad_request("Invalid file format for Batch API. Must be .jsonl")
            ttl = _parse_expires_after(
                sink.fields.get("expires_after[anchor]"),
                sink.fields.get("expires_after[seconds]"),
                "expires_after",
            )
            if ttl is None and purpose == "batch":
                ttl = FILE_TTL_SECONDS
            stored = sim.add_file(owner, sink.tmp_path, sink.filename, purpose, sink.size, ttl)
        except BaseException:
            sink.tmp_path.unlink(missing_ok=True)
            raise
        return _json(stored.to_json())

    @v1.get("/files")
    async def list_files(
        owner: str = Depends(caller),
        purpose: str | None = None,
        limit: int = Query(10_000, ge=1, le=10_000),
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> Response:
        descending = order == "desc"
        files = [
            f for f in sim.files.values() if f.owner == owner and (purpose is None or f.purpose == purpose)
        ]
        files.sort(key=lambda f: f.seq, reverse=descending)
        return _json(_paginate(files, after_seq(after), descending, limit))

    @v1.get("/files/{file_id}")
    async def retrieve_file(file_id: str, owner: str = Depends(caller)) -> Response:
        return _json(sim.get_file(file_id, owner).to_json())

    @v1.delete("/files/{file_id}")
    async def delete_file(file_id: str, owner: str = Depends(caller)) -> Response:
        sim.delete_file(sim.get_file(file_id, owner))
        return _json({"id": file_id, "object": "file", "deleted": True})

    @v1.get("/files/{file_id}/content")
    async def file_content(file_id: str, owner: str = Depends(caller)) -> Response:
        stored = sim.get_file(file_id, owner)
        if not stored.path.exists():
            raise APIError(404, f"No such File object: {file_id}", param="id")
        return FileResponse(stored.path, media_type="application/octet-stream", filename=stored.filename)

    # -- batches --------------------------------------------------------------------------------

    @v1.post("/batches")
    async def create_batch(request: Request, owner: str = Depends(caller)) -> Response:
        body = await _json_body(request)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if body.get(name) is None:
                raise _bad_request(
                    f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
                )
        endpoint, window, input_file_id = body["endpoint"], body["completion_window"], body["input_file_id"]
        if endpoint not in SUPPORTED_ENDPOINTS:
            raise _bad_request(
                f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: "
                f"{', '.join(SUPPORTED_ENDPOINTS)}.",
                "endpoint",
            )
        if window != "24h":
            raise _bad_request(
                f"Invalid value for 'completion_window': {window!r}. Supported values are: '24h'.",
                "completion_window",
            )
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
            and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
        ):
            raise _bad_request(
                "Invalid 'metadata': expected at most 16 pairs of string keys (up to 64 characters) and "
                "string values (up to 512 characters).",
                "metadata",
            )
        expires_after = body.get("output_expires_after")
        if expires_after is not None and not isinstance(expires_after, dict):
            raise _bad_request("Invalid 'output_expires_after': expected an object.", "output_expires_after")
        output_ttl = float(FILE_TTL_SECONDS)
        if expires_after is not None:
            anchor, seconds = expires_after.get("anchor"), expires_after.get("seconds")
            output_ttl = _parse_expires_after(anchor, seconds, "output_expires_after") or output_ttl
        if not isinstance(input_file_id, str):
            raise _bad_request("Invalid 'input_file_id': expected a string.", "input_file_id")
        stored = sim.files.get(input_file_id)
        if stored is None or stored.owner != owner:
            raise APIError(404, f"No such File object: {input_file_id}", param="input_file_id")
        if stored.purpose != "batch":
            raise _bad_request(
                f"File {input_file_id} has purpose {stored.purpose!r}; "
                "batch input files must have purpose 'batch'.",
                "input_file_id",
            )

        now = time.time()
        batch_id = "batch_" + secrets.token_hex(16)
        scratch = sim.scratch_path(batch_id)

        def prepare() -> _PreparedInput:
            prepared = _prepare_input(stored.path, scratch, endpoint, batch_id, int(now))
            # Persisted before the batch record, which is what makes the batch exist after a restart.
            _write_atomic(sim.prepared_path(batch_id), _PreparedRecord.dump(prepared))
            return prepared

        try:
            prepared = await asyncio.to_thread(prepare)
        except FileNotFoundError:  # deleted while we were reading it
            raise APIError(404, f"No such File object: {input_file_id}", param="input_file_id") from None
        batch = _Batch(
            id=batch_id,
            owner=owner,
            seq=sim.next_seq(batch_id),
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=window,
            metadata=metadata,
            output_ttl_seconds=output_ttl,
            created_at=now,
            expires_at=now + config.window_seconds,
            prepared=prepared,
            scratch_path=scratch,
        )
        sim.add_batch(batch)
        return _json(batch.to_json())

    @v1.get("/batches")
    async def list_batches(
        owner: str = Depends(caller),
        limit: int = Query(20, ge=1, le=100),
        after: str | None = None,
    ) -> Response:
        batches = sorted(
            (b for b in sim.batches.values() if b.owner == owner), key=lambda b: b.seq, reverse=True
        )
        page = _paginate(batches, after_seq(after), True, limit)
        # Refresh only what is returned: a page is at most 100 batches.
        page["data"] = [(await sim.refresh(sim.batches[item["id"]])).to_json() for item in page["data"]]
        return _json(page)

    @v1.get("/batches/{batch_id}")
    async def retrieve_batch(batch_id: str, owner: str = Depends(caller)) -> Response:
        batch = await sim.refresh(sim.get_batch(batch_id, owner))
        return _json(batch.to_json())

    @v1.post("/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str, owner: str = Depends(caller)) -> Response:
        # The SDK sends `content-type: application/json` with an empty body; never read it.
        batch = await sim.refresh(sim.get_batch(batch_id, owner))
        if batch.status in TERMINAL_STATUSES:
            raise _bad_request(f"Cannot cancel a batch with status '{batch.status}'.")
        if batch.status != "cancelling":
            batch.status, batch.cancelling_at = "cancelling", time.time()
            sim.save_batch(batch)  # lines done so far are frozen now; a restart must not replay past them
        return _json(batch.to_json())

    app.include_router(v1)

    # -- test hooks (no auth) -------------------------------------------------------------------

    def config_json() -> dict[str, Any]:
        return config.model_dump(mode="json", exclude={"api_key"})  # never echo the key

    @app.get("/_simulator/config")
    async def get_config() -> Response:
        return _json(config_json())

    @app.post("/_simulator/config")
    async def set_config(request: Request) -> Response:
        try:
            update = _ConfigUpdate.model_validate(await _json_body(request))
            sim.update_config(update)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise _bad_request(f"Invalid '{param}': {first['msg']}.", param) from None
        return _json(config_json())

    @app.get("/_simulator/batches")
    async def all_batches() -> Response:
        batches = sorted(sim.batches.values(), key=lambda b: b.seq, reverse=True)
        return _json({"object": "list", "data": [(await sim.refresh(b)).to_json() for b in batches]})

    return app


def run_simulator(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve the simulator until interrupted (blocking)."""
    uvicorn.run(create_simulator_app(config), host=host, port=port)
