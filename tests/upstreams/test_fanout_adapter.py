"""The fan-out adapter over real HTTP: 429s wait their turn instead of using up a line's tries, other
failures are retried a bounded number of times, and its pooled client spreads calls over small pools."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from batchway.upstreams.base import RequestLine
from batchway.upstreams.fanout.adapter import FanoutOptions, FanoutUpstream
from batchway.upstreams.fanout.http_client import SHARD_CONNECTIONS, ShardedClient
from batchway.upstreams.fanout.limiter import UpstreamLimiter
from tests.servers import serve_in_thread

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class Script:
    """Answers calls in order from `statuses` (then 200), counting them; `delay` holds every answer."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses, self.delay, self.calls, self.in_flight, self.max_in_flight = statuses, delay, 0, 0, 0
        self.hold_until = 0

    async def answer(self, request: Request) -> JSONResponse:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            # Hold every answer until `hold_until` calls are in flight at once (or `delay` runs out), so
            # a test sees whether the client let them all out together, however slowly they connect.
            deadline = time.monotonic() + self.delay
            while self.in_flight < self.hold_until and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            status = self.statuses.pop(0) if self.statuses else 200
        finally:
            self.in_flight -= 1
        if status == 200:
            return JSONResponse(COMPLETION)
        # A 429 with a tiny retry-after, so the test does not wait the limiter's backoff.
        return JSONResponse({"error": {"message": "no", "type": "x"}}, status, {"retry-after-ms": "1"})


@pytest.fixture
def upstream() -> Iterator[tuple[Script, str]]:
    script = Script([])
    app = Starlette(routes=[Route("/v1/chat/completions", script.answer, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield script, url + "/v1"


def adapter(url: str, **options: int) -> FanoutUpstream:
    return FanoutUpstream(
        base_url=url,
        api_key="k",
        options=FanoutOptions(**options),
        limiter=UpstreamLimiter(None),
        timeout_seconds=5.0,
        max_connections=64,
    )


def line(n: int = 1) -> RequestLine:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return RequestLine(custom_id=f"c-{n}", line=n, url="/v1/chat/completions", body=body)


@pytest.mark.parametrize(
    ("statuses", "options", "status", "calls"),
    [
        ([429] * 10, {}, 200, 11),  # more 429s in a row than max_attempts (6): they wait, then an answer
        ([429] * 10, {"max_rate_limited": 3}, 429, 3),  # refused too often: fails with the 429
        ([503] * 10, {"max_attempts": 2}, 503, 2),  # server errors: max_attempts tries
    ],
    ids=["429s-wait-their-turn", "429s-bounded", "5xx-bounded"],
)
async def test_how_often_a_line_is_tried(upstream, statuses, options, status: int, calls: int) -> None:
    script, url = upstream
    script.statuses = list(statuses)
    fanout = adapter(url, **options)
    result = await fanout.execute(line())
    await fanout.aclose()
    assert result is not None and result.status_code == status and script.calls == calls


async def test_the_pooled_client_spreads_calls_over_small_pools(upstream) -> None:
    script, url = upstream
    script.delay, script.hold_until = 10.0, 40
    client = ShardedClient(headers={}, timeout=httpx.Timeout(15.0), max_connections=40)
    assert client.shards == 3 and client.max_connections >= 40  # pools of at most SHARD_CONNECTIONS
    assert 40 / client.shards <= SHARD_CONNECTIONS
    answers = await asyncio.gather(
        *(client.post(url + "/chat/completions", content=b"{}") for _ in range(40))
    )
    await client.aclose()
    assert [a.status_code for a in answers] == [200] * 40
    assert script.max_in_flight == 40  # every call ran at once: no pool made one wait
