"""What an operator may set on an `UpstreamLimiter`, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LimiterConfig:
    rpm: int | None = None  # explicit caps, never exceeded when set: calls in any 60 s window
    tpm: int | None = None  # tokens in any 60 s window (as estimated at admission, then corrected)
    max_concurrency: int | None = None  # calls in flight (replaces the ceiling below when set)
    ceiling_concurrency: int = 256  # discovery never grows past this
    initial_concurrency: int = 16  # the window discovery starts from


@dataclass(frozen=True)
class LimiterStats:
    in_flight: int
    waiting: int
    concurrency_limit: int
    admitted_per_second: float  # over the last 5 s
    calls: int  # admitted so far
    rate_limited: int  # 429 answers
    errors: int  # transport errors, timeouts and overload answers (408/502/503/504/529)
    paused_until: float | None  # on the limiter's clock; None when not paused
    paced_rate: float | None  # req/s learnt from 429s when the upstream sends no budget headers
    server_refill_rate: float | None  # req/s implied by the upstream's x-ratelimit headers
