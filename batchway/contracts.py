"""What crosses Temporal: ids, counts and statuses only, never file bodies, prompts or keys.

Imported by workflow code inside the sandbox, so it keeps to light imports.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "BatchWorkflow"
CANCEL_SIGNAL = "cancel"
PROGRESS_QUERY = "progress"

SA_ORG = SearchAttributeKey.for_keyword("BatchOrg")
SA_PROVIDER = SearchAttributeKey.for_keyword("BatchProvider")
SA_STATUS = SearchAttributeKey.for_keyword("BatchStatus")
SA_ENDPOINT = SearchAttributeKey.for_keyword("BatchEndpoint")
ALL_SEARCH_ATTRIBUTES = (SA_ORG, SA_PROVIDER, SA_STATUS, SA_ENDPOINT)

Outcome = Literal["completed", "expired", "cancelled", "failed"]


class BatchWorkflowInput(BaseModel):
    batch_id: str
    deadline_at: int  # unix seconds: expires_at + grace; past it an unfinished upstream is cancelled
    poll_min_seconds: float
    poll_max_seconds: float
    polls_per_run: int = 0  # 0: continue-as-new only when Temporal suggests it
    # Carried over on continue-as-new.
    phase: Literal["validate", "submit", "poll"] = "validate"
    poll_interval_seconds: float | None = None
    cancel_requested: bool = False
    upstream_cancel_sent: bool = False
    deadline_hit: bool = False


class BatchRef(BaseModel):
    batch_id: str


class CancelUpstreamInput(BaseModel):
    batch_id: str
    requested: bool  # True: someone asked to cancel (API, CLI, UI); False: batchway's deadline passed


class ValidationResult(BaseModel):
    ok: bool
    total: int = 0


class SubmitResult(BaseModel):
    ok: bool  # False: the upstream refused the batch for good (the reason is on the batch row)


class UpstreamState(BaseModel):
    status: str  # the upstream's own status string
    terminal: bool
    total: int = 0
    completed: int = 0
    failed: int = 0
    cancel_requested: bool = False  # the batch row says a cancel was asked for


class FinalizeInput(BaseModel):
    batch_id: str
    outcome: Outcome


class FinalizeResult(BaseModel):
    status: str
    completed: int
    failed: int


class Progress(BaseModel):
    batch_id: str
    phase: str
    status: str
    upstream_status: str | None
    completed: int
    failed: int
    total: int
    cancel_requested: bool
