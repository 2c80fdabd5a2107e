"""The Anthropic MessageBatch object (contract §3.3) and how it moves by the clock.

A batch is `in_progress` from creation; its requests finish in input order at `lines_per_second`
and it is `ended` the moment the last one finishes. Cancel: `canceling` for `cancel_seconds`, then
`ended`; requests finished before the cancel keep their results, the rest are `canceled`. Still
unfinished at `created_at + window_seconds`: `ended`, the rest `expired`. `stall`: nothing
progresses and nothing expires; cancel still works. Counts other than `processing` stay 0 until
the batch has ended, as Anthropic reports them.
"""

import math
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pydantic

from batchway.simulator.config import SimulatorConfig
from batchway.simulator.progress import requests_done, run_requests


def rfc3339(timestamp: float | None) -> str | None:
    """e.g. `2024-08-20T18:37:24.100435Z`, as Anthropic writes its timestamps."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class PreparedRequests:
    """What a batch needs from its requests after creation; their results live in a scratch file."""

    custom_ids: list[str]
    # ok_prefix[i] = succeeded among the first i requests, so counts for "k done" are O(1).
    ok_prefix: array = field(default_factory=lambda: array("q", [0]))

    @property
    def total(self) -> int:
        return len(self.custom_ids)


class PreparedRecord(pydantic.BaseModel):
    """On-disk form of `PreparedRequests`. Written once when the batch is created, never changed."""

    custom_ids: list[str]
    ok_prefix: list[int]

    @pydantic.model_validator(mode="after")
    def _consistent_lengths(self) -> "PreparedRecord":
        if len(self.ok_prefix) != len(self.custom_ids) + 1:
            raise ValueError("ok_prefix does not match custom_ids")
        return self

    @staticmethod
    def dump(prepared: PreparedRequests) -> bytes:
        return orjson.dumps({"custom_ids": prepared.custom_ids, "ok_prefix": prepared.ok_prefix.tolist()})

    def load(self) -> PreparedRequests:
        return PreparedRequests(custom_ids=self.custom_ids, ok_prefix=array("q", self.ok_prefix))


@dataclass
class MessageBatch:
    id: str
    owner: str
    seq: int
    created_at: float
    expires_at: float
    prepared: PreparedRequests
    scratch_path: Path
    processing_status: str = "in_progress"
    progress: float = 0.0  # requests done, fractional; advanced piecewise so config changes apply from "now"
    progressed_at: float = 0.0
    cancel_initiated_at: float | None = None
    ended_at: float | None = None

    @property
    def total(self) -> int:
        return self.prepared.total

    @property
    def done(self) -> int:
        return requests_done(self.progress, self.total)

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @property
    def unfinished_result(self) -> str:
        """What requests that never ran became: canceled after a cancel, else expired."""
        return "canceled" if self.cancel_initiated_at is not None else "expired"

    def request_counts(self) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if not self.ended:
            counts["processing"] = self.total
            return counts
        succeeded = self.prepared.ok_prefix[self.done]
        counts["succeeded"] = succeeded
        counts["errored"] = self.done - succeeded
        counts[self.unfinished_result] = self.total - self.done
        return counts

    def to_json(self, base_url: str) -> dict[str, Any]:
        """`base_url` is this server's root as the caller reached it, for the absolute `results_url`."""
        results_url = f"{base_url.rstrip('/')}/v1/messages/batches/{self.id}/results" if self.ended else None
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": self.request_counts(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "ended_at": rfc3339(self.ended_at),
            "cancel_initiated_at": rfc3339(self.cancel_initiated_at),
            "archived_at": None,  # results are never archived here
            "results_url": results_url,
        }

    def advance(self, config: SimulatorConfig, now: float) -> None:
        """Move forward to `now` under the current config. Idempotent; never moves back."""
        if self.processing_status == "in_progress":
            rate = 0.0 if config.stall else config.lines_per_second
            deadline = math.inf if config.stall else self.expires_at  # a stalled batch never expires
            run = run_requests(self.total, self.progress, self.progressed_at, rate, deadline, now)
            self.progress, self.progressed_at = run.progress, run.at
            if run.outcome != "running":
                self.processing_status, self.ended_at = "ended", run.at
        elif self.processing_status == "canceling":
            assert self.cancel_initiated_at is not None
            ended_at = self.cancel_initiated_at + config.cancel_seconds
            if ended_at <= now:
                self.processing_status, self.ended_at = "ended", ended_at

    def cancel(self, now: float) -> None:
        """Freeze progress at `now` (requests done so far keep their results) and start canceling."""
        if self.processing_status == "in_progress":
            self.processing_status, self.cancel_initiated_at = "canceling", now
