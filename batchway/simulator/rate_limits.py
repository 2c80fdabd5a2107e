"""Per-minute request and token limits as token buckets, and the headers that describe them.

A bucket holds up to `limit` tokens, starts full and refills continuously at `limit / 60` per second,
the way OpenAI describes its limits. A call takes one request token and `cost` tokens (its answer's
`usage.total_tokens`) or, if either bucket is short, takes nothing and is told how long to wait.
Buckets are kept per API key, like OpenAI's per-organization limits.
"""

import math
from dataclasses import dataclass, field
from typing import Literal

from batchway.simulator.config import RetryAfterMode

LimitKind = Literal["requests", "tokens"]


@dataclass
class TokenBucket:
    limit: int  # tokens per minute, and the capacity
    tokens: float
    updated: float  # monotonic seconds of the last refill

    @classmethod
    def full(cls, limit: int, now: float) -> "TokenBucket":
        return cls(limit, float(limit), now)

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.limit), self.tokens + max(0.0, now - self.updated) * self.limit / 60)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` tokens are in the bucket (0 if they are now). Call after `refill`."""
        return max(0.0, amount - self.tokens) * 60 / self.limit

    def seconds_to_full(self) -> float:
        return (self.limit - self.tokens) * 60 / self.limit


@dataclass(frozen=True)
class BucketState:
    """What the `x-ratelimit-*-<kind>` headers say about one bucket."""

    limit: int
    remaining: int
    reset_seconds: float  # until the bucket is full again


@dataclass(frozen=True)
class Admission:
    admitted: bool
    states: dict[LimitKind, BucketState] = field(default_factory=dict)  # only the limits that are set
    limited_by: LimitKind | None = None  # the bucket that was short, when refused
    retry_after: float | None = None  # seconds until the call would pass; None: waiting cannot help


class RateLimiter:
    """Request and token buckets per API key. A bucket whose limit changed starts again, full."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, LimitKind], TokenBucket] = {}

    def _bucket(self, key: str, kind: LimitKind, limit: int, now: float) -> TokenBucket:
        bucket = self._buckets.get((key, kind))
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[(key, kind)] = TokenBucket.full(limit, now)
        bucket.refill(now)
        return bucket

    def admit(self, key: str, rpm: int | None, tpm: int | None, cost: int, now: float) -> Admission:
        """Take one request and `cost` tokens from `key`'s buckets, or nothing if either is short."""
        wanted: list[tuple[LimitKind, TokenBucket, float]] = []
        if rpm is not None:
            wanted.append(("requests", self._bucket(key, "requests", rpm, now), 1.0))
        if tpm is not None:
            wanted.append(("tokens", self._bucket(key, "tokens", tpm, now), float(cost)))
        short = [(kind, bucket, amount) for kind, bucket, amount in wanted if bucket.tokens < amount]
        if short:
            kind, _, _ = short[0]
            # A call costing more than the whole bucket never passes (OpenAI: "Request too large").
            hopeless = any(amount > bucket.limit for _, bucket, amount in short)
            wait = None if hopeless else max(bucket.wait_for(amount) for _, bucket, amount in short)
            return Admission(False, _states(wanted), kind, wait)
        for _, bucket, amount in wanted:
            bucket.tokens -= amount
        return Admission(True, _states(wanted))

    def peek(self, key: str, rpm: int | None, tpm: int | None, now: float) -> dict[LimitKind, BucketState]:
        """The buckets' state without taking anything (for answers refused before the buckets)."""
        wanted: list[tuple[LimitKind, TokenBucket, float]] = []
        if rpm is not None:
            wanted.append(("requests", self._bucket(key, "requests", rpm, now), 0.0))
        if tpm is not None:
            wanted.append(("tokens", self._bucket(key, "tokens", tpm, now), 0.0))
        return _states(wanted)


def _states(wanted: list[tuple[LimitKind, TokenBucket, float]]) -> dict[LimitKind, BucketState]:
    return {
        kind: BucketState(bucket.limit, math.floor(bucket.tokens + 1e-9), bucket.seconds_to_full())
        for kind, bucket, _ in wanted
    }


def go_duration(seconds: float) -> str:
    """A Go `time.Duration` string, as OpenAI's reset headers use: `0s`, `12ms`, `17.28s`, `6m0s`,
    `1h2m3.5s`. Rounded up to the millisecond, so waiting that long is always enough."""
    millis = math.ceil(round(max(seconds, 0.0) * 1000, 6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def ratelimit_headers(states: dict[LimitKind, BucketState]) -> dict[str, str]:
    headers = {}
    for kind, state in states.items():
        headers[f"x-ratelimit-limit-{kind}"] = str(state.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(state.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = go_duration(state.reset_seconds)
    return headers


def retry_after_headers(seconds: float | None, mode: RetryAfterMode) -> dict[str, str]:
    """`retry-after` in whole seconds, rounded up, and `retry-after-ms` (read first by the SDKs)."""
    if seconds is None or mode == "none":
        return {}
    headers = {"retry-after": str(max(1, math.ceil(round(seconds, 6))))}
    if mode == "both":
        headers["retry-after-ms"] = str(max(1, math.ceil(round(seconds * 1000, 3))))
    return headers
