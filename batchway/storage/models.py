"""SQLModel tables: the read model of every batch and the per-line request log.

Activities write these rows on every transition; the API only reads them (plus the few writes a
request makes itself: uploads, batch creation, the cancel flag).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class Org(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str = Field(unique=True, index=True)
    created_at: int
    plan: str | None = None  # a Plan's name; None: no cap, no feedback
    # The LLM judge of the feedback feature: one of the org's providers and a model on it.
    judge_provider: str | None = None
    judge_model: str | None = None


class Plan(SQLModel, table=True):
    """What an org may use: a monthly token cap, and whether its batches are scored."""

    name: str = Field(primary_key=True)
    monthly_token_cap: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    feedback: bool = False
    judge_sample_rate: float = 0.1  # fraction of successful lines also scored by the judge
    created_at: int


class Price(SQLModel, table=True):
    """What a model costs on a provider (a provider name or kind), in dollars per million tokens; the
    longest `model` prefix that matches a line's model applies."""

    __table_args__ = (UniqueConstraint("provider", "model"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    model: str
    input_per_million: float
    cached_input_per_million: float
    output_per_million: float
    batch_discount: float = 0.5  # batch lines cost (1 - discount) of the price
    updated_at: int


class ApiKey(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, foreign_key="org.id")
    key_hash: str = Field(unique=True, index=True)  # sha256 hex; the key itself is shown once
    prefix: str  # first characters, so operators can tell keys apart
    created_at: int
    last_used_at: int | None = None  # to the minute: written at most once a minute per key
    revoked_at: int | None = Field(default=None, index=True)


class ProviderConfig(SQLModel, table=True):
    """An upstream an org may run batches on, e.g. `openai` at api.openai.com."""

    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True, foreign_key="org.id")
    name: str  # what the `batchway-provider` header names
    kind: str  # which adapter runs it (batchway.upstreams.registry)
    api_key: str | None = None
    base_url: str | None = None
    # Kind-specific settings, validated by the kind's options model (e.g. fan-out rate limits).
    options: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: int


class FileRecord(SQLModel, table=True):
    # An org's page is an index walk in list order (a plain org_id index sorted all its rows per page).
    __table_args__ = (Index("ix_filerecord_org_page", "org_id", "created_ns", "id"),)
    id: str = Field(primary_key=True)
    org_id: str
    filename: str
    purpose: str
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: int
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))  # list order
    expires_at: int | None = None
    blob_key: str
    # For batch input files, what the upload scan learned (see batchway.batch_input).
    line_count: int | None = None
    scan: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Hidden from the API: deleted by its org (removed once no running batch reads it), or an upload not
    # finished yet (`upload_complete` false; removed if it never finishes). The sweeper purges both.
    deleted: bool = False
    upload_complete: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})


class BatchRecord(SQLModel, table=True):
    __table_args__ = (Index("ix_batchrecord_org_page", "org_id", "created_ns", "id"),)
    id: str = Field(primary_key=True)
    org_id: str
    provider: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    model: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    usage: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    batch_metadata: dict[str, str] | None = Field(default=None, sa_column=Column("metadata", JSON))
    cancel_requested: bool = False
    # What the client sent with the create call: the session it named and its headers (credentials
    # removed); every line of the batch is logged with them.
    session_id: str | None = None
    request_headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))
    cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    output_ttl_seconds: int | None = None  # `output_expires_after.seconds`: the result files' lifetime
    # Upstream bookkeeping, never shown to clients: the adapter's own record of what it created upstream
    # (its checkpoint across retried submits), and when the first submit attempt began (a retry looks for
    # upstream batches created since then before creating another).
    upstream: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    submit_started_at: int | None = None


class RequestLog(SQLModel, table=True):
    """One row per batch line, written once (first writer wins) when its result is known: the per-line
    record, and the fan-out checkpoint. The line's full result sits in a result chunk blob at
    `chunk_key`, bytes [chunk_offset, chunk_offset + chunk_length)."""

    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id"),
        Index("ix_requestlog_batch_chunk", "batch_id", "chunk_key", "chunk_offset"),
        Index("ix_requestlog_org_created", "org_id", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    line_id: str = Field(unique=True, index=True)  # the public id: the `id` of its output/error file line
    org_id: str = Field(index=True)
    batch_id: str
    custom_id: str
    line: int | None = None
    source: str = "batch"  # "batch": a line of the batch; "judge": the call that scored one
    session_id: str | None = Field(default=None, index=True)
    provider: str
    endpoint: str
    model: str | None = None
    ok: bool = False  # in the output file (2xx answer) rather than the error file
    status_code: int | None = None  # null when the line never got an HTTP response
    error_code: str | None = None
    request_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latency_ms: int | None = None
    cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    chunk_key: str
    chunk_offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    chunk_length: int
    # Where the request is in the batch's input file (for a judge call: absent).
    input_offset: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    input_length: int | None = None
    # Feedback: a heuristic score with its reasons, and for a sampled few an LLM judge's.
    heuristic_score: float | None = None
    heuristic_reasons: list[str] | None = Field(default=None, sa_column=Column(JSON))
    judge_score: float | None = None
    judge_reason: str | None = None
    created_at: int


class ResultChunk(SQLModel, table=True):
    """A blob of result lines, recorded before it is written so a write cut short by a crash is still
    known and can be removed once the batch ends."""

    key: str = Field(primary_key=True)
    batch_id: str = Field(index=True)
    created_at: int


class WebhookEndpoint(SQLModel, table=True):
    """Where an org's batch events go, and the secret they are signed with."""

    org_id: str = Field(primary_key=True)
    url: str
    secret: str
    created_at: int


class WebhookDelivery(SQLModel, table=True):
    """One attempt to deliver one event: the delivery log."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(index=True)
    batch_id: str = Field(index=True)
    event_id: str
    event_type: str
    attempt: int
    status_code: int | None = None
    ok: bool
    error: str | None = None
    duration_ms: int
    created_at: int
