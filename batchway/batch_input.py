"""What a batch input file must be, checked line by line while it streams past.

Two levels of problem:
- `InputFileError`: the bytes are not JSONL at all (not UTF-8, blank line, invalid JSON, not an
  object, too many lines, empty). An upload with one of these is refused outright.
- `LineProblem`: the JSON is fine but the line cannot run in a batch (missing or duplicate
  `custom_id`, method, url, model). These depend on the batch (its endpoint), so they are kept in
  the scan and reported when a batch is created from the file, and again by the workflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson
from pydantic import BaseModel

from batchway.jsonl import LineTooLong, iter_line_spans, iter_lines

MAX_RECORDED_PROBLEMS = 100
# `\u0000` in JSON text, not preceded by an escaping backslash (`\\u0000` is the literal text).
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# Two distinct models or urls already make a file unusable; a few more keep messages useful while
# the stored scan stays small whatever the file holds.
MAX_DISTINCT_VALUES = 8
# Longest strings a scan keeps or a batch line may name (OpenAI documents 512 for custom_id).
MAX_CUSTOM_ID_CHARS = 512
MAX_MODEL_CHARS = 256
MAX_URL_CHARS = 256


class InputFileError(Exception):
    def __init__(self, message: str, *, code: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.line = line


class LineProblem(BaseModel):
    code: str
    message: str
    line: int | None = None
    param: str | None = None


class InputScan(BaseModel):
    line_count: int = 0
    first_line_by_url: dict[str, int] = {}
    first_line_by_model: dict[str, int] = {}
    problems: list[LineProblem] = []

    @property
    def model(self) -> str | None:
        return next(iter(self.first_line_by_model), None)

    def problems_for(self, endpoint: str) -> list[LineProblem]:
        """Every reason this file cannot run as a batch on `endpoint`, first line first."""
        found = list(self.problems)
        for url, line in self.first_line_by_url.items():
            if url != endpoint:
                found.append(
                    LineProblem(
                        code="url_mismatch",
                        message=f"The url '{url}' on line {line} does not match the batch endpoint "
                        f"'{endpoint}'.",
                        line=line,
                        param="url",
                    )
                )
        if len(self.first_line_by_model) > 1:
            (first_model, _), (other_model, line) = sorted(
                self.first_line_by_model.items(), key=lambda item: item[1]
            )[:2]
            found.append(
                LineProblem(
                    code="model_mismatch",
                    message=(
                        f"Line {line} uses model '{other_model}' but earlier lines use '{first_model}'; "
                        "each batch input file can only include requests to a single model."
                    ),
                    line=line,
                    param="body.model",
                )
            )
        if self.line_count == 0:
            found.append(LineProblem(code="empty_file", message="The input file has no requests."))
        return sorted(found, key=lambda p: p.line or 0)[:MAX_RECORDED_PROBLEMS]


class InputScanner:
    def __init__(self, max_lines: int, max_line_bytes: int | None = None) -> None:
        self.max_lines = max_lines
        self.max_line_bytes = max_line_bytes
        self._scan = InputScan()
        self._custom_ids: set[str] = set()

    def scan(self, chunks: Iterable[bytes]) -> InputScan:
        """Check every line of a whole file given as byte chunks."""
        try:
            for number, line in iter_lines(chunks, self.max_line_bytes):
                self.feed(number, line)
        except LineTooLong as exc:
            raise InputFileError(str(exc), code="line_too_long", line=exc.line) from None
        return self.finish()

    def feed(self, number: int, raw: bytes) -> None:
        if not raw or raw.isspace():
            raise InputFileError(f"Line {number} is blank.", code="invalid_json_line", line=number)
        try:
            obj = orjson.loads(raw)  # also rejects invalid UTF-8
        except orjson.JSONDecodeError:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    f"Line {number} is not valid UTF-8 (byte offset {exc.start} in the line).",
                    code="invalid_encoding",
                    line=number,
                ) from None
            raise InputFileError(
                f"Line {number} is not parseable as valid JSON.", code="invalid_json_line", line=number
            ) from None
        if b"\\u0000" in raw and NUL_ESCAPE.search(raw):  # valid JSON, but no database stores a NUL
            raise InputFileError(
                f"Line {number} contains a NUL character (\\u0000), which is not supported.",
                code="invalid_json_line",
                line=number,
            )
        if not isinstance(obj, dict):
            raise InputFileError(
                f"Line {number} is not a JSON object.", code="invalid_json_line", line=number
            )
        self._scan.line_count += 1
        if self._scan.line_count > self.max_lines:
            raise InputFileError(
                f"The file has more than {self.max_lines} lines, the most one batch can hold.",
                code="too_many_tasks",
                line=number,
            )
        self._check_request(number, obj)

    def _problem(self, code: str, message: str, line: int, param: str) -> None:
        if len(self._scan.problems) < MAX_RECORDED_PROBLEMS:
            self._scan.problems.append(LineProblem(code=code, message=message, line=line, param=param))

    def _too_long(self, number: int, field: str, value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            raise InputFileError(
                f"Line {number} has a '{field}' longer than {limit} characters.",
                code="field_too_long",
                line=number,
            )

    def _check_request(self, number: int, obj: dict[str, Any]) -> None:
        body = obj.get("body")
        self._too_long(number, "custom_id", obj.get("custom_id"), MAX_CUSTOM_ID_CHARS)
        self._too_long(number, "url", obj.get("url"), MAX_URL_CHARS)
        self._too_long(
            number, "body.model", body.get("model") if isinstance(body, dict) else None, MAX_MODEL_CHARS
        )
        custom_id = obj.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            self._problem(
                "missing_custom_id", f"Line {number} has no string 'custom_id'.", number, "custom_id"
            )
        elif custom_id in self._custom_ids:
            self._problem(
                "duplicate_custom_id",
                f"The custom_id '{custom_id}' on line {number} is used on an earlier line; "
                "custom_id must be unique within a batch.",
                number,
                "custom_id",
            )
        else:
            self._custom_ids.add(custom_id)
        if obj.get("method") != "POST":
            self._problem("invalid_method", f'Line {number} must have "method": "POST".', number, "method")
        url = obj.get("url")
        if not isinstance(url, str):
            self._problem("missing_url", f"Line {number} has no string 'url'.", number, "url")
        else:
            if len(self._scan.first_line_by_url) < MAX_DISTINCT_VALUES:
                self._scan.first_line_by_url.setdefault(url, number)
        body = obj.get("body")
        if not isinstance(body, dict):
            self._problem("invalid_body", f"Line {number} has no JSON object 'body'.", number, "body")
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._problem("missing_model", f"Line {number} has no 'body.model'.", number, "body.model")
        else:
            if len(self._scan.first_line_by_model) < MAX_DISTINCT_VALUES:
                self._scan.first_line_by_model.setdefault(model, number)
        if body.get("stream"):
            self._problem(
                "streaming_unsupported",
                f"Line {number} asks for streaming, which batches do not support.",
                number,
                "body.stream",
            )

    def finish(self) -> InputScan:
        if self._scan.line_count == 0:
            raise InputFileError("The file is empty.", code="empty_file")
        return self._scan


@dataclass(frozen=True, slots=True)
class LineSpan:
    """Where one request sits in a stored input file."""

    line: int
    offset: int
    length: int


class InputIndex:
    """Where each custom_id is in a stored input file (a file that passed the scan has unique ids)."""

    def __init__(self, spans: dict[str, LineSpan]) -> None:
        self.spans = spans
        self._by_line: dict[int, str] | None = None

    def __len__(self) -> int:
        return len(self.spans)

    def __contains__(self, custom_id: object) -> bool:
        return custom_id in self.spans

    def span_of(self, custom_id: str) -> LineSpan | None:
        return self.spans.get(custom_id)

    def line_of(self, custom_id: str) -> int | None:
        span = self.spans.get(custom_id)
        return span.line if span else None

    def custom_id_at(self, line: int) -> str | None:
        if self._by_line is None:
            self._by_line = {span.line: custom_id for custom_id, span in self.spans.items()}
        return self._by_line.get(line)


def read_index(stream: BinaryIO) -> InputIndex:
    """Index a stored input file (blocking; it parses every line)."""
    with stream:
        return InputIndex(
            {
                orjson.loads(raw)["custom_id"]: LineSpan(number, offset, len(raw))
                for number, offset, raw in iter_line_spans(stream)
                if raw.strip()
            }
        )
