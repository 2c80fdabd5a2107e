"""In-process fakes of the two upstream protocols, for unit tests of everything above them (the way
httpx's MockTransport stands in for a network). Scripted by plain attributes; they record every call.

The faithful HTTP twins of real upstreams live in `batchway.simulator`; these are for tests that need
no HTTP at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from batchway.upstreams.base import (
    PermanentUpstreamError,
    RemoteStatus,
    RequestLine,
    SubmitJob,
    UpstreamError,
)
from batchway.upstreams.result_line import ResultLine, UnreadableResult


@dataclass
class FakeRemoteUpstream:
    """A remote upstream whose status and results a test sets directly."""

    style: Literal["remote"] = "remote"
    status_value: RemoteStatus = field(default_factory=lambda: RemoteStatus(state="in_progress"))
    result_items: list[ResultLine | UnreadableResult] = field(default_factory=list)
    # Raised by the next call of that name (then cleared), to script failures.
    fail_next: dict[str, UpstreamError] = field(default_factory=dict)
    refuse_cancel: bool = False
    created: list[str] = field(default_factory=list)  # batchway batch ids submitted
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    cleaned: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    closed: bool = False

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if error := self.fail_next.pop(name, None):
            raise error

    async def submit(self, job: SubmitJob) -> dict[str, Any]:
        self._call("submit")
        if found := await self.find(job):
            return found
        self.created.append(job.batch_id)
        return {"batch_id": f"fake-{job.batch_id}", "lines": job.line_count}

    async def find(self, job: SubmitJob) -> dict[str, Any] | None:
        self._call("find")
        return {"batch_id": f"fake-{job.batch_id}"} if job.batch_id in self.created else None

    async def status(self, ref: dict[str, Any]) -> RemoteStatus:
        self._call("status")
        return self.status_value

    async def cancel(self, ref: dict[str, Any]) -> None:
        self._call("cancel")
        if self.refuse_cancel:
            raise PermanentUpstreamError("refused", status_code=400)
        self.cancelled.append(ref)

    async def results(
        self, ref: dict[str, Any], index: Any = None
    ) -> AsyncIterator[ResultLine | UnreadableResult]:
        self._call("results")
        for item in self.result_items:
            yield item

    async def cleanup(self, ref: dict[str, Any]) -> None:
        self._call("cleanup")
        self.cleaned.append(ref)

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakeExecutedUpstream:
    """An executed upstream answering each line with `answer(line)` (an echo by default)."""

    style: Literal["executed"] = "executed"
    answer: Callable[[RequestLine], ResultLine] | None = None
    executed: list[str] = field(default_factory=list)
    closed: bool = False

    async def execute(self, request: RequestLine) -> ResultLine:
        self.executed.append(request.custom_id)
        if self.answer is not None:
            return self.answer(request)
        body = {"object": "chat.completion", "model": request.body.get("model"), "choices": [], "usage": {}}
        return ResultLine.answered(request.custom_id, 200, body)

    async def aclose(self) -> None:
        self.closed = True
