"""The last step of every batch: every input line that has no stored result gets one saying why (so each
custom_id ends exactly once in the output or error file), the files are assembled from the stored
lines, and the batch row takes its final status, counts and usage in one transaction.

It only reads what earlier steps stored, so it is cheap and safe to retry after a crash at any point.
Blocking I/O: call from a thread.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, exists
from sqlmodel import Session, select

from batchway import files, lifecycle, metrics
from batchway.batch_input import LineProblem
from batchway.contracts import FinalizeInput, FinalizeResult, Outcome
from batchway.pipeline.deps import Deps
from batchway.pipeline.inputs import input_index
from batchway.pipeline.sinks import labels
from batchway.results.output_files import write_result_files
from batchway.results.sink import FLUSH_LINES, ResultSink
from batchway.results.stored import stored_custom_ids
from batchway.results.totals import line_totals
from batchway.storage.models import BatchRecord, Org, RequestLog, ResultChunk, WebhookEndpoint
from batchway.upstreams.result_line import (
    BATCH_CANCELLED,
    BATCH_EXPIRED,
    BATCH_FAILED,
    UPSTREAM_RESULT_MISSING,
    UPSTREAM_RESULT_UNREADABLE,
    ResultLine,
)
from batchway.usage import plan_of
from batchway.webhooks.events import event_type_for

Heartbeat = Callable[[], None]


def unexecuted_code(outcome: Outcome, unreadable: int) -> str:
    """Why a line with no result ended that way."""
    if outcome == "cancelled":
        return BATCH_CANCELLED
    if outcome == "expired":
        return BATCH_EXPIRED
    if outcome == "failed":
        return BATCH_FAILED
    return UPSTREAM_RESULT_UNREADABLE if unreadable else UPSTREAM_RESULT_MISSING


def finalize(deps: Deps, request: FinalizeInput, heartbeat: Heartbeat) -> FinalizeResult:
    batch = lifecycle.load(deps.engine, request.batch_id)
    if lifecycle.is_terminal(batch.status):
        return _result(deps, batch)
    outcome = request.outcome
    if request.error_code:
        problem = LineProblem(code=request.error_code, message=request.error_message or request.error_code)
        batch = lifecycle.transition(
            deps.engine, batch.id, errors=[*(batch.errors or []), problem.model_dump()]
        )
    # A batch refused before it ran (validation, the upstream's refusal) has no lines to account for.
    if not (outcome == "failed" and batch.in_progress_at is None):
        if outcome in ("completed", "expired"):
            batch = lifecycle.transition(deps.engine, batch.id, lifecycle.Status.FINALIZING)
        fill_unexecuted(deps, batch, unexecuted_code(outcome, request.unreadable), heartbeat)
    output, errors = write_result_files(deps.engine, deps.blobs, batch, heartbeat)
    with Session(deps.engine, expire_on_commit=False) as session:
        for row in (output, errors):
            if row is not None:
                session.merge(row)
        totals = line_totals(session, batch.id)
        ended = lifecycle.transition_in(
            session,
            batch.id,
            lifecycle.Status(outcome),
            total=totals.done,
            completed=totals.completed,
            failed=totals.failed,
            usage=totals.batch_usage(),
            cost_micros=totals.cost_micros,
            output_file_id=output.id if output else None,
            error_file_id=errors.id if errors else None,
        )
        session.commit()
    if ended:
        metrics.BATCHES_ENDED.labels(outcome).inc()
    remove_unused_chunks(deps, batch.id)
    with Session(deps.engine) as session:
        files.purge_if_deleted(session, deps.blobs, batch.input_file_id)
    return _result(deps, lifecycle.load(deps.engine, batch.id))


def fill_unexecuted(deps: Deps, batch: BatchRecord, code: str, heartbeat: Heartbeat) -> int:
    """Store a `code` error line for every input line that has no result yet; returns how many."""
    try:
        index = input_index(deps, batch)
    except FileNotFoundError:
        return 0  # the input is gone (it cannot be while the batch runs, barring manual deletion)
    already = stored_custom_ids(deps.engine, batch.id)
    sink = ResultSink(deps.engine, deps.blobs, labels(batch))  # nothing ran: nothing to price
    for custom_id, span in index.spans.items():
        if custom_id not in already:
            sink.add(ResultLine.unexecuted(custom_id, code), span)
            if sink.pending >= FLUSH_LINES:
                sink.flush()
                heartbeat()
    sink.flush()
    return sink.stored


def remove_unused_chunks(deps: Deps, batch_id: str) -> None:
    """Result chunks no line points at (a write cut short, or duplicates only) are deleted."""
    referenced = exists().where(RequestLog.batch_id == batch_id, RequestLog.chunk_key == ResultChunk.key)
    with Session(deps.engine) as session:
        keys = session.exec(
            select(ResultChunk.key).where(ResultChunk.batch_id == batch_id, ~referenced)
        ).all()
    for key in keys:
        deps.blobs.delete(key)
        with Session(deps.engine) as session:
            session.execute(delete(ResultChunk).where(ResultChunk.key == key))
            session.commit()


def _result(deps: Deps, batch: BatchRecord) -> FinalizeResult:
    """The final counts, and which follow-up steps have work: the workflow skips the others, which
    saves a worker round trip each for the many batches of orgs with no webhook and no feedback."""
    with Session(deps.engine) as session:
        org = session.get(Org, batch.org_id)
        plan = plan_of(session, org) if org else None
        has_webhook = session.get(WebhookEndpoint, batch.org_id) is not None
    return FinalizeResult(
        status=batch.status,
        completed=batch.completed,
        failed=batch.failed,
        notify=has_webhook and event_type_for(batch.status) is not None,
        score=batch.status == lifecycle.Status.COMPLETED and plan is not None and plan.feedback,
    )
