"""An OpenAI batch input as Anthropic Message Batches: every line translated (or refused, with its line
number, before anything is sent), and the lines cut into parts that each fit one Anthropic batch
(at most `max_requests` requests and `max_bytes` of create body).

Both passes stream the stored input: `plan_parts` reads it once at validation and keeps only where
each part starts; `PartBody` reads one part again, line by line, to stream its create body.
Blocking I/O: call from a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson
from pydantic import BaseModel, ConfigDict, Field

from batchway.batch_input import MAX_RECORDED_PROBLEMS, LineProblem
from batchway.jsonl import iter_line_spans, iter_lines, read_chunks
from batchway.upstreams.anthropic.translate import (
    UntranslatableRequest,
    anthropic_custom_id,
    to_anthropic_params,
)

BODY_OPEN, BODY_CLOSE, SEPARATOR = b'{"requests":[', b"]}", b","


class AnthropicOptions(BaseModel):
    """What an operator may set on an Anthropic provider."""

    model_config = ConfigDict(extra="forbid")

    default_max_tokens: int = Field(default=4096, ge=1, description="when a line names no max_tokens")
    max_requests_per_batch: int = Field(default=100_000, ge=1, le=100_000)
    max_batch_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)


class Part(BaseModel):
    first_line: int
    last_line: int
    start_byte: int
    requests: int


def _request(obj: dict[str, Any], number: int, options: AnthropicOptions) -> bytes:
    params = to_anthropic_params(obj["body"], default_max_tokens=options.default_max_tokens)
    return orjson.dumps({"custom_id": anthropic_custom_id(obj["custom_id"], number), "params": params})


def plan_parts(stream: BinaryIO, options: AnthropicOptions) -> tuple[list[LineProblem], list[Part]]:
    """Translate every line; returns the lines that cannot be translated, else the parts."""
    problems: list[LineProblem] = []
    parts: list[Part] = []
    size = 0
    with stream:
        for number, offset, raw in iter_line_spans(stream):
            try:
                request = _request(orjson.loads(raw), number, options)
            except UntranslatableRequest as exc:
                if len(problems) < MAX_RECORDED_PROBLEMS:
                    message = f"Line {number} cannot run on Anthropic: {exc.message}"
                    problems.append(LineProblem(code=exc.code, message=message, line=number, param=exc.param))
                continue
            needed = len(request) + len(SEPARATOR)
            if len(BODY_OPEN) + needed + len(BODY_CLOSE) > options.max_batch_bytes:
                problems.append(
                    LineProblem(
                        code="request_too_large",
                        message=f"Line {number} is larger than one Anthropic batch may be.",
                        line=number,
                    )
                )
                continue
            current = parts[-1] if parts else None
            if (
                current is None
                or current.requests >= options.max_requests_per_batch
                or size + needed > (options.max_batch_bytes - len(BODY_OPEN) - len(BODY_CLOSE))
            ):
                current = Part(first_line=number, last_line=number, start_byte=offset, requests=0)
                parts.append(current)
                size = 0
            current.last_line, current.requests = number, current.requests + 1
            size += needed
    return problems, parts


class PartBody:
    """The create body of one part, produced a slice at a time (blocking reads)."""

    def __init__(self, stream: BinaryIO, part: Part, options: AnthropicOptions) -> None:
        stream.seek(part.start_byte)
        self._stream = stream
        self._lines: Iterator[tuple[int, bytes]] = iter_lines(read_chunks(stream))
        self._part = part
        self._options = options
        self._started = self._finished = False

    def next_slice(self, most: int = 200) -> bytes:
        if self._finished:
            return b""
        out = bytearray()
        if not self._started:
            out += BODY_OPEN
        for offset, raw in self._lines:
            number = self._part.first_line + offset - 1
            if self._started:
                out += SEPARATOR
            self._started = True
            out += _request(orjson.loads(raw), number, self._options)
            if number >= self._part.last_line:
                break
            if (offset % most) == 0:
                return bytes(out)
        out += BODY_CLOSE
        self._finished = True
        self._stream.close()
        return bytes(out)

    def close(self) -> None:
        self._stream.close()
