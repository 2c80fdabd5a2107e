"""The one place provider errors become Temporal retry decisions."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from batchway.providers.base import PermanentProviderError, ProviderError

RETRYABLE_TYPE = "UpstreamRetryable"
PERMANENT_TYPE = "UpstreamPermanent"


def to_application_error(exc: ProviderError) -> ApplicationError:
    if isinstance(exc, PermanentProviderError):
        return ApplicationError(str(exc), type=PERMANENT_TYPE, non_retryable=True)
    delay = getattr(exc, "retry_after", None)
    return ApplicationError(
        str(exc), type=RETRYABLE_TYPE, next_retry_delay=timedelta(seconds=delay) if delay else None
    )
