"""The objects of the simulated OpenAI Files + Batch API and how a batch moves by the clock.

How a batch moves (computed lazily from timestamps whenever it is read, see `Batch.advance`):
- `validating` for `validate_seconds`, then `in_progress`; lines finish in input order at
  `lines_per_second`; then `finalizing` for `FINALIZE_SECONDS`, then `completed`.
- Cancel: `cancelling` for `cancel_seconds`, then `cancelled`. Lines done before the cancel keep
  their results; the rest become `batch_cancelled` error lines.
- Still unfinished at `created_at + window_seconds`: `expired`, the rest become `batch_expired` lines.
- `stall=True`: nothing progresses once in progress and nothing expires; cancel still works.
- An empty input file, a duplicate `custom_id` or more than 50,000 lines: `failed` with `errors`.
"""

import asyncio
import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchway.simulator.config import SimulatorConfig
from batchway.simulator.progress import requests_done, run_requests

TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
FINALIZE_SECONDS = 0.1
FILE_TTL_SECONDS = 30 * 86400  # batch input and output files default to 30 days


@dataclass
class StoredFile:
    id: str
    owner: str
    seq: int
    filename: str
    purpose: str
    bytes: int
    created_at: float
    expires_at: float | None
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None if self.expires_at is None else int(self.expires_at),
            "status_details": None,
        }


@dataclass
class PreparedInput:
    """What validation learned from the input file; results themselves live in a scratch file."""

    total: int = 0
    model: str | None = None
    custom_ids: list[str | None] = field(default_factory=list)
    # Cumulative sums over lines in input order (index i = first i lines), so counts and usage for
    # "the first k lines are done" are O(1) lookups.
    ok_prefix: array = field(default_factory=lambda: array("q", [0]))
    input_tokens_prefix: array = field(default_factory=lambda: array("q", [0]))
    output_tokens_prefix: array = field(default_factory=lambda: array("q", [0]))
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Batch:
    id: str
    owner: str
    seq: int
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    output_ttl_seconds: float
    created_at: float
    expires_at: float
    prepared: PreparedInput
    scratch_path: Path
    status: str = "validating"
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None
    progress: float = 0.0  # lines done, fractional; advanced piecewise so config changes apply from "now"
    progressed_at: float = 0.0
    output_file_id: str | None = None
    error_file_id: str | None = None
    materialized: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def total(self) -> int:
        return self.prepared.total

    @property
    def done(self) -> int:
        return requests_done(self.progress, self.total)

    def request_counts(self) -> dict[str, int]:
        if self.status in ("failed", "validating"):
            return {"total": 0, "completed": 0, "failed": 0}
        succeeded = self.prepared.ok_prefix[self.done]
        if self.status in ("cancelled", "expired"):
            # Unexecuted lines count as failed so completed + failed == total.
            return {"total": self.total, "completed": succeeded, "failed": self.total - succeeded}
        return {"total": self.total, "completed": succeeded, "failed": self.done - succeeded}

    def usage(self) -> dict[str, Any] | None:
        if self.in_progress_at is None and self.status not in ("cancelled", "expired"):
            return None
        input_tokens = self.prepared.input_tokens_prefix[self.done]
        output_tokens = self.prepared.output_tokens_prefix[self.done]
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }

    def to_json(self) -> dict[str, Any]:
        def ts(value: float | None) -> int | None:
            return None if value is None else int(value)

        errors = self.prepared.errors if self.status == "failed" else []
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.prepared.model,
            "errors": {"object": "list", "data": errors} if errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "in_progress_at": ts(self.in_progress_at),
            "expires_at": int(self.expires_at),
            "finalizing_at": ts(self.finalizing_at),
            "completed_at": ts(self.completed_at),
            "failed_at": ts(self.failed_at),
            "expired_at": ts(self.expired_at),
            "cancelling_at": ts(self.cancelling_at),
            "cancelled_at": ts(self.cancelled_at),
            "request_counts": self.request_counts(),
            "usage": self.usage(),
            "metadata": self.metadata,
        }

    def advance(self, config: SimulatorConfig, now: float) -> None:
        """Move forward to `now` under the current config. Idempotent; never moves back."""
        expiry_enabled = not config.stall  # a stalled batch never expires by itself
        while True:
            if self.status == "validating":
                validated_at = self.created_at + config.validate_seconds
                if expiry_enabled and self.expires_at < validated_at and self.expires_at <= now:
                    self.status, self.expired_at = "expired", self.expires_at
                    return
                if validated_at > now:
                    return
                if self.prepared.errors:
                    self.status, self.failed_at = "failed", validated_at
                    return
                self.status, self.in_progress_at = "in_progress", validated_at
                self.progressed_at = validated_at
            elif self.status == "in_progress":
                rate = 0.0 if config.stall else config.lines_per_second
                deadline = self.expires_at if expiry_enabled else math.inf
                run = run_requests(self.total, self.progress, self.progressed_at, rate, deadline, now)
                self.progress, self.progressed_at = run.progress, run.at
                if run.outcome == "running":
                    return
                if run.outcome == "deadline":
                    self.status, self.expired_at = "expired", run.at
                    return
                self.status, self.finalizing_at = "finalizing", run.at
            elif self.status == "finalizing":
                assert self.finalizing_at is not None
                completed_at = self.finalizing_at + FINALIZE_SECONDS
                if completed_at > now:
                    return
                self.status, self.completed_at = "completed", completed_at
                return
            elif self.status == "cancelling":
                assert self.cancelling_at is not None
                cancelled_at = self.cancelling_at + config.cancel_seconds
                if cancelled_at > now:
                    return
                self.status, self.cancelled_at = "cancelled", cancelled_at
                return
            else:
                return
