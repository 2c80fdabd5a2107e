"""The one protocol every upstream kind implements, and the errors it may raise.

Exception tree (activities map it onto Temporal retries in one place, `activities/errors.py`):

    ProviderError
    ├── RetryableProviderError   timeouts, connection errors, 408/409/429, 5xx; may carry retry_after
    └── PermanentProviderError   any other 4xx: bad key, unknown id, refused request
"""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol

from pydantic import BaseModel

# Tag put on every upstream batch so a retried submit can find the one it already created.
BATCHWAY_TAG = "batchway_batch_id"


class ProviderError(Exception):
    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RetryableProviderError(ProviderError):
    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    pass


UPSTREAM_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class UpstreamBatch(BaseModel):
    id: str
    status: str  # OpenAI batch statuses
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None  # OpenAI's Batch `usage` shape, when the upstream reports it

    @property
    def terminal(self) -> bool:
        return self.status in UPSTREAM_TERMINAL


class BatchProvider(Protocol):
    """An upstream that runs whole batches (OpenAI's Batch API and compatible servers)."""

    async def upload_input(self, filename: str, stream: BinaryIO) -> str: ...

    async def find_batch(self, batchway_batch_id: str) -> UpstreamBatch | None: ...

    async def create_batch(
        self, input_file_id: str, endpoint: str, batchway_batch_id: str
    ) -> UpstreamBatch: ...

    async def retrieve_batch(self, upstream_batch_id: str) -> UpstreamBatch: ...

    async def cancel_batch(self, upstream_batch_id: str) -> UpstreamBatch: ...

    async def download_file(self, upstream_file_id: str, out: BinaryIO) -> None: ...

    async def aclose(self) -> None: ...
