"""An in-process simulated rate-limited upstream, a virtual-time event loop, and a driver that pushes
lines through an `UpstreamLimiter` the way the fan-out executor does. Used by `test_limiter.py` and
`bench/limiter_sim.py`.

`FakeBucketUpstream` is a token bucket like a hosted provider's: `capacity` requests, starting full,
refilling continuously at `rate` per second. A call takes a token when it *arrives* (an answer then
comes `latency` seconds later); with no token it is answered 429. What it says about its budget is
chosen by `headers`:
- "full": `x-ratelimit-{limit,remaining,reset}-requests` (and `-tokens` when it meters tokens) on
  every answer, plus `retry-after-ms`/`retry-after` on a 429 (like OpenAI);
- "retry-after": only `retry-after-ms` and `retry-after` (whole seconds, rounded up) on a 429;
- "retry-after-s": only `retry-after` in whole seconds on a 429;
- "none": a bare 429.

`VirtualTimeLoop` is an asyncio loop whose clock jumps straight to the next timer when nothing is
ready, so a 40-second scenario runs in a fraction of a second and does not depend on the machine's
load. It runs no real I/O (only the loop's own self-pipe).
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from batchway.upstreams.fanout.limiter import UpstreamLimiter

HeaderMode = Literal["full", "retry-after", "retry-after-s", "none"]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------
# Virtual time


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls without blocking, then moves the virtual clock forward by the timeout it was asked to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:
            raise RuntimeError("virtual-time loop would wait forever: nothing is scheduled (deadlock)")
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on a fresh virtual-time loop and return its result."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


# ---------------------------------------------------------------------------------------------------
# The simulated upstream


@dataclass
class UpstreamCounters:
    calls: int = 0
    ok: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    accepted_at: list[float] = field(default_factory=list)  # arrival time of every call that got a token


class FakeBucketUpstream:
    def __init__(
        self,
        *,
        rate: float,
        capacity: float,
        latency: float,
        headers: HeaderMode = "full",
        clock: Callable[[], float],
        reject_latency: float | None = None,
        token_rate: float | None = None,
        token_capacity: float | None = None,
        jitter: float = 0.0,
        seed: int = 1,
    ) -> None:
        self.rate, self.capacity, self.latency = rate, capacity, latency
        self.jitter = jitter  # each latency is scaled by a factor in [1 - jitter, 1 + jitter]
        self._random = random.Random(seed)
        self.reject_latency = latency if reject_latency is None else reject_latency
        self.headers = headers
        self.clock = clock
        self.counters = UpstreamCounters()
        self._requests = _Bucket(rate, capacity, clock())
        self._tokens = _Bucket(token_rate, token_capacity, clock()) if token_rate and token_capacity else None

    async def call(self, tokens: int = 0) -> tuple[int, dict[str, str]]:
        """One request: (status, headers), after the latency."""
        now = self.clock()
        counters = self.counters
        counters.calls += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        admitted = self._requests.level(now) >= 1 and (
            self._tokens is None or self._tokens.level(now) >= tokens
        )
        if admitted:
            self._requests.take(1)
            if self._tokens is not None:
                self._tokens.take(tokens)
            counters.ok += 1
            counters.accepted_at.append(now)
        else:
            counters.rate_limited += 1
        headers = self._answer_headers(admitted, tokens)
        try:
            latency = self.latency if admitted else self.reject_latency
            if self.jitter:
                latency *= 1 + self.jitter * (2 * self._random.random() - 1)
            await asyncio.sleep(latency)
        finally:
            counters.in_flight -= 1
        return (200 if admitted else 429), headers

    def _answer_headers(self, admitted: bool, tokens: int) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.headers == "full":
            headers.update(self._requests.headers("requests"))
            if self._tokens is not None:
                headers.update(self._tokens.headers("tokens"))
        if admitted or self.headers == "none":
            return headers
        wait = self._requests.seconds_until(1)
        if self._tokens is not None:
            wait = max(wait, self._tokens.seconds_until(tokens))
        if self.headers in ("full", "retry-after"):
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        return headers


class _Bucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.at = capacity, now

    def level(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return self.tokens

    def take(self, amount: float) -> None:
        self.tokens -= amount

    def seconds_until(self, amount: float) -> float:
        return max(0.0, (amount - self.tokens) / self.rate)

    def headers(self, kind: str) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{kind}": str(int(self.capacity)),
            f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(self.tokens))),
            f"x-ratelimit-reset-{kind}": go_duration((self.capacity - self.tokens) / self.rate),
        }


def go_duration(seconds: float) -> str:
    """Format like OpenAI does: `12ms`, `17.28s`, `6m0s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 2), 60)
    rest_text = f"{rest:.2f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"


# ---------------------------------------------------------------------------------------------------
# The driver


@dataclass
class RunResult:
    elapsed: float
    lines: int
    calls: int
    rate_limited: int
    # 429s to calls started after the first 429 came back: what the client could have avoided (the
    # calls already on the wire when an upstream with no budget headers first refuses cannot be).
    rate_limited_later: int = 0

    @property
    def rate_limited_share(self) -> float:
        return self.rate_limited / self.calls if self.calls else 0.0


class OutcomeCounter:
    """Counts calls and 429s for a `RunResult`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.calls = self.rate_limited = self.rate_limited_later = 0
        self.first_refusal_at = math.inf

    def count(self, status: int, started_at: float) -> None:
        self.calls += 1
        if status == 429:
            self.rate_limited += 1
            self.rate_limited_later += started_at > self.first_refusal_at
            self.first_refusal_at = min(self.first_refusal_at, self.clock())

    def result(self, *, elapsed: float, lines: int) -> RunResult:
        return RunResult(elapsed, lines, self.calls, self.rate_limited, self.rate_limited_later)


async def run_lines(
    limiter: UpstreamLimiter,
    call: Callable[[], Awaitable[tuple[int, dict[str, str]]]],
    *,
    lines: int,
    workers: int = 300,
    clock: Callable[[], float],
    estimated_tokens: int = 0,
    used_tokens: int | None = None,
) -> RunResult:
    """Run `lines` lines through `limiter` from a pool of workers, retrying a line after each 429."""
    todo = deque(range(lines))
    outcomes = OutcomeCounter(clock)
    started = clock()

    async def worker() -> None:
        while todo:
            todo.popleft()
            while True:
                permit = await limiter.acquire(estimated_tokens)
                status, headers = await call()
                permit.done(status, headers, used_tokens if status == 200 else None)
                outcomes.count(status, permit.sent_at)
                if status != 429:
                    break

    await asyncio.gather(*(worker() for _ in range(min(workers, lines))))
    return outcomes.result(elapsed=clock() - started, lines=lines)


def ideal_seconds(*, lines: int, rate: float, capacity: float, latency: float) -> float:
    """The time the bucket needs to admit every line (0 if they all fit), plus the last call's latency."""
    return max(0.0, (lines - capacity) / rate) + latency
