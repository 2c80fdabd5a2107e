"""What the batch-API adapters (OpenAI, Anthropic) share when their SDK raises: the statuses worth a retry,
the wait an upstream asks for, and one context manager that maps SDK errors onto the upstream error tree
while timing the call and counting 429s."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from batchway import metrics
from batchway.upstreams.base import UpstreamError
from batchway.upstreams.fanout.ratelimit_headers import parse_retry_after

# Besides every 5xx: a timeout, a conflict (a create racing its own retry), a rate limit.
RETRYABLE_STATUS = frozenset({408, 409, 429})


def retry_after(response: httpx.Response | Any) -> float | None:
    """Seconds the upstream asked us to wait (`retry-after-ms`, `retry-after`), if it said."""
    return parse_retry_after(getattr(response, "headers", None))


def worth_retrying(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


@asynccontextmanager
async def mapped_errors(
    provider: str, sdk_error: type[Exception], classify: Callable[[Exception], UpstreamError]
) -> AsyncIterator[None]:
    started = time.monotonic()
    try:
        yield
    except UpstreamError:
        raise
    except (sdk_error, httpx.HTTPError, ValueError) as exc:
        error = classify(exc)
        if error.status_code == 429:
            metrics.UPSTREAM_RATE_LIMITED.labels(provider).inc()
        raise error from exc
    finally:
        metrics.UPSTREAM_SECONDS.labels(provider, "api").observe(time.monotonic() - started)
