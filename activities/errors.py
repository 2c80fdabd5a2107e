"""The one place upstream errors become Temporal retry decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from batchway.upstreams.base import PermanentUpstreamError, UpstreamError

RETRYABLE_TYPE = "UpstreamRetryable"
PERMANENT_TYPE = "UpstreamPermanent"
NOT_FOUND_TYPE = "BatchNotFound"


def to_application_error(exc: UpstreamError) -> ApplicationError:
    if isinstance(exc, PermanentUpstreamError):
        return ApplicationError(str(exc), type=PERMANENT_TYPE, non_retryable=True)
    delay = getattr(exc, "retry_after", None)
    return ApplicationError(
        str(exc), type=RETRYABLE_TYPE, next_retry_delay=timedelta(seconds=delay) if delay else None
    )


@asynccontextmanager
async def classified() -> AsyncIterator[None]:
    """Turn what a pipeline step raises into the retry decision Temporal acts on."""
    try:
        yield
    except UpstreamError as exc:
        raise to_application_error(exc) from exc
    except LookupError as exc:  # the batch row is gone (its creation was rolled back): nothing to do
        raise ApplicationError(str(exc), type=NOT_FOUND_TYPE, non_retryable=True) from exc
