"""Routes of the simulated synchronous OpenAI-compatible API: what batchway's fan-out mode calls on
servers without a batch API (vLLM, Ollama, small hosted APIs).

`POST /v1/chat/completions`, `/v1/embeddings`, `/v1/completions`, `/v1/responses` answer like one
batch line would (`lines.simulate_line`: deterministic "echo: ..." bodies with usage, and
`SIMULATE_ERROR_<status>` in the body fails with that status). The official `openai` SDK works
against it unchanged. Auth is bearer, like the other OpenAI routes. `stream: true` is a 400.

A call goes through, in order: unsupported endpoint (404), auth (401), body (400), the concurrency
cap (429 `concurrency_limit_exceeded`, nothing taken from the buckets), the rate-limit buckets
(`rate_limits.py`, 429 `rate_limit_exceeded`), then, admitted, its injected fault (`chat_faults.py`),
the configured latency, and its answer. Test hooks: `GET /_simulator/chat/stats?window=<seconds>`
(`chat_stats.py`), `DELETE /_simulator/chat/stats`. See `SimulatorConfig` for the knobs.
"""

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from batchway.simulator.chat_faults import FaultPlan
from batchway.simulator.chat_stats import ChatStats, body_fingerprint
from batchway.simulator.config import CHAT_ENDPOINTS, SimulatorConfig
from batchway.simulator.connection_drop import DropConnection
from batchway.simulator.errors import OpenAIError
from batchway.simulator.lines import simulate_line
from batchway.simulator.openai_common import openai_caller, read_json_body
from batchway.simulator.rate_limits import (
    Admission,
    BucketState,
    LimitKind,
    RateLimiter,
    go_duration,
    ratelimit_headers,
    retry_after_headers,
)
from batchway.simulator.responses import json_response

ROUTE_NAMES = {  # keys in `GET /_simulator/calls` (under "openai")
    "/v1/chat/completions": "chat.completions",
    "/v1/embeddings": "embeddings",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
}
_PER_MINUTE = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """OpenAI's error envelope, plus headers (rate-limit state, retry-after)."""
    error = OpenAIError(
        status,
        message,
        type=type or ("server_error" if status >= 500 else "invalid_request_error"),
        param=param,
        code=code,
    )
    response = json_response(error.envelope(), status)
    response.headers.update(headers or {})
    return response


def _rate_limited(admission: Admission, model: Any, cost: int, headers: dict[str, str]) -> Response:
    kind: LimitKind = admission.limited_by or "requests"
    state = admission.states[kind]
    requested = 1 if kind == "requests" else cost
    if admission.retry_after is None:
        limit = f"Limit {state.limit}, Requested {cost}"
        message = f"Request too large for {model} on {_PER_MINUTE[kind]}: {limit}."
    else:
        message = (
            f"Rate limit reached for {model} on {_PER_MINUTE[kind]}: Limit {state.limit}, "
            f"Remaining {state.remaining}, Requested {requested}. "
            f"Please try again in {go_duration(admission.retry_after)}."
        )
    return error_response(429, message, type=kind, code="rate_limit_exceeded", headers=headers)


async def _client_stays(request: Request, seconds: float) -> bool:
    """Wait up to `seconds` for the client to hang up; True if it is still there after them."""
    try:
        async with asyncio.timeout(seconds):
            # Once the body is read, the server's `receive` only returns when the client disconnects.
            while (await request.receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return True
    return False


class ChatUpstream:
    """The synchronous API's state: rate-limit buckets, fault numbering, counters."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.limiter = RateLimiter()
        self.faults = FaultPlan()
        self.stats = ChatStats()
        self._caller = openai_caller(config)
        self._jitter = random.Random(config.chat_fault_seed)
        self._ids = f"chat-{secrets.token_hex(4)}"  # answer ids differ per call and per simulator
        self._sequence = 0

    async def handle(self, endpoint: str, request: Request) -> Response:
        self.stats.call(endpoint)
        response = await self._answer(endpoint, request)  # DropConnection: no answer to count
        self.stats.answer(response.status_code)
        return response

    async def _answer(self, endpoint: str, request: Request) -> Response:
        config = self.config
        if endpoint in config.chat_unsupported_endpoints:
            return error_response(404, f"Invalid URL (POST {endpoint})")  # as the app's own 404
        try:
            owner = self._caller(request)
            body = await read_json_body(request)
        except OpenAIError as exc:
            return exc.response("")
        fingerprint = body_fingerprint(body)
        self.stats.body(fingerprint)
        if body.get("stream"):
            return error_response(400, "This server does not stream: send 'stream': false.", param="stream")
        status, answer, cost = self._compute(endpoint, body)

        now = time.monotonic()
        cap = config.chat_max_concurrency
        if cap is not None and self.stats.in_flight >= cap:
            self.stats.limited("concurrency")
            headers = self._limit_headers(self.limiter.peek(owner, config.chat_rpm, config.chat_tpm, now))
            return error_response(
                429,
                f"Too many concurrent requests: at most {cap} in flight. Please try again later.",
                type="requests",
                code="concurrency_limit_exceeded",
                headers=headers,
            )
        admission = self.limiter.admit(owner, config.chat_rpm, config.chat_tpm, cost, now)
        headers = self._limit_headers(admission.states)
        if not admission.admitted:
            self.stats.limited(admission.limited_by or "requests")
            headers |= retry_after_headers(admission.retry_after, config.chat_retry_after)
            return _rate_limited(admission, body.get("model"), cost, headers)

        self.stats.enter(now)
        try:
            return await self._admitted(request, status, answer, headers, fingerprint)
        finally:
            self.stats.leave()

    async def _admitted(
        self, request: Request, status: int, answer: dict[str, Any], headers: dict[str, str], fingerprint: str
    ) -> Response:
        config = self.config
        fault = self.faults.next_fault(config)
        if fault is not None:
            self.stats.fault(fault)
        delay = config.chat_latency_seconds
        if config.chat_latency_jitter_seconds:
            delay += self._jitter.uniform(0, config.chat_latency_jitter_seconds)
        if delay > 0:
            await asyncio.sleep(delay)  # thousands of waiting calls cost nothing but a timer each

        if fault == "reset":
            raise DropConnection
        if fault == "timeout" and not await _client_stays(request, config.chat_hang_seconds):
            raise DropConnection  # the client gave up; nobody is left to answer
        if fault == "fail":
            return error_response(
                config.chat_fail_status,
                "The server had an error while processing your request. Sorry about that!",
                headers=headers,
            )
        payload = orjson.dumps(answer)
        if fault == "malformed":
            payload = payload[: len(payload) // 2]  # valid HTTP, broken JSON
        elif status == 200:
            self.stats.answered_ok(fingerprint, time.monotonic())
        return Response(payload, status, headers=headers, media_type="application/json")

    def _compute(self, endpoint: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], int]:
        """(status, body, tokens) of the answer, computed as for a batch line of the same request."""
        line = orjson.dumps({"custom_id": "sync", "method": "POST", "url": endpoint, "body": body})
        self._sequence += 1
        result = simulate_line(line, self._sequence, endpoint, self._ids, int(time.time()))
        response = result.line["response"]
        return response["status_code"], response["body"], result.input_tokens + result.output_tokens

    def _limit_headers(self, states: dict[LimitKind, BucketState]) -> dict[str, str]:
        return ratelimit_headers(states) if self.config.chat_ratelimit_headers else {}


def create_chat_router(chat: ChatUpstream) -> APIRouter:
    router = APIRouter()

    def route(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            return await chat.handle(endpoint, request)

        return answer

    for endpoint in CHAT_ENDPOINTS:
        router.add_api_route(endpoint, route(endpoint), methods=["POST"], name=ROUTE_NAMES[endpoint])
    return router


def create_chat_control_router(chat: ChatUpstream) -> APIRouter:
    """Test hooks (no auth): the counters, and resetting them (which restarts fault numbering too)."""
    router = APIRouter(prefix="/_simulator/chat")

    @router.get("/stats")
    async def get_stats(window: float = Query(60.0, gt=0), by_body: bool = False) -> Response:
        return json_response(chat.stats.snapshot(window, by_body))

    @router.delete("/stats")
    async def reset_stats() -> Response:
        chat.stats.reset()
        chat.faults.restart()
        return json_response(chat.stats.snapshot(60.0))

    return router
