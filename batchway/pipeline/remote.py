"""The steps of a batch on a remote upstream (one that runs whole batches): submit, poll, cancel and
collect its results. Each step is safe to retry: what was created upstream is recorded on the batch
row before the next non-idempotent call, and results are stored first-writer-wins.

The row's `upstream` record holds the adapter's `checkpoint` (what a submit has done so far) and, once
the submit completed, its `ref` (what status, cancel and results take).

Retryable upstream errors propagate (Temporal retries the step); a permanent refusal is recorded on the
batch row and reported in the step's result.
"""

from __future__ import annotations

import logging
from typing import Any

from batchway import lifecycle
from batchway.batch_input import InputIndex, LineProblem
from batchway.clock import now
from batchway.contracts import CollectResult, Outcome, PollResult, SubmitResult
from batchway.pipeline.deps import Deps
from batchway.pipeline.inputs import input_index, line_count, open_input
from batchway.pipeline.sinks import sink_for
from batchway.results.sink import FLUSH_LINES
from batchway.results.stored import stored_custom_ids
from batchway.storage.models import BatchRecord
from batchway.upstreams.base import PermanentUpstreamError, RemoteUpstream, SubmitJob, UpstreamError
from batchway.upstreams.result_line import (
    BATCH_CANCELLED,
    BATCH_EXPIRED,
    BATCH_FAILED,
    UPSTREAM_RESULT_UNREADABLE,
    ResultLine,
    UnreadableResult,
)

log = logging.getLogger(__name__)


async def cleanup(deps: Deps, batch_id: str) -> bool:
    """Delete what batchway made upstream for a batch that ended (its results are stored); best effort."""
    batch = await _load(deps, batch_id)
    ref = upstream_ref(batch)
    if ref is None or not lifecycle.is_terminal(batch.status):
        return False
    try:
        await (await _remote(deps, batch)).cleanup(ref)
    except UpstreamError as exc:
        log.info("could not clean up upstream copies of %s: %s", batch_id, exc)
        return False
    return True


def _error(code: str, message: str) -> list[dict[str, Any]]:
    return [LineProblem(code=code, message=message).model_dump()]


async def _load(deps: Deps, batch_id: str) -> BatchRecord:
    return await deps.blocking(lifecycle.load, deps.engine, batch_id)


async def _remote(deps: Deps, batch: BatchRecord) -> RemoteUpstream:
    upstream = await deps.upstream(batch)
    assert isinstance(upstream, RemoteUpstream), f"provider {batch.provider} does not run whole batches"
    return upstream


def upstream_ref(batch: BatchRecord) -> dict[str, Any] | None:
    """What the upstream created for the batch, once a submit (or a cancel's search) found it."""
    return (batch.upstream or {}).get("ref")


def _checkpoint(batch: BatchRecord) -> dict[str, Any]:
    return dict((batch.upstream or {}).get("checkpoint") or {})


async def _save(
    deps: Deps, batch_id: str, checkpoint: dict[str, Any], ref: dict[str, Any] | None = None
) -> None:
    record: dict[str, Any] = {"checkpoint": checkpoint}
    if ref is not None:
        record["ref"] = ref
    await deps.blocking(lifecycle.transition, deps.engine, batch_id, upstream=record)


def _job(deps: Deps, batch: BatchRecord) -> SubmitJob:
    async def save(checkpoint: dict[str, Any]) -> None:
        job.checkpoint = checkpoint
        await _save(deps, batch.id, checkpoint)

    job = SubmitJob(
        batch_id=batch.id,
        endpoint=batch.endpoint,
        model=batch.model,
        line_count=0,
        started_at=batch.submit_started_at or now(),
        open_input=lambda: open_input(deps, batch),
        checkpoint=_checkpoint(batch),
        save=save,
    )
    return job


async def submit(deps: Deps, batch_id: str) -> SubmitResult:
    """Create the upstream batch (at most once across retries) and move the batch to `in_progress`."""
    batch = await _load(deps, batch_id)
    if upstream_ref(batch) is not None:
        return SubmitResult(ok=True)
    if batch.submit_started_at is None:  # recorded before anything is sent: a retry searches from here
        batch = await deps.blocking(lifecycle.transition, deps.engine, batch_id, submit_started_at=now())
    total = await deps.blocking(line_count, deps, batch)
    try:
        upstream = await _remote(deps, batch)
        job = _job(deps, batch)
        job.line_count = total
        ref = await upstream.submit(job)
    except PermanentUpstreamError as exc:
        log.warning("upstream refused %s: %s", batch_id, exc)  # the upstream's own words: operators only
        message = f"The upstream refused the batch ({exc.public_summary()})."
        await deps.blocking(
            lifecycle.transition, deps.engine, batch_id, errors=_error("upstream_error", message)
        )
        return SubmitResult(ok=False)
    await deps.blocking(
        lifecycle.transition,
        deps.engine,
        batch_id,
        lifecycle.Status.IN_PROGRESS,
        upstream={"checkpoint": job.checkpoint, "ref": ref},
        total=total,
    )
    return SubmitResult(ok=True)


async def poll(deps: Deps, batch_id: str) -> PollResult:
    """Read the upstream batch once and mirror its progress into the batch row."""
    batch = await _load(deps, batch_id)
    ref = upstream_ref(batch)
    if ref is None:  # nothing was created upstream (cancel_upstream looked for it)
        return PollResult(state="cancelled", ended=True, cancel_requested=batch.cancel_requested)
    try:
        status = await (await _remote(deps, batch)).status(ref)
    except PermanentUpstreamError as exc:
        # The upstream lost or refuses our batch for good (deleted, key revoked): the batch fails.
        log.warning("upstream lost %s: %s", batch_id, exc)
        message = f"The upstream no longer reports on the batch ({exc.public_summary()})."
        await deps.blocking(
            lifecycle.transition, deps.engine, batch_id, errors=_error("upstream_error", message)
        )
        return PollResult(state="failed", ended=True, lost=True)
    fields: dict[str, Any] = {"completed": status.completed, "failed": status.failed}
    if status.total:
        fields["total"] = status.total
    if status.usage:
        fields["usage"] = status.usage
    if status.state == "failed":
        fields["errors"] = status.errors or _error("upstream_failed", "The upstream batch failed.")
    await deps.blocking(lifecycle.transition, deps.engine, batch_id, **fields)
    return PollResult(
        state=status.state,
        ended=status.ended,
        total=status.total,
        completed=status.completed,
        failed=status.failed,
        cancel_requested=batch.cancel_requested,
    )


async def cancel(deps: Deps, batch_id: str, *, requested: bool) -> bool:
    """Ask the upstream to stop the batch; returns whether an upstream batch exists (a submit attempt
    cut short may have created one without recording it: it is looked up by its tag)."""
    if requested:  # a cancel signalled from the Temporal UI never passed through the API: record it too
        await deps.blocking(
            lifecycle.transition, deps.engine, batch_id, lifecycle.Status.CANCELLING, cancel_requested=True
        )
    batch = await _load(deps, batch_id)
    ref = upstream_ref(batch)
    if batch.submit_started_at is None and ref is None:
        return False  # nothing was ever sent upstream
    upstream = await _remote(deps, batch)
    if ref is None:
        found = await upstream.find(_job(deps, batch))
        if found is None:
            return False
        ref = found
        await _save(deps, batch_id, _checkpoint(batch), ref)
    try:
        await upstream.cancel(ref)
    except PermanentUpstreamError as exc:  # e.g. it already ended: polling will see how
        log.info("upstream refused to cancel %s: %s", batch_id, exc)
    return True


async def collect(deps: Deps, batch_id: str, outcome: Outcome) -> CollectResult:
    """Store every result the upstream hands over, one `ResultLine` per input custom_id at most."""
    batch = await _load(deps, batch_id)
    ref = upstream_ref(batch)
    if ref is None:
        return CollectResult(fetched=True)
    index = await deps.blocking(input_index, deps, batch)
    already = await deps.blocking(stored_custom_ids, deps.engine, batch_id)
    sink = await deps.blocking(sink_for, deps, batch)
    collector = _Collector(index, already, outcome)
    try:
        async for item in (await _remote(deps, batch)).results(ref, index):
            for line in collector.take(item):
                sink.add(line, index.span_of(line.custom_id))
            if sink.pending >= FLUSH_LINES:
                await deps.blocking(sink.flush)
    except PermanentUpstreamError as exc:
        await deps.blocking(sink.flush)
        log.warning("upstream results of %s refused: %s", batch_id, exc)
        message = f"Could not fetch the upstream results ({exc.public_summary()})."
        await deps.blocking(
            lifecycle.transition, deps.engine, batch_id, errors=_error("upstream_error", message)
        )
        return CollectResult(fetched=False, stored=sink.stored, unreadable=collector.unattributed)
    for line in collector.leftovers():
        sink.add(line, index.span_of(line.custom_id))
    await deps.blocking(sink.flush)
    return CollectResult(fetched=True, stored=sink.stored, unreadable=collector.unattributed)


class _Collector:
    """Decides which upstream results are kept: only our custom_ids, each once, readable ones first."""

    def __init__(self, index: InputIndex, already: set[str], outcome: Outcome) -> None:
        self.index = index
        self.seen = set(already)
        # Lines the upstream cancelled because batchway asked it to (at the deadline, or for a batch whose
        # workflow was terminated) are, to the client, lines of an expired or failed batch.
        self.cancelled_code = {"expired": BATCH_EXPIRED, "failed": BATCH_FAILED}.get(outcome)
        self.unattributed = 0
        self._unreadable: dict[str, str] = {}  # custom_id -> why its only lines so far were unreadable

    def take(self, item: ResultLine | UnreadableResult) -> list[ResultLine]:
        if isinstance(item, UnreadableResult):
            if item.custom_id is None:
                self.unattributed += 1
            elif item.custom_id in self.index and item.custom_id not in self.seen:
                self._unreadable.setdefault(item.custom_id, item.reason)
            return []
        if item.custom_id not in self.index or item.custom_id in self.seen:
            return []  # not one of ours, or a duplicate: never count a line twice
        self.seen.add(item.custom_id)
        self._unreadable.pop(item.custom_id, None)
        if self.cancelled_code and item.error is not None and item.error.code == BATCH_CANCELLED:
            return [ResultLine.unexecuted(item.custom_id, self.cancelled_code)]
        return [item]

    def leftovers(self) -> list[ResultLine]:
        """Custom_ids whose only results were unreadable end as errors saying so."""
        lines = [
            ResultLine.unexecuted(
                custom_id, UPSTREAM_RESULT_UNREADABLE, f"The upstream's result could not be read: {reason}."
            )
            for custom_id, reason in self._unreadable.items()
            if custom_id not in self.seen
        ]
        self.seen.update(self._unreadable)
        self._unreadable.clear()
        return lines
