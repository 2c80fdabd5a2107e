"""The two upstream styles, in batchway's own terms, and the errors an upstream may raise.

- A *remote* upstream runs whole batches itself (OpenAI's Batch API, Anthropic Message Batches):
  batchway submits the input, polls its status, cancels it, and reads its results back.
- An *executed* upstream answers single requests (any OpenAI-compatible chat/embeddings server);
  batchway runs the lines itself (the fan-out).

Both produce `ResultLine`s. The registry (`batchway.upstreams.registry`) maps provider kinds to them.

Exception tree (activities turn it into Temporal retry decisions in one place, `activities/errors.py`):

    UpstreamError
    ├── RetryableUpstreamError   timeouts, connection errors, 408/409/429, 5xx; may carry retry_after
    └── PermanentUpstreamError   any other 4xx: bad key, unknown id, refused request
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, Protocol, runtime_checkable

from batchway.batch_input import InputIndex
from batchway.upstreams.result_line import ResultLine, UnreadableResult

# Tag put on every upstream batch so a retried submit can find the one it already created.
BATCHWAY_TAG = "batchway_batch_id"


class UpstreamError(Exception):
    """`str(error)` is for operators' logs (it may quote the upstream's own text, which can name the
    operator's upstream account); `public_summary` is what a tenant may see."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code  # the upstream's error code or type, when it gave one

    def public_summary(self) -> str:
        if self.status_code is None:
            return "the upstream could not be reached"
        code = f", {self.code}" if self.code and self.code.replace("_", "").isalnum() else ""
        return f"the upstream answered HTTP {self.status_code}{code[:80]}"


class RetryableUpstreamError(UpstreamError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code)
        self.retry_after = retry_after


class PermanentUpstreamError(UpstreamError):
    pass


# What a remote upstream says about a batch, in batchway's status terms ("unknown": a status the
# adapter does not recognise; the batch is treated as still running, bounded by its deadline).
RemoteState = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "completed",
    "failed",
    "expired",
    "cancelled",
    "unknown",
]
REMOTE_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(slots=True)
class RemoteStatus:
    state: RemoteState
    total: int = 0
    completed: int = 0
    failed: int = 0
    usage: dict[str, Any] | None = None  # OpenAI's Batch `usage` shape, when the upstream reports it
    errors: list[dict[str, Any]] | None = None  # batch-level errors of a failed upstream batch

    @property
    def ended(self) -> bool:
        return self.state in REMOTE_ENDED


@dataclass(slots=True)
class SubmitJob:
    """Everything a remote upstream needs to submit one batchway batch."""

    batch_id: str
    endpoint: str
    model: str | None
    line_count: int
    # Unix seconds of the first submit attempt: upstream batches created before it are not ours.
    started_at: int
    open_input: Callable[[], BinaryIO]  # the stored input JSONL (blocking reads: call from a thread)
    # The adapter's checkpoint: what earlier attempts already created upstream, and how to persist a new
    # step before taking the next (file upload and batch create are not idempotent upstream).
    checkpoint: dict[str, Any]
    save: Callable[[dict[str, Any]], Awaitable[None]]


@runtime_checkable
class RemoteUpstream(Protocol):
    style: Literal["remote"]

    async def submit(self, job: SubmitJob) -> dict[str, Any]:
        """Create the upstream batch (at most once across retries: look for one created by an earlier
        attempt first, and cancel any duplicate found); return the reference the other calls take.
        `job.save` persists the adapter's checkpoint between non-idempotent steps."""
        ...

    async def find(self, job: SubmitJob) -> dict[str, Any] | None:
        """The reference of an upstream batch an earlier attempt created for this batch, if any."""
        ...

    async def status(self, ref: dict[str, Any]) -> RemoteStatus: ...

    async def cancel(self, ref: dict[str, Any]) -> None: ...

    def results(self, ref: dict[str, Any], index: InputIndex) -> AsyncIterator[ResultLine | UnreadableResult]:
        """Every result the upstream has for the batch (none if it has not published any), under the
        client's custom_ids (`index` maps an adapter's own ids back by line). A result that cannot be
        read is yielded as the `UnreadableResult` (its `custom_id` set when that much was readable); it
        never stops the iteration."""
        ...

    async def cleanup(self, ref: dict[str, Any]) -> None:
        """Delete what batchway made upstream for an ended batch (its copy of the input, the upstream's
        result files or batches): best effort, once their results are stored."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class RequestLine:
    """One input line to run on an executed upstream."""

    custom_id: str
    line: int
    url: str
    body: dict[str, Any]
    offset: int | None = None  # where the line is in the input file, and its length
    length: int | None = None


@runtime_checkable
class ExecutedUpstream(Protocol):
    style: Literal["executed"]

    async def execute(self, request: RequestLine, dispatch: Any = None) -> ResultLine | None:
        """Run one line, retries included; every outcome (answer, error status, transport failure) is a
        `ResultLine`. `dispatch` (the adapter's own type) lets the caller stop sending and see which
        lines went out; None means the line was not sent because the caller stopped."""
        ...

    async def aclose(self) -> None: ...


Upstream = RemoteUpstream | ExecutedUpstream
