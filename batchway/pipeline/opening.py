"""The first step of every batch: make sure its row exists, then decide whether its input can run.

The upload scan already checked every line of the stored file, and create checked the scan against
the endpoint. The stored bytes are trusted when they are still the size the scan saw (blobs are
written once); otherwise the file is scanned again and the batch fails with the line that is wrong.
Blocking I/O: call from a thread.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from batchway import lifecycle
from batchway.batch_input import InputFileError, InputScan, InputScanner, LineProblem
from batchway.contracts import BatchSpec, OpenResult
from batchway.jsonl import read_chunks
from batchway.pipeline.deps import Deps
from batchway.settings import Settings
from batchway.storage.blobstore import BlobStore
from batchway.storage.db import insert_ignoring_conflicts
from batchway.storage.models import BatchRecord, FileRecord
from batchway.upstreams.base import PermanentUpstreamError


def batch_row(spec: BatchSpec) -> dict[str, object]:
    return {
        "id": spec.id,
        "org_id": spec.org_id,
        "provider": spec.provider,
        "endpoint": spec.endpoint,
        "input_file_id": spec.input_file_id,
        "completion_window": spec.completion_window,
        "status": lifecycle.Status.VALIDATING,
        "created_at": spec.created_at,
        "created_ns": spec.created_ns,
        "expires_at": spec.expires_at,
        "metadata": spec.metadata,
        "session_id": spec.session_id,
        "request_headers": spec.request_headers,
        "output_ttl_seconds": spec.output_ttl_seconds,
    }


def insert_batch_row(session: Session, spec: BatchSpec) -> None:
    """Insert the batch row unless it exists (the API and the workflow both try; the first one wins)."""
    # Core insert: keys are column names (the `metadata` column is the model's `batch_metadata`).
    insert_ignoring_conflicts(session, BatchRecord, [batch_row(spec)], ["id"])
    session.commit()


def open_batch(deps: Deps, spec: BatchSpec) -> OpenResult:
    engine, blobs = deps.engine, deps.blobs
    with Session(engine, expire_on_commit=False) as session:
        insert_batch_row(session, spec)
        batch = session.get(BatchRecord, spec.id)
        input_file = session.get(FileRecord, spec.input_file_id)
    assert batch is not None
    if lifecycle.is_terminal(batch.status):
        return OpenResult(ok=False)
    problems, scan = _check_input(blobs, deps.settings, batch, input_file)
    checkpoint: dict[str, Any] | None = None
    if not problems and input_file is not None:
        # Some upstreams need every line translated before anything is sent (and it may be refused).
        try:
            kind, config = deps.upstream_config(batch)
        except PermanentUpstreamError as exc:
            problems = [
                LineProblem(code="provider_not_configured", message=str(exc), param="batchway-provider")
            ]
        else:
            if kind.prepare_input is not None and not (batch.upstream or {}).get("checkpoint"):
                problems, checkpoint = kind.prepare_input(
                    blobs.open_read(input_file.blob_key), config.options
                )
    if problems:
        lifecycle.transition(engine, batch.id, errors=[p.model_dump() for p in problems])
        return OpenResult(ok=False)
    assert scan is not None
    fields: dict[str, Any] = {"model": scan.model}
    if checkpoint is not None:
        fields["upstream"] = {"checkpoint": checkpoint}
    lifecycle.transition(engine, batch.id, **fields)
    return OpenResult(ok=True, total=scan.line_count)


def _check_input(
    blobs: BlobStore, settings: Settings, batch: BatchRecord, input_file: FileRecord | None
) -> tuple[list[LineProblem], InputScan | None]:
    if input_file is None or input_file.org_id != batch.org_id or input_file.scan is None:
        return [_gone(batch)], None
    try:
        size = blobs.size(input_file.blob_key)
    except FileNotFoundError:
        return [_gone(batch)], None
    scan = InputScan.model_validate(input_file.scan)
    if size != input_file.bytes:  # not the bytes that were scanned: look at them again
        scanner = InputScanner(settings.max_lines, settings.max_line_bytes)
        try:
            with blobs.open_read(input_file.blob_key) as stream:
                scan = scanner.scan(read_chunks(stream))
        except InputFileError as exc:
            return [LineProblem(code=exc.code, message=exc.message, line=exc.line)], None
    return scan.problems_for(batch.endpoint), scan


def _gone(batch: BatchRecord) -> LineProblem:
    return LineProblem(
        code="file_not_found",
        message=f"Input file {batch.input_file_id} no longer exists.",
        param="input_file_id",
    )
