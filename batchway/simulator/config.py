"""The simulator's settings: where it keeps state, the key it expects, and how fast things move."""

from pathlib import Path
from typing import Any, Literal, get_args

import pydantic

ChatEndpoint = Literal["/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses"]
CHAT_ENDPOINTS: tuple[ChatEndpoint, ...] = get_args(ChatEndpoint)
RetryAfterMode = Literal["both", "seconds", "none"]
FaultKind = Literal["reset", "timeout", "fail", "malformed"]
FAULT_KINDS: tuple[FaultKind, ...] = ("reset", "timeout", "fail", "malformed")  # precedence too


class SimulatorConfig(pydantic.BaseModel):
    """Settings shared by every simulated API (OpenAI Files + Batches, Anthropic Message Batches,
    the synchronous OpenAI-compatible API of `chat.py`).

    - `data_dir`: where files, batches and their state live; a new simulator on the same directory
      resumes everything by the clock.
    - `api_key`: the key every call must present. None accepts any key; objects are still scoped by
      the key presented, like an OpenAI project or an Anthropic workspace.
    - `validate_seconds`: how long an OpenAI batch stays `validating`. Anthropic batches start
      processing at once, as the real API does.
    - `lines_per_second`: how fast requests finish, one after another in input order (both APIs).
    - `cancel_seconds`: how long a cancel takes: OpenAI `cancelling`, Anthropic `canceling` (both APIs).
    - `window_seconds`: time from creation to expiry, 24 h upstream (both APIs).
    - `stall`: nothing progresses and nothing expires; cancel still works (both APIs).
    - `anthropic_max_requests`: most requests in one Anthropic batch (100,000 upstream).
    - `anthropic_max_body_bytes`: largest Anthropic create body (256 MB upstream), else 413.

    The synchronous API (`POST /v1/chat/completions`, `/v1/embeddings`, `/v1/completions`,
    `/v1/responses`; see `chat.py`):
    - `chat_latency_seconds`: how long every admitted call takes before it answers.
    - `chat_latency_jitter_seconds`: plus a uniform random extra in [0, jitter].
    - `chat_rpm`, `chat_tpm`: requests and tokens per minute, per API key, as token buckets that start
      full and refill continuously; None is unlimited. A call's tokens are its answer's
      `usage.total_tokens` (words, see `simulation.words`); error answers cost no tokens.
    - `chat_ratelimit_headers`: send `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the
      limits that are set, on every answer to a call that got as far as the limits (429s included).
    - `chat_retry_after`: on a rate-limit 429, send `retry-after` and `retry-after-ms` ("both"), only
      `retry-after` in whole seconds ("seconds"), or neither ("none").
    - `chat_max_concurrency`: most calls in flight at once; beyond it, 429 at once with code
      `concurrency_limit_exceeded` and no `retry-after` (nothing says when a slot frees). None: no cap.
    - `chat_unsupported_endpoints`: endpoints answering 404, like a server that does not serve them.
    - Faults, for every admitted call: `chat_<kind>_every` (every Nth call, counted from the last change
      of any fault setting or the last stats reset) and `chat_<kind>_rate` (that fraction of calls,
      drawn from a RNG seeded with `chat_fault_seed`), for kind in `fail` (answers
      `chat_fail_status`), `timeout` (hangs until the client gives up, at most `chat_hang_seconds`,
      then answers), `reset` (closes the connection without an answer) and `malformed` (200 with a
      truncated JSON body). The rates must add up to at most 1.

    Everything except `data_dir` and `api_key` can change at runtime via `POST /_simulator/config`.
    """

    data_dir: Path
    api_key: str | None = None
    validate_seconds: float = pydantic.Field(default=0.2, ge=0)
    lines_per_second: float = pydantic.Field(default=200.0, gt=0)
    cancel_seconds: float = pydantic.Field(default=0.3, ge=0)
    window_seconds: float = pydantic.Field(default=86400.0, gt=0)
    stall: bool = False
    anthropic_max_requests: int = pydantic.Field(default=100_000, ge=1)
    anthropic_max_body_bytes: int = pydantic.Field(default=256 * 1024 * 1024, ge=1)

    chat_latency_seconds: float = pydantic.Field(default=0.0, ge=0)
    chat_latency_jitter_seconds: float = pydantic.Field(default=0.0, ge=0)
    chat_rpm: int | None = pydantic.Field(default=None, ge=1)
    chat_tpm: int | None = pydantic.Field(default=None, ge=1)
    chat_ratelimit_headers: bool = True
    chat_retry_after: RetryAfterMode = "both"
    chat_max_concurrency: int | None = pydantic.Field(default=None, ge=1)
    chat_unsupported_endpoints: list[ChatEndpoint] = pydantic.Field(default_factory=list)
    chat_fail_every: int | None = pydantic.Field(default=None, ge=1)
    chat_fail_rate: float = pydantic.Field(default=0.0, ge=0, le=1)
    chat_fail_status: int = pydantic.Field(default=500, ge=500, le=599)
    chat_timeout_every: int | None = pydantic.Field(default=None, ge=1)
    chat_timeout_rate: float = pydantic.Field(default=0.0, ge=0, le=1)
    chat_hang_seconds: float = pydantic.Field(default=600.0, gt=0)
    chat_reset_every: int | None = pydantic.Field(default=None, ge=1)
    chat_reset_rate: float = pydantic.Field(default=0.0, ge=0, le=1)
    chat_malformed_every: int | None = pydantic.Field(default=None, ge=1)
    chat_malformed_rate: float = pydantic.Field(default=0.0, ge=0, le=1)
    chat_fault_seed: int = 0

    @pydantic.model_validator(mode="after")
    def _fault_rates_fit(self) -> "SimulatorConfig":
        # Each call draws one number and the rates split [0, 1) between the kinds.
        if sum(getattr(self, f"chat_{kind}_rate") for kind in FAULT_KINDS) > 1:
            raise ValueError("the chat_*_rate fault rates add up to more than 1")
        return self


class ConfigUpdate(pydantic.BaseModel):
    """Body of `POST /_simulator/config`: only the runtime knobs, never data_dir or api_key.

    Only the keys present change; an explicit null sets a nullable knob (e.g. `chat_rpm`) to None."""

    model_config = pydantic.ConfigDict(extra="forbid")

    validate_seconds: float | None = None
    lines_per_second: float | None = None
    cancel_seconds: float | None = None
    window_seconds: float | None = None
    stall: bool | None = None
    anthropic_max_requests: int | None = None
    anthropic_max_body_bytes: int | None = None

    chat_latency_seconds: float | None = None
    chat_latency_jitter_seconds: float | None = None
    chat_rpm: int | None = None
    chat_tpm: int | None = None
    chat_ratelimit_headers: bool | None = None
    chat_retry_after: RetryAfterMode | None = None
    chat_max_concurrency: int | None = None
    chat_unsupported_endpoints: list[ChatEndpoint] | None = None
    chat_fail_every: int | None = None
    chat_fail_rate: float | None = None
    chat_fail_status: int | None = None
    chat_timeout_every: int | None = None
    chat_timeout_rate: float | None = None
    chat_hang_seconds: float | None = None
    chat_reset_every: int | None = None
    chat_reset_rate: float | None = None
    chat_malformed_every: int | None = None
    chat_malformed_rate: float | None = None
    chat_fault_seed: int | None = None

    def validated_changes(self, config: SimulatorConfig) -> dict[str, Any]:
        """The knobs to change, validated as part of the whole config (pydantic.ValidationError if not)."""
        changes = self.model_dump(exclude_unset=True)
        validated = SimulatorConfig.model_validate({**config.model_dump(), **changes})
        return {name: getattr(validated, name) for name in changes}
