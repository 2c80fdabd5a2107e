"""Reading rate-limit headers (contract §5.3): valid values, garbage (ignored, never raised), precedence."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from batchway.upstreams.fanout.ratelimit_headers import (
    RateLimitHeaders,
    parse_duration,
    parse_retry_after,
    rate_limit_fields,
)

NOW = 1_750_000_000.0  # a fixed wall clock for HTTP dates


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("17.28s", 17.28),
        ("1h2m3.5s", 3723.5),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("250us", 250e-6),
        ("3µs", 3e-6),  # micro sign
        ("3μs", 3e-6),  # Greek mu
        ("500ns", 500e-9),
        ("2s500ms", 2.5),
        ("0", 0.0),  # Azure
        ("0s", 0.0),
        (" 2s ", 2.0),
        ("20", 20.0),  # a bare number is seconds
        ("0.5", 0.5),
    ],
)
def test_parse_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "-1",  # Azure's "unknown"
        "-1s",
        "+1s",
        "abc",
        "s",
        "1x",
        "1d",
        "1s2",
        "1s 2m",
        "1..5s",
        "1e3s",
        "nan",
        "inf",
        "1,5s",
        "99999999h",  # beyond any real window
        "1" * 100,
    ],
)
def test_parse_duration_ignores_garbage(text: str | None) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250", "retry-after": "3"}, 0.25),  # ms first, as the SDKs do
        ({"Retry-After-Ms": "1500"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),  # unreadable ms: fall back to seconds
        ({"retry-after-ms": "-5", "retry-after": "3"}, 3.0),
        ({"retry-after": "2"}, 2.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),  # in the past: now
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float) -> None:
    assert parse_retry_after(headers, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"x-request-id": "req_1"},
        {"retry-after": "soon"},
        {"retry-after": "-1"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"},
        {"retry-after": "Wed, 21 Oct 2015 07:28:00"},  # no zone
        {"retry-after-ms": "1e30"},
        {"retry-after-ms": "", "retry-after": ""},
    ],
)
def test_parse_retry_after_ignores_garbage(headers: dict[str, str] | None) -> None:
    assert parse_retry_after(headers, now=NOW) is None


def test_parse_retry_after_reads_httpx_headers() -> None:
    headers = httpx.Headers([("Retry-After-Ms", "120"), ("Retry-After", "1")])
    assert parse_retry_after(headers) == pytest.approx(0.12)


OPENAI_EXAMPLE = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
    "x-request-id": "req_123",
}


def test_rate_limit_headers_reads_openai_example() -> None:
    budget = RateLimitHeaders.from_headers(OPENAI_EXAMPLE)
    assert budget == RateLimitHeaders(
        limit_requests=60,
        remaining_requests=59,
        reset_requests=1.0,
        limit_tokens=150000,
        remaining_tokens=149984,
        reset_tokens=360.0,
    )
    assert not budget.is_empty


def test_rate_limit_headers_names_are_case_insensitive() -> None:
    mixed = {name.upper(): value for name, value in OPENAI_EXAMPLE.items()}
    as_httpx = httpx.Headers(list(OPENAI_EXAMPLE.items()))
    expected = RateLimitHeaders.from_headers(OPENAI_EXAMPLE)
    assert RateLimitHeaders.from_headers(mixed) == expected
    assert RateLimitHeaders.from_headers(as_httpx) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, RateLimitHeaders()),
        ({"content-type": "application/json"}, RateLimitHeaders()),
        # Azure: -1 and 0 mean "unknown" / nothing; missing headers stay None.
        (
            {"x-ratelimit-remaining-requests": "-1", "x-ratelimit-remaining-tokens": "0"},
            RateLimitHeaders(remaining_tokens=0),
        ),
        (
            {"x-ratelimit-limit-requests": "many", "x-ratelimit-reset-requests": "soon"},
            RateLimitHeaders(),
        ),
        ({"x-ratelimit-limit-requests": "1200.0"}, RateLimitHeaders(limit_requests=1200)),
        ({"x-ratelimit-limit-requests": "1e99"}, RateLimitHeaders()),
        ({"x-ratelimit-reset-tokens": "12ms"}, RateLimitHeaders(reset_tokens=0.012)),
    ],
)
def test_rate_limit_headers_partial_and_garbage(headers: dict[str, str], expected: RateLimitHeaders) -> None:
    assert RateLimitHeaders.from_headers(headers) == expected


def test_rate_limit_headers_without_any_is_empty() -> None:
    assert RateLimitHeaders.from_headers(None).is_empty
    assert RateLimitHeaders.from_headers({"x-request-id": "r"}).is_empty


def test_rate_limit_fields_keeps_only_what_is_read_and_parses_once() -> None:
    fields = rate_limit_fields(httpx.Headers({**OPENAI_EXAMPLE, "Retry-After": "2"}))
    assert "x-request-id" not in fields
    assert fields["retry-after"] == "2"
    assert rate_limit_fields(fields) is fields  # already filtered: no second pass
    assert RateLimitHeaders.from_headers(fields) == RateLimitHeaders.from_headers(OPENAI_EXAMPLE)
