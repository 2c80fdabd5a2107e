"""In-memory Files + Batches state, the clock-driven batch lifecycle (contract §2.4) and the counters.

Everything is global (any bearer key sees everything). A batch's status is recomputed from the clock
whenever it is read, so nothing runs in the background. One lock guards it all, because tests read
the counters from their own thread while the server thread serves.
"""

from __future__ import annotations

import itertools
import secrets
import string
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.hostile.faults import Timing
from tests.hostile.results import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    cancelled_line,
    corrupted_output,
    good_line,
    jsonl,
)

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
TAG = "batchway_batch_id"
_BASE62 = string.ascii_letters + string.digits


class ApiError(Exception):
    """Answered as OpenAI's error envelope (contract §2.10)."""

    def __init__(
        self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param = status, message, type, param

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": None}}


@dataclass
class StoredFile:
    id: str
    seq: int
    filename: str
    purpose: str
    data: bytes
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": int(self.created_at) + 30 * 86400,
            "status_details": None,
        }


@dataclass
class ParsedInput:
    custom_ids: list[str]
    model: str | None
    errors: list[dict[str, Any]]


@dataclass
class Batch:
    id: str
    seq: int
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: float
    parsed: ParsedInput
    fate: str | None  # "stay_finalizing" | "unknown_status" | "fail_midway" | None, fixed at create
    corruptions: tuple[str, ...]
    status: str = "validating"
    times: dict[str, float] = field(default_factory=dict)  # "<status>_at" -> unix seconds
    done: int = 0  # lines finished
    cancel_ignored: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None

    def request_counts(self) -> dict[str, int]:
        total = len(self.parsed.custom_ids)
        if self.status == "cancelled":
            return {"total": total, "completed": self.done, "failed": total - self.done}
        if "in_progress_at" not in self.times:
            return {"total": 0, "completed": 0, "failed": 0}
        return {"total": total, "completed": self.done, "failed": 0}

    def usage(self) -> dict[str, Any] | None:
        if "in_progress_at" not in self.times:
            return None
        prompt, completion = self.done * PROMPT_TOKENS, self.done * COMPLETION_TOKENS
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        }

    def to_json(self) -> dict[str, Any]:
        def at(name: str) -> int | None:
            value = self.times.get(f"{name}_at")
            return None if value is None else int(value)

        errors = self.parsed.errors if self.status == "failed" else []
        if self.status == "failed" and self.fate == "fail_midway":
            errors = [{"code": "server_error", "message": "The batch failed.", "param": None, "line": None}]
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.parsed.model,
            "errors": {"object": "list", "data": errors} if errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": "mystery" if self.fate == "unknown_status" else self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "in_progress_at": at("in_progress"),
            "expires_at": int(self.created_at) + 86400,
            "finalizing_at": at("finalizing"),
            "completed_at": at("completed"),
            "failed_at": at("failed"),
            "expired_at": None,
            "cancelling_at": at("cancelling"),
            "cancelled_at": at("cancelled"),
            "request_counts": self.request_counts(),
            "usage": self.usage(),
            "metadata": self.metadata,
        }


def _invalid(code: str, message: str, line: int | None = None) -> ParsedInput:
    return ParsedInput([], None, [{"code": code, "message": message, "param": None, "line": line}])


def parse_input(data: bytes) -> ParsedInput:
    """Just enough validation (§2.9) to know the custom_ids; a bad file makes the batch `failed`."""
    custom_ids: list[str] = []
    model: str | None = None
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            return _invalid("invalid_json_line", "This line is not a valid request.", number)
        custom_ids.append(line["custom_id"])
        body = line.get("body")
        if model is None and isinstance(body, dict) and isinstance(body.get("model"), str):
            model = body["model"]
    if not custom_ids:
        return _invalid("empty_file", "The input file is empty.")
    if len(set(custom_ids)) != len(custom_ids):
        return _invalid("duplicate_custom_id", "custom_id must be unique within the file.")
    return ParsedInput(custom_ids, model, [])


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)
    failed_calls: Counter[str] = field(default_factory=Counter)
    batches_created: Counter[str] = field(default_factory=Counter)
    lost_creates: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    file_uploads: int = 0
    decoys_created: int = 0
    corrupted: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return orjson.loads(orjson.dumps(self.__dict__))  # plain, deep copies


class Store:
    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.lock = threading.RLock()
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}
        self.stats = Stats()
        self._seq = itertools.count(1)
        self._parsed: dict[str, ParsedInput] = {}

    # -- files --------------------------------------------------------------------------------------

    def add_file(self, filename: str, purpose: str, data: bytes, now: float) -> StoredFile:
        file_id = "file-" + "".join(secrets.choice(_BASE62) for _ in range(22))
        with self.lock:
            stored = self.files[file_id] = StoredFile(file_id, next(self._seq), filename, purpose, data, now)
        return stored

    def get_file(self, file_id: str) -> StoredFile:
        with self.lock:
            if file_id not in self.files:
                raise ApiError(404, f"No such File object: {file_id}", param="id")
            return self.files[file_id]

    # -- batches ------------------------------------------------------------------------------------

    def create_batch(
        self, body: dict[str, Any], now: float, fate: str | None = None, corruptions: tuple[str, ...] = ()
    ) -> Batch:
        file_id = body["input_file_id"]
        with self.lock:
            self.get_file(file_id)
            if file_id not in self._parsed:
                self._parsed[file_id] = parse_input(self.files[file_id].data)
            batch = Batch(
                id="batch_" + secrets.token_hex(16),
                seq=next(self._seq),
                endpoint=body["endpoint"],
                input_file_id=file_id,
                completion_window=body["completion_window"],
                metadata=body.get("metadata"),
                created_at=now,
                parsed=self._parsed[file_id],
                fate=fate,
                corruptions=corruptions,
            )
            self.batches[batch.id] = batch
        return batch

    def get_batch(self, batch_id: str, now: float) -> Batch:
        with self.lock:
            if batch_id not in self.batches:
                raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            batch = self.batches[batch_id]
            self.advance(batch, now)
            return batch

    def list_batches(self, after: str | None, limit: int, now: float) -> dict[str, Any]:
        """One page, newest first; `has_more` always present (contract §0.4, §2.5)."""
        with self.lock:
            ordered = sorted(self.batches.values(), key=lambda b: b.seq, reverse=True)
            if after is not None:
                if after not in self.batches:
                    raise ApiError(400, f"Invalid 'after': no batch {after!r}.", param="after")
                ordered = [b for b in ordered if b.seq < self.batches[after].seq]
            page = ordered[:limit]
            for batch in page:
                self.advance(batch, now)
            return {
                "object": "list",
                "data": [b.to_json() for b in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(ordered) > limit,
            }

    def advance(self, b: Batch, now: float) -> None:
        """Bring `b` up to `now`: validating -> in_progress -> finalizing -> completed, or a cancel."""
        if b.status in TERMINAL or b.fate == "unknown_status":
            return
        t = self.timing
        start = b.created_at + t.validate_seconds
        cancel_at = b.times.get("cancelling_at")
        if cancel_at is not None and not b.cancel_ignored:
            b.status, b.done = "cancelling", self._done_at(b, cancel_at)
            if now >= cancel_at + t.cancel_seconds:
                self._finish(b, "cancelled", cancel_at + t.cancel_seconds)
            return
        if now < start:
            b.status = "cancelling" if b.cancel_ignored else "validating"
            return
        if b.parsed.errors:
            b.status, b.times["failed_at"] = "failed", start
            return
        b.times.setdefault("in_progress_at", start)
        b.done = self._done_at(b, now)
        finalizing_at = start + t.run_seconds
        if b.cancel_ignored:  # the cancel was swallowed: it keeps running and never ends
            b.status = "cancelling"
        elif now < finalizing_at:
            b.status = "in_progress"
        elif b.fate == "fail_midway":
            b.status, b.times["failed_at"] = "failed", finalizing_at
        elif b.fate == "stay_finalizing" or now < finalizing_at + t.finalize_seconds:
            b.status = "finalizing"
            b.times.setdefault("finalizing_at", finalizing_at)
        else:
            b.times.setdefault("finalizing_at", finalizing_at)
            self._finish(b, "completed", finalizing_at + t.finalize_seconds)

    def _done_at(self, b: Batch, when: float) -> int:
        elapsed = when - b.created_at - self.timing.validate_seconds
        fraction = min(max(elapsed / self.timing.run_seconds, 0.0), 1.0)
        return int(len(b.parsed.custom_ids) * fraction + 1e-9)

    def _finish(self, b: Batch, status: str, at: float) -> None:
        """Enter a terminal state and write its result files (§2.7, §2.8)."""
        b.status, b.times[f"{status}_at"] = status, at
        done, rest = b.parsed.custom_ids[: b.done], b.parsed.custom_ids[b.done :]
        model, created = b.parsed.model or "gpt-4o-mini", int(at)
        if status == "completed" and b.corruptions:
            output, self.stats.corrupted[b.id] = corrupted_output(done, b.corruptions, model, created)
        else:
            output = jsonl([good_line(cid, model, created) for cid in done])
        if output:
            b.output_file_id = self.add_file(f"{b.id}_output.jsonl", "batch_output", output, at).id
        if rest:
            errors = jsonl([cancelled_line(cid) for cid in rest])
            b.error_file_id = self.add_file(f"{b.id}_error.jsonl", "batch_output", errors, at).id
