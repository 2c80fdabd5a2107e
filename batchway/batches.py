"""The Batches API below HTTP: create and cancel (shared by the API and the CLI), org-scoped reads.

Create starts the batch's workflow *before* writing its row, and the workflow writes the row too if
the API could not: a batch is never stored without a workflow to run it, and never runs without a row.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from batchway import ids, lifecycle, request_headers, tenancy, usage
from batchway.batch_input import InputScan
from batchway.clock import now, now_ns
from batchway.contracts import BatchSpec
from batchway.errors import APIError, bad_request, not_found
from batchway.files import check_expires_after, get_file
from batchway.ids import looks_like_id
from batchway.paging import page
from batchway.pipeline.opening import batch_row, insert_batch_row
from batchway.settings import Settings
from batchway.storage.models import BatchRecord, Org, ProviderConfig
from batchway.upstreams.registry import BATCH_ENDPOINTS, ProviderKind, get_kind
from batchway.workflow_start import signal_cancel, start_batch_workflow

log = logging.getLogger(__name__)
COMPLETION_WINDOWS = ("24h",)
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512


def check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise bad_request("metadata must be an object of string keys and string values.", param="metadata")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise bad_request(f"metadata can hold at most {MAX_METADATA_PAIRS} pairs.", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise bad_request(
                f"metadata keys can be at most {MAX_METADATA_KEY} characters; '{key[:20]}...' is longer.",
                param="metadata",
            )
        if not isinstance(value, str):
            raise bad_request(f"metadata value for '{key}' must be a string.", param="metadata")
        if "\x00" in key or "\x00" in value:
            raise bad_request("metadata cannot contain NUL characters.", param="metadata")
        if len(value) > MAX_METADATA_VALUE:
            raise bad_request(
                f"metadata value for '{key}' is longer than {MAX_METADATA_VALUE} characters.",
                param="metadata",
            )
    return metadata


def plan_batch(
    session: Session,
    settings: Settings,
    *,
    org_id: str,
    provider: ProviderConfig,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: Any,
    headers: dict[str, str] | None = None,
    output_expires_after: Any = None,
) -> tuple[BatchSpec, ProviderKind, int]:
    """Every check a create makes before anything is started; returns the batch to start, the kind of
    upstream that runs it and its number of requests."""
    kind = get_kind(provider.kind)
    if endpoint not in BATCH_ENDPOINTS:
        raise bad_request(
            f"Invalid endpoint '{endpoint}'; supported: {', '.join(BATCH_ENDPOINTS)}.", param="endpoint"
        )
    if endpoint not in kind.endpoints:
        raise bad_request(
            f"Provider '{provider.name}' ({kind.name}) does not run {endpoint} batches; it supports "
            f"{', '.join(kind.endpoints)}.",
            param="endpoint",
        )
    if completion_window not in COMPLETION_WINDOWS:
        raise bad_request(
            f"Invalid completion_window '{completion_window}'; the only supported value is '24h'.",
            param="completion_window",
        )
    checked_metadata = check_metadata(metadata)
    output_ttl = _output_ttl(output_expires_after)
    input_file = get_file(session, org_id, input_file_id)
    if input_file.purpose != "batch" or input_file.scan is None:
        raise bad_request(
            f"File {input_file_id} has purpose '{input_file.purpose}'; a batch needs a file uploaded "
            "with purpose 'batch'.",
            param="input_file_id",
        )
    problems = InputScan.model_validate(input_file.scan).problems_for(endpoint)
    if problems:
        first = problems[0]
        raise bad_request(
            f"Invalid batch input file {input_file_id}: {first.message}",
            param="input_file_id",
            code=first.code,
        )
    created = now()
    spec = BatchSpec(
        id=ids.new_batch_id(),
        org_id=org_id,
        provider=provider.name,
        endpoint=endpoint,
        input_file_id=input_file_id,
        completion_window=completion_window,
        created_at=created,
        created_ns=now_ns(),
        expires_at=created + settings.completion_window_seconds,
        metadata=checked_metadata,
        session_id=request_headers.session_id(headers or {}),
        request_headers=headers or None,
        output_ttl_seconds=output_ttl,
    )
    return spec, kind, input_file.line_count or 0


def _output_ttl(output_expires_after: Any) -> int | None:
    """`output_expires_after`: `{"anchor": "created_at", "seconds": 3600..2592000}` for the result files."""
    if output_expires_after is None:
        return None
    if not isinstance(output_expires_after, dict):
        raise bad_request("output_expires_after must be an object.", param="output_expires_after")
    seconds = output_expires_after.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise bad_request(
            "output_expires_after.seconds must be an integer.", param="output_expires_after.seconds"
        )
    return check_expires_after(output_expires_after.get("anchor"), seconds)


async def create_batch(
    engine: Engine,
    client: Client | None,
    settings: Settings,
    *,
    org: Org,
    provider_name: str | None,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: Any,
    headers: dict[str, str] | None = None,
    output_expires_after: Any = None,
) -> BatchRecord:
    def plan() -> tuple[BatchSpec, ProviderKind, int]:
        with Session(engine) as session:
            provider = tenancy.resolve_provider(session, org.id, provider_name)
            usage.check_cap(session, org)
            return plan_batch(
                session,
                settings,
                org_id=org.id,
                provider=provider,
                input_file_id=input_file_id,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata=metadata,
                headers=headers,
                output_expires_after=output_expires_after,
            )

    spec, kind, line_count = await asyncio.to_thread(plan)
    if client is None:
        raise APIError(503, "The batch engine is unavailable right now.", type="server_error")
    try:
        await start_batch_workflow(
            client, settings, spec, org_name=org.name, style=kind.style, line_count=line_count
        )
    except Exception as exc:  # nothing was stored: the client may simply retry
        raise APIError(503, f"Could not start the batch: {exc}", type="server_error") from exc
    try:
        await asyncio.to_thread(_insert_row, engine, spec)
    except Exception:  # the workflow writes the row itself in its first step
        log.exception("could not write the row of %s; its workflow will", spec.id)
    row = batch_row(spec)
    return BatchRecord.model_validate(row | {"batch_metadata": row.pop("metadata")})


def _insert_row(engine: Engine, spec: BatchSpec) -> None:
    with Session(engine) as session:
        insert_batch_row(session, spec)


def get_batch(session: Session, org_id: str, batch_id: str) -> BatchRecord:
    row = session.get(BatchRecord, batch_id) if looks_like_id(batch_id) else None
    if row is None or row.org_id != org_id:
        raise not_found("Batch", batch_id)
    return row


def list_batches(
    session: Session, org_id: str, limit: int, after: str | None
) -> tuple[list[BatchRecord], bool]:
    return page(session, BatchRecord, org_id=org_id, after=after, limit=limit, descending=True)


def mark_cancelling(session: Session, org_id: str, batch_id: str) -> BatchRecord:
    """Record the cancel request on the row (400 if the batch can no longer be cancelled)."""
    get_batch(session, org_id, batch_id)
    return lifecycle.request_cancel(session, batch_id)


async def cancel_batch(engine: Engine, client: Client | None, org_id: str, batch_id: str) -> BatchRecord:
    """Cancel a batch: the row says `cancelling` at once, then the workflow is signalled. If the signal
    cannot be delivered the workflow still reads the flag from the row at its next poll."""

    def mark() -> BatchRecord:
        with Session(engine, expire_on_commit=False) as session:
            return mark_cancelling(session, org_id, batch_id)

    row = await asyncio.to_thread(mark)
    try:
        if client is None:
            raise RuntimeError("no connection to Temporal")
        await signal_cancel(client, batch_id)
    except (RPCError, RuntimeError) as exc:
        ended = isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND
        log.log(
            logging.INFO if ended else logging.WARNING, "cancel signal for %s not sent: %s", batch_id, exc
        )
    return row
