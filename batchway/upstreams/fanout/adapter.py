"""The fan-out upstream: any OpenAI-compatible server that answers single requests (vLLM, Ollama, small
hosted APIs), as an *executed* upstream. batchway runs the batch's lines against it itself.

One instance per provider config in a worker process (one connection pool); its `UpstreamLimiter` is
shared by every instance that calls the same (base URL, key). Each line is retried here, in one place,
with the fan-out's per-line policy: 429s after the limiter's shared pause, 5xx, timeouts and connection
errors with capped exponential backoff. Whatever happens, a line ends as a `ResultLine`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from batchway import metrics
from batchway.upstreams.base import RequestLine
from batchway.upstreams.fanout.http_client import ShardedClient
from batchway.upstreams.fanout.limiter import LimiterConfig, UpstreamLimiter
from batchway.upstreams.result_line import UPSTREAM_UNREACHABLE, ResultLine

RETRYABLE_STATUS = frozenset({408, 409, 429})
UPSTREAM_TIMEOUT = "upstream_timeout"
UPSTREAM_RESPONSE_INVALID = "upstream_response_invalid"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
DEFAULT_COMPLETION_ESTIMATE = 256  # tokens a call is assumed to produce when it names no limit


class FanoutOptions(BaseModel):
    """What an operator may set on a fan-out provider; nothing is required (limits are discovered)."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="requests per minute, never exceeded")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute, never exceeded")
    max_concurrency: int | None = Field(default=None, ge=1, description="calls in flight at most")
    max_attempts: int = Field(default=6, ge=1, le=50, description="tries per line before it fails")
    # A 429 says "not now", not "this line is bad": the limiter slows everyone down and the line waits
    # its turn. Only an upstream that refuses a line this often fails it (cancel and the completion
    # window end the wait sooner).
    max_rate_limited: int = Field(
        default=100, ge=1, le=10_000, description="429 answers a line may get before it fails"
    )


@dataclass
class Dispatch:
    """Shared by the lines a chunk runs: `stop` ends sending (lines not yet sent are not executed);
    `sent` holds the lines whose request went out and whose result is not stored yet (the chunk removes
    them as it stores them), so a retried chunk knows which of its lines it sends a second time."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: set[int] = field(default_factory=set)


def estimated_tokens(body: dict[str, Any], body_bytes: int) -> int:
    """A call's tokens before its answer says: ~4 bytes a prompt token, plus the completion it may get."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    completion = limit if isinstance(limit, int) and limit > 0 else DEFAULT_COMPLETION_ESTIMATE
    return body_bytes // 4 + completion


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class FanoutUpstream:
    style: Literal["executed"] = "executed"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        options: FanoutOptions,
        limiter: UpstreamLimiter,
        timeout_seconds: float,
        max_connections: int,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.options = options
        self.limiter = limiter
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        # As many connections as calls the limiter may let through: a call waiting for a connection
        # inside the client would make the limiter's picture of the upstream optimistic.
        self.client = ShardedClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds, connect=10.0),
            max_connections=max_connections,
        )

    @staticmethod
    def limiter_config(options: FanoutOptions, share: float) -> LimiterConfig:
        """Explicit limits, scaled to this worker's share when several workers run fan-outs."""

        def part(limit: int | None) -> int | None:
            return None if limit is None else max(1, int(limit * share))

        return LimiterConfig(
            rpm=part(options.rpm), tpm=part(options.tpm), max_concurrency=options.max_concurrency
        )

    def url_for(self, endpoint: str) -> str:
        """`base_url` names the API root (`.../v1`, as the OpenAI SDK takes it); lines name `/v1/...`."""
        return self.base_url + endpoint.removeprefix("/v1")

    async def execute(self, request: RequestLine, dispatch: Dispatch | None = None) -> ResultLine | None:
        """Run one line to its end; None if `dispatch.stop` was set before its request went out."""
        dispatch = dispatch or Dispatch()
        payload = orjson.dumps(request.body)
        url = self.url_for(request.url)
        estimate = estimated_tokens(request.body, len(payload))
        last: ResultLine | None = None
        attempt = rate_limited = 0  # tries that failed otherwise; 429s
        while attempt < self.options.max_attempts and rate_limited < self.options.max_rate_limited:
            if last is not None and not await self._backoff(attempt, last, dispatch):
                return last
            if dispatch.stop.is_set():
                return None
            permit = await self.limiter.acquire(estimate)
            if dispatch.stop.is_set():  # stopped while waiting for a slot: never sent
                permit.release()
                return None
            dispatch.sent.add(request.line)
            started = time.monotonic()
            try:
                with metrics.timed_upstream_call("fanout", request.url):
                    response = await self.client.post(url, content=payload)
            except httpx.TimeoutException as exc:
                permit.done(None, None)
                last = ResultLine.unexecuted(
                    request.custom_id, UPSTREAM_TIMEOUT, f"The upstream timed out: {exc}."
                )
                attempt += 1
                continue
            except httpx.HTTPError as exc:
                permit.done(None, None)
                last = ResultLine.unexecuted(
                    request.custom_id, UPSTREAM_UNREACHABLE, f"The upstream could not be reached: {exc!r}."
                )
                attempt += 1
                continue
            except BaseException:
                permit.done(None, None)
                raise
            latency_ms = int((time.monotonic() - started) * 1000)
            if response.status_code == 429:
                metrics.UPSTREAM_RATE_LIMITED.labels("fanout").inc()
                rate_limited += 1
            else:
                attempt += 1
            last = self._result(request, response, latency_ms)
            permit.done(response.status_code, response.headers, used_tokens=last.usage.total_tokens or None)
            if not self._retryable(response.status_code):
                return last
        return last

    @staticmethod
    def _retryable(status: int) -> bool:
        return status in RETRYABLE_STATUS or status >= 500

    async def _backoff(self, attempt: int, last: ResultLine | None, dispatch: Dispatch) -> bool:
        """Wait before the next try; False if the chunk stopped meanwhile. A 429 waits in the limiter
        (its shared pause honours retry-after), everything else backs off here."""
        if last is not None and last.status_code == 429:
            return not dispatch.stop.is_set()
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        delay *= 0.5 + random.random() / 2  # jitter: retries of one outage do not arrive together
        try:
            await asyncio.wait_for(dispatch.stop.wait(), timeout=delay)
        except TimeoutError:
            return True
        return False

    def _result(self, request: RequestLine, response: httpx.Response, latency_ms: int) -> ResultLine:
        request_id = response.headers.get("x-request-id")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            if 200 <= response.status_code < 300:
                return ResultLine.unexecuted(
                    request.custom_id,
                    UPSTREAM_RESPONSE_INVALID,
                    f"The upstream answered {response.status_code} with a body that is not a JSON object.",
                )
            body = _error_body(response.status_code, f"The upstream answered {response.status_code}.")
        try:
            return ResultLine.answered(
                request.custom_id, response.status_code, body, request_id=request_id, latency_ms=latency_ms
            )
        except ValueError as exc:  # an answer whose usage cannot be read
            return ResultLine.unexecuted(
                request.custom_id, UPSTREAM_RESPONSE_INVALID, f"Unreadable answer: {exc}."
            )

    async def aclose(self) -> None:
        await self.client.aclose()
