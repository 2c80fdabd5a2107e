"""`ResultLine`: the one normalized record of how one batch line ended, whichever upstream ran it.

Adapters produce it (from an OpenAI result line, an Anthropic result, or a live call); everything
after consumes it: the output and error files, the request log, the batch totals, usage and scoring.
It never crosses Temporal (it carries response bodies).

A line ended in one of two ways, as in OpenAI's error file (contract §2.8):
- the upstream answered over HTTP: `status_code` and `body` (the endpoint's response body, or its
  error envelope for a non-2xx answer) are set, `error` is None;
- it never got an HTTP answer (cancelled, expired, unreachable, unreadable): `error` is set and
  `status_code`/`body` are None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Codes of lines that never got an HTTP answer (the `error.code` of an error-file line).
BATCH_CANCELLED = "batch_cancelled"
BATCH_EXPIRED = "batch_expired"
BATCH_FAILED = "batch_failed"
UPSTREAM_RESULT_UNREADABLE = "upstream_result_unreadable"
UPSTREAM_RESULT_MISSING = "upstream_result_missing"
UPSTREAM_UNREACHABLE = "upstream_unreachable"

UNEXECUTED_MESSAGES = {
    BATCH_CANCELLED: "This request was cancelled before it could be executed.",
    BATCH_EXPIRED: "This request could not be executed before the completion window expired.",
    BATCH_FAILED: "The batch failed before this request could be executed.",
    UPSTREAM_RESULT_UNREADABLE: "The upstream's result for this request could not be read.",
    UPSTREAM_RESULT_MISSING: "The upstream returned no result for this request.",
}


class UnreadableResult(ValueError):
    """An upstream result that cannot be normalized. `custom_id` is set when at least that was readable,
    so the line can still end as an error line of its own."""

    def __init__(self, reason: str, custom_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.custom_id = custom_id


def _count(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnreadableResult(f"{name} is not a non-negative integer")
    return value


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_body(cls, body: Any) -> Usage:
        """Usage of an OpenAI response body (chat/completions/embeddings `prompt_tokens`... or responses
        `input_tokens`...). Missing means zero; a present value that is not a count is unreadable."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if usage is None:
            return cls()
        if not isinstance(usage, dict):
            raise UnreadableResult("usage is not an object")
        prompt_key = "prompt_tokens" if "prompt_tokens" in usage else "input_tokens"
        completion_key = "completion_tokens" if "completion_tokens" in usage else "output_tokens"
        prompt = _count(usage.get(prompt_key), f"usage.{prompt_key}")
        completion = _count(usage.get(completion_key), f"usage.{completion_key}")
        total = usage.get("total_tokens")
        prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        completion_details = (
            usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
        )
        if not isinstance(prompt_details, dict) or not isinstance(completion_details, dict):
            raise UnreadableResult("usage details are not objects")
        return cls(
            input_tokens=prompt,
            output_tokens=completion,
            total_tokens=prompt + completion if total is None else _count(total, "usage.total_tokens"),
            cached_tokens=_count(prompt_details.get("cached_tokens"), "usage cached_tokens"),
            reasoning_tokens=_count(completion_details.get("reasoning_tokens"), "usage reasoning_tokens"),
        )

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens


@dataclass(slots=True)
class LineError:
    code: str
    message: str


@dataclass(slots=True)
class ResultLine:
    custom_id: str
    status_code: int | None = None
    body: dict[str, Any] | None = None
    error: LineError | None = None
    usage: Usage = field(default_factory=Usage)
    latency_ms: int | None = None
    request_id: str | None = None  # the upstream's id for the request, when it gave one
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def error_code(self) -> str | None:
        """`error.code` for a line with no answer; the error body's code (or type) for a non-2xx one."""
        if self.error is not None:
            return self.error.code
        if self.ok:
            return None
        inner = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(inner, dict):
            code = inner.get("code") or inner.get("type")
            return str(code) if code is not None else None
        return None

    @classmethod
    def unexecuted(cls, custom_id: str, code: str, message: str | None = None) -> ResultLine:
        return cls(custom_id, error=LineError(code, message or UNEXECUTED_MESSAGES.get(code, code)))

    @classmethod
    def answered(
        cls,
        custom_id: str,
        status_code: int,
        body: dict[str, Any],
        *,
        request_id: str | None = None,
        latency_ms: int | None = None,
    ) -> ResultLine:
        """A line the upstream answered with `body`; usage is read from a 2xx body."""
        ok = 200 <= status_code < 300
        model = body.get("model") if ok else None
        return cls(
            custom_id,
            status_code=status_code,
            body=body,
            usage=Usage.from_body(body) if ok else Usage(),
            latency_ms=latency_ms,
            request_id=request_id,
            model=model if isinstance(model, str) else None,
        )

    @classmethod
    def from_openai_line(cls, obj: Any) -> ResultLine:
        """Normalize one line of an OpenAI batch output or error file; `UnreadableResult` if it is not
        one (with `custom_id` set when that much could be read)."""
        if not isinstance(obj, dict):
            raise UnreadableResult("the line is not a JSON object")
        custom_id = obj.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise UnreadableResult("custom_id is not a string")
        try:
            return cls._from_openai_fields(custom_id, obj.get("response"), obj.get("error"))
        except UnreadableResult as exc:
            raise UnreadableResult(exc.reason, custom_id) from None

    @classmethod
    def _from_openai_fields(cls, custom_id: str, response: Any, error: Any) -> ResultLine:
        if error is not None:
            if not isinstance(error, dict):
                raise UnreadableResult("error is not an object")
            code, message = error.get("code"), error.get("message")
            if not isinstance(code, str) or not code:
                raise UnreadableResult("error.code is not a string")
            return cls.unexecuted(custom_id, code, message if isinstance(message, str) else None)
        if not isinstance(response, dict):
            raise UnreadableResult("the line has neither a response nor an error")
        status, body = response.get("status_code"), response.get("body")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise UnreadableResult("response.status_code is not an HTTP status")
        if not isinstance(body, dict):
            raise UnreadableResult("response.body is not an object")
        request_id = response.get("request_id")
        return cls.answered(
            custom_id, status, body, request_id=request_id if isinstance(request_id, str) else None
        )

    def output_line(self, line_id: str) -> dict[str, Any]:
        """This line in OpenAI's output/error file format, under batchway's own line id."""
        if self.error is not None:
            return {
                "id": line_id,
                "custom_id": self.custom_id,
                "response": None,
                "error": {"code": self.error.code, "message": self.error.message},
            }
        return {
            "id": line_id,
            "custom_id": self.custom_id,
            "response": {"status_code": self.status_code, "request_id": self.request_id, "body": self.body},
            "error": None,
        }
