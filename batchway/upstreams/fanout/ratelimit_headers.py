"""Reading an OpenAI-compatible upstream's rate-limit headers (contract §5.3).

- `x-ratelimit-{limit,remaining}-{requests,tokens}`: integers.
- `x-ratelimit-reset-{requests,tokens}`: Go-style durations (`1s`, `6m0s`, `12ms`, `17.28s`, `1h2m3.5s`,
  `us`/`µs`/`ns`), the time until that budget is back to its full `limit`.
- `retry-after-ms` (milliseconds, read first, as the OpenAI and Anthropic SDKs do), then `retry-after`
  (seconds, integer or float, or an HTTP date).

Upstreams send all sorts of values (Azure sends `-1`; proxies mangle headers), so every parser here
returns None for anything it cannot read and never raises: a missing or unreadable header means
"unknown", never "zero".
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# Longer than any real limit window (OpenAI's longest is per day); anything above is garbage.
MAX_DURATION_SECONDS = 7 * 24 * 3600.0

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
# One `<decimal><unit>` term; `ms` must be tried before `m`, and the micro signs before `s`.
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|μs|ns|h|m|s)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_SECONDS = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)s")


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go-style duration (`1h2m3.5s`, `12ms`, `0`), or None if unreadable or negative.

    A bare number is read as seconds (some servers send `20` or `0.5`); Azure's `-1` is None.
    """
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > 64:
        return None
    if _BARE_NUMBER.fullmatch(text):
        return _bounded(float(text))
    if _SECONDS.fullmatch(text):  # the common `17.28s`, without the general loop
        return _bounded(float(text[:-1]))
    total = 0.0
    position = 0
    for match in _TERM.finditer(text):
        if match.start() != position:  # something unreadable between two terms
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text):
        return None
    return _bounded(total)


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait according to `retry-after-ms`, else `retry-after`; None if neither is readable.

    `now` is the wall clock (Unix seconds) used for an HTTP-date `retry-after`; a date in the past
    means 0 s.
    """
    fields = rate_limit_fields(headers)
    milliseconds = _non_negative_number(fields.get("retry-after-ms"))
    if milliseconds is not None:
        return _bounded(milliseconds / 1000.0)
    value = fields.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_number(value)
    if seconds is not None:
        return _bounded(seconds)
    return _seconds_until_http_date(value, time.time() if now is None else now)


def rate_limit_fields(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The `x-ratelimit-*` and `retry-after*` headers, by lowercase name, in one pass over the headers.

    Parse the result instead of the headers when reading both kinds: it is small, and `.get` on
    httpx.Headers scans every header each time. Parsing it again is a no-op.
    """
    if not headers:
        return {}
    if isinstance(headers, _Fields):
        return headers
    fields = _Fields()
    raw = getattr(headers, "raw", None)  # httpx.Headers: scan the bytes, decode only what we keep
    if isinstance(raw, list):
        for name, value in raw:
            lower = name.lower()
            if lower.startswith(_RAW_PREFIXES):
                fields[lower.decode("latin-1")] = value.decode("latin-1")
        return fields
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_PREFIXES):
            fields[lower] = value
    return fields


class _Fields(dict[str, str]):
    """Headers already filtered by `rate_limit_fields`."""


_PREFIXES = ("x-ratelimit-", "retry-after")
_RAW_PREFIXES = tuple(prefix.encode() for prefix in _PREFIXES)


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The `x-ratelimit-*` budget of one answer; each field is None when absent or unreadable."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None  # seconds until the request budget is full again
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> RateLimitHeaders:
        lookup = rate_limit_fields(headers)
        if not lookup:
            return _EMPTY
        parsed = cls(
            limit_requests=_count(lookup.get("x-ratelimit-limit-requests")),
            remaining_requests=_count(lookup.get("x-ratelimit-remaining-requests")),
            reset_requests=parse_duration(lookup.get("x-ratelimit-reset-requests")),
            limit_tokens=_count(lookup.get("x-ratelimit-limit-tokens")),
            remaining_tokens=_count(lookup.get("x-ratelimit-remaining-tokens")),
            reset_tokens=parse_duration(lookup.get("x-ratelimit-reset-tokens")),
        )
        return _EMPTY if parsed == _EMPTY else parsed

    @property
    def is_empty(self) -> bool:
        return self == _EMPTY


_EMPTY = RateLimitHeaders()


def _bounded(seconds: float) -> float | None:
    return seconds if 0.0 <= seconds <= MAX_DURATION_SECONDS else None


def _non_negative_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _count(text: str | None) -> int | None:
    """A non-negative integer header (`1200`, tolerating `1200.0`); None for `-1` and garbage."""
    value = _non_negative_number(text)
    if value is None or value > 1e15:
        return None
    return int(value)


def _seconds_until_http_date(text: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None or moment.tzinfo is None:  # RFC 9110 dates are always GMT
        return None
    return _bounded(max(0.0, moment.timestamp() - now))
