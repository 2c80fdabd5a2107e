"""Activities of BatchWorkflow: thin adapters from ids to `batchway.*`, with error classification.

Blocking work (scanning a 200 MB file, writing result files and log rows) runs in a thread so the
worker's event loop keeps serving other activities and heartbeats.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, BinaryIO

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import PERMANENT_TYPE, to_application_error
from batchway import files, lifecycle, tenancy
from batchway.batch_input import InputFileError, InputScanner, LineProblem
from batchway.blobstore import BlobStore
from batchway.contracts import (
    BatchRef,
    CancelUpstreamInput,
    FinalizeInput,
    FinalizeResult,
    SubmitResult,
    UpstreamState,
    ValidationResult,
)
from batchway.jsonl import read_chunks
from batchway.models import BatchRecord, FileRecord
from batchway.providers import build_provider
from batchway.providers.base import BatchProvider, PermanentProviderError, ProviderError
from batchway.reconcile import Reconciler
from batchway.settings import Settings

UPSTREAM_ACTIVE = frozenset({"validating", "in_progress", "finalizing"})
HEARTBEAT_SECONDS = 2.0


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a long call runs, so Temporal notices a dead worker and can deliver a cancel."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class BatchActivities:
    def __init__(self, engine: Engine, blobs: BlobStore, settings: Settings) -> None:
        self.engine = engine
        self.blobs = blobs
        self.settings = settings

    # -- helpers -------------------------------------------------------------------------------------------

    def _load(self, batch_id: str) -> BatchRecord:
        try:
            return lifecycle.load(self.engine, batch_id)
        except LookupError as exc:  # the row is gone (its creation was rolled back): nothing to do
            raise ApplicationError(str(exc), type="BatchNotFound", non_retryable=True) from exc

    def _input_file(self, batch: BatchRecord) -> FileRecord | None:
        with Session(self.engine) as session:
            row = session.get(FileRecord, batch.input_file_id)
            return row if row and row.org_id == batch.org_id and self.blobs.exists(row.blob_key) else None

    @asynccontextmanager
    async def _provider(self, batch: BatchRecord) -> AsyncIterator[BatchProvider]:
        with Session(self.engine) as session:
            config = tenancy.get_provider(session, batch.org_id, batch.provider)
        if config is None:
            raise to_application_error(
                PermanentProviderError(f"provider '{batch.provider}' is no longer configured for the org")
            )
        provider = build_provider(config, self.settings)
        try:
            yield provider
        except ProviderError as exc:
            raise to_application_error(exc) from exc
        finally:
            await provider.aclose()

    def _fail(self, batch_id: str, problems: list[LineProblem]) -> None:
        lifecycle.transition(self.engine, batch_id, "failed", errors=[p.model_dump() for p in problems])

    # -- activities ----------------------------------------------------------------------------------------

    @activity.defn
    async def validate_batch(self, ref: BatchRef) -> ValidationResult:
        return await asyncio.to_thread(self._validate, ref.batch_id)

    def _validate(self, batch_id: str) -> ValidationResult:
        batch = self._load(batch_id)
        input_file = self._input_file(batch)
        if input_file is None:
            problem = LineProblem(
                code="file_not_found",
                message=f"Input file {batch.input_file_id} no longer exists.",
                param="input_file_id",
            )
            self._fail(batch_id, [problem])
            return ValidationResult(ok=False)
        scanner = InputScanner(self.settings.max_lines, self.settings.max_line_bytes)
        try:
            with self.blobs.open_read(input_file.blob_key) as stream:
                scan = scanner.scan(read_chunks(stream))
            problems = scan.problems_for(batch.endpoint)
        except InputFileError as exc:
            problems = [LineProblem(code=exc.code, message=exc.message, line=exc.line)]
        if problems:
            self._fail(batch_id, problems)
            return ValidationResult(ok=False)
        lifecycle.transition(self.engine, batch_id, model=scan.model)
        return ValidationResult(ok=True, total=scan.line_count)

    @activity.defn
    async def submit_batch(self, ref: BatchRef) -> SubmitResult:
        """Upload the input and create the upstream batch, at most once each across retries."""
        batch = self._load(ref.batch_id)
        if batch.upstream_batch_id:
            return SubmitResult(ok=True)
        input_file = await asyncio.to_thread(self._input_file, batch)  # may ask S3
        if input_file is None:
            self._fail(batch.id, [LineProblem(code="file_not_found", message="The input file was deleted.")])
            return SubmitResult(ok=False)
        try:
            async with self._provider(batch) as provider, heartbeating():
                upstream_file_id = batch.upstream_input_file_id
                if upstream_file_id is None:
                    with self.blobs.open_read(input_file.blob_key) as stream:
                        upstream_file_id = await provider.upload_input(f"{batch.id}.jsonl", stream)
                    lifecycle.transition(self.engine, batch.id, upstream_input_file_id=upstream_file_id)
                upstream = await provider.find_batch(batch.id)
                if upstream is None:
                    upstream = await provider.create_batch(upstream_file_id, batch.endpoint, batch.id)
        except ApplicationError as exc:
            if exc.type == PERMANENT_TYPE:
                self._fail(
                    batch.id,
                    [LineProblem(code="upstream_error", message=f"The upstream refused the batch: {exc}")],
                )
                return SubmitResult(ok=False)
            raise
        lifecycle.transition(
            self.engine,
            batch.id,
            "in_progress",
            upstream_batch_id=upstream.id,
            total=input_file.line_count or 0,
        )
        return SubmitResult(ok=True)

    @activity.defn
    async def poll_batch(self, ref: BatchRef) -> UpstreamState:
        """Read the upstream batch once and mirror its progress into the batch row."""
        batch = self._load(ref.batch_id)
        assert batch.upstream_batch_id, "poll before submit"
        try:
            async with self._provider(batch) as provider:
                upstream = await provider.retrieve_batch(batch.upstream_batch_id)
        except ApplicationError as exc:
            if exc.type != PERMANENT_TYPE:
                raise
            # The upstream lost or refuses our batch for good (deleted, key revoked): end it failed.
            problem = LineProblem(code="upstream_error", message=f"The upstream batch is gone: {exc}")
            lifecycle.transition(self.engine, batch.id, errors=[problem.model_dump()])
            return UpstreamState(status="failed", terminal=True)
        fields: dict[str, Any] = {"completed": upstream.completed, "failed": upstream.failed}
        if upstream.total:
            fields["total"] = upstream.total
        if upstream.usage:
            fields["usage"] = upstream.usage
        if upstream.status == "failed":
            fields["errors"] = upstream.errors or [
                {
                    "code": "upstream_failed",
                    "message": "The upstream batch failed.",
                    "param": None,
                    "line": None,
                }
            ]
        lifecycle.transition(
            self.engine, batch.id, "in_progress" if upstream.status in UPSTREAM_ACTIVE else None, **fields
        )
        return UpstreamState(
            status=upstream.status,
            terminal=upstream.terminal,
            total=upstream.total,
            completed=upstream.completed,
            failed=upstream.failed,
            cancel_requested=batch.cancel_requested,
        )

    @activity.defn
    async def cancel_upstream(self, request: CancelUpstreamInput) -> bool:
        """Cancel the upstream batch; returns whether one exists (it may have been created by a submit
        attempt that was cut short before it could record the id)."""
        if request.requested:
            # A cancel signalled from the Temporal UI never passed through the API: record it here too.
            lifecycle.transition(self.engine, request.batch_id, "cancelling", cancel_requested=True)
        batch = self._load(request.batch_id)
        if not batch.upstream_batch_id and not batch.upstream_input_file_id:
            return False  # nothing was ever sent upstream
        try:
            async with self._provider(batch) as provider:
                upstream_id = batch.upstream_batch_id
                if upstream_id is None:
                    found = await provider.find_batch(batch.id)
                    if found is None:
                        return False
                    upstream_id = found.id
                    lifecycle.transition(self.engine, batch.id, upstream_batch_id=upstream_id)
                await provider.cancel_batch(upstream_id)
        except ApplicationError as exc:
            # The upstream refuses to cancel a batch that already ended: polling will see how it ended.
            if exc.type != PERMANENT_TYPE:
                raise
            activity.logger.info("upstream refused cancel of %s: %s", batch.id, exc)
        return True

    @activity.defn
    async def finalize_batch(self, request: FinalizeInput) -> FinalizeResult:
        batch = await self._finalize(request)
        await asyncio.to_thread(self._purge_input, batch.input_file_id)
        return FinalizeResult(status=batch.status, completed=batch.completed, failed=batch.failed)

    def _purge_input(self, file_id: str) -> None:
        with Session(self.engine) as session:
            files.purge_if_deleted(session, self.blobs, file_id)

    async def _finalize(self, request: FinalizeInput) -> BatchRecord:
        batch = self._load(request.batch_id)
        if batch.is_terminal:
            return batch
        if request.outcome == "failed":
            return lifecycle.transition(self.engine, batch.id, "failed")
        if request.outcome != "cancelled":
            lifecycle.transition(self.engine, batch.id, "finalizing")
        input_file = await asyncio.to_thread(self._input_file, batch)  # may ask S3
        if input_file is None:
            self._fail(batch.id, [LineProblem(code="file_not_found", message="The input file is gone.")])
            return self._load(batch.id)
        try:
            async with AsyncExitStack() as stack:
                downloads: list[tuple[str, BinaryIO]] = []
                if batch.upstream_batch_id:
                    provider = await stack.enter_async_context(self._provider(batch))
                    upstream = await provider.retrieve_batch(batch.upstream_batch_id)
                    for kind, file_id in (
                        ("output", upstream.output_file_id),
                        ("error", upstream.error_file_id),
                    ):
                        if file_id:
                            handle = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
                            await provider.download_file(file_id, handle)
                            handle.seek(0)
                            downloads.append((kind, handle))
                reconciler = Reconciler(self.engine, self.blobs, batch, input_file)
                batch = await asyncio.to_thread(reconciler.run, request.outcome, downloads)
        except ApplicationError as exc:
            if exc.type != PERMANENT_TYPE:
                raise
            # The upstream ran the batch but will not hand over its results (key revoked, files gone).
            message = f"Could not fetch the upstream results: {exc}"
            self._fail(batch.id, [LineProblem(code="upstream_error", message=message)])
            batch = self._load(batch.id)
        return batch
