"""What crosses Temporal: ids, counts and statuses, never file bodies, prompts, completions or keys.

Imported by workflow code inside the sandbox, so it keeps to light imports.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "BatchWorkflow"
RECOVERY_WORKFLOW_TYPE = "RecoverBatchWorkflow"
SWEEPER_WORKFLOW_TYPE = "SweeperWorkflow"
SWEEPER_SCHEDULE_ID = "batchway-sweeper"
CANCEL_SIGNAL = "cancel"
PROGRESS_QUERY = "progress"

SA_ORG = SearchAttributeKey.for_keyword("BatchOrg")
SA_PROVIDER = SearchAttributeKey.for_keyword("BatchProvider")
SA_STATUS = SearchAttributeKey.for_keyword("BatchStatus")
SA_ENDPOINT = SearchAttributeKey.for_keyword("BatchEndpoint")
ALL_SEARCH_ATTRIBUTES = (SA_ORG, SA_PROVIDER, SA_STATUS, SA_ENDPOINT)

Outcome = Literal["completed", "expired", "cancelled", "failed"]
Style = Literal["remote", "executed"]
Phase = Literal["open", "submit", "poll", "execute", "collect", "finalize"]


class BatchSpec(BaseModel):
    """The batch row as created: the workflow inserts it if the API could not (so a batch whose workflow
    started always has a row, and one whose start failed never has one)."""

    id: str
    org_id: str
    provider: str
    endpoint: str
    input_file_id: str
    completion_window: str
    created_at: int
    created_ns: int
    expires_at: int
    metadata: dict[str, str] | None = None
    session_id: str | None = None  # the `batchway-session-id` header sent with the create call
    request_headers: dict[str, str] | None = None  # its headers, credentials removed (bounded)
    output_ttl_seconds: int | None = None  # `output_expires_after.seconds` for the result files


class ChunkSpec(BaseModel):
    """A slice of a fan-out batch's input: lines first..last (1-based, inclusive) from byte start_byte."""

    index: int
    first_line: int
    last_line: int
    start_byte: int


class ChunkInput(BaseModel):
    batch_id: str
    chunk: ChunkSpec
    stop_at: float  # unix seconds: the completion window ends; no line is sent after it


class ChunkResult(BaseModel):
    stored: int  # lines this attempt stored
    resent: int  # lines a killed earlier attempt had sent but not stored: sent again by this one
    rate_limited: int  # 429 answers seen by this worker's limiter for the upstream, in total
    admitted_per_second: float  # the limiter's current rate
    concurrency: int  # the limiter's current window
    cancel_requested: bool = False  # the batch row says a cancel was asked for


class BatchWorkflowInput(BaseModel):
    spec: BatchSpec
    style: Style
    deadline_at: int  # unix seconds: expires_at + grace; past it an unfinished upstream is cancelled
    cancel_grace_seconds: float  # how long to wait for an upstream to honour a cancel before giving up
    poll_min_seconds: float
    poll_max_seconds: float
    polls_per_run: int = 0  # 0: continue-as-new only when Temporal suggests it
    chunks_in_flight: int = 4  # fan-out: chunk activities of this batch running at once
    # Carried over on continue-as-new.
    phase: Phase = "open"
    poll_interval_seconds: float | None = None
    cancel_requested: bool = False
    upstream_cancel_sent_at: float | None = None  # workflow time batchway asked the upstream to cancel
    deadline_hit: bool = False
    outcome: Outcome | None = None
    unreadable: int = 0  # upstream result lines that named no custom_id we could read
    # Fan-out (executed upstreams): the chunk plan, how far it got, what the chunks reported.
    chunks: list[ChunkSpec] | None = None
    next_chunk: int = 0
    chunks_done: int = 0
    chunks_failed: int = 0
    lines_done: int = 0  # lines of the chunks done (not of those in flight)
    resent: int = 0


class BatchRef(BaseModel):
    batch_id: str


class OpenResult(BaseModel):
    ok: bool  # False: the batch failed validation (the reasons are on its row)
    total: int = 0


class SubmitResult(BaseModel):
    ok: bool  # False: the upstream refused the batch for good (the reason is on the batch row)


class CancelUpstreamInput(BaseModel):
    batch_id: str
    requested: bool  # True: someone asked to cancel (API, CLI, UI); False: batchway's deadline passed


class PollResult(BaseModel):
    state: str  # the upstream's status in batchway's terms (batchway.upstreams.base.RemoteState)
    ended: bool
    lost: bool = False  # the upstream refuses to report on the batch for good (the reason is on the row)
    total: int = 0
    completed: int = 0
    failed: int = 0
    cancel_requested: bool = False  # the batch row says a cancel was asked for


class CollectInput(BaseModel):
    batch_id: str
    outcome: Outcome


class CollectResult(BaseModel):
    fetched: bool  # False: the upstream refuses to hand over its results (the reason is on the row)
    stored: int = 0  # lines newly stored by this attempt
    unreadable: int = 0  # result lines that named no readable custom_id


class FinalizeInput(BaseModel):
    batch_id: str
    outcome: Outcome
    unreadable: int = 0
    # Why a batch ends `failed` when the row does not already say (e.g. its workflow was terminated).
    error_code: str | None = None
    error_message: str | None = None


class FinalizeResult(BaseModel):
    status: str
    completed: int
    failed: int
    # Whether the follow-up steps have anything to do (an org webhook; feedback scores). True by default
    # so a run started by an older worker, whose result lacks them, still runs both.
    notify: bool = True
    score: bool = True


class Progress(BaseModel):
    batch_id: str
    phase: str
    status: str
    upstream_state: str | None
    completed: int
    failed: int
    total: int
    cancel_requested: bool
    resent: int = 0  # fan-out: lines sent again after a crash cut their first answer short


class ScoreResult(BaseModel):
    scored: int  # lines given a heuristic score
    judged: int  # lines also graded by the LLM judge


class RecoverInput(BaseModel):
    batch_id: str
    reason: str  # shown to the batch's org as the error message


class SweepResult(BaseModel):
    recovered: list[str] = []  # batches whose recovery started
    expired: int = 0  # files past their expiry, removed
    purged: int = 0  # hidden files (deleted, or uploads never finished) removed
