"""Turn an upstream's result files into batchway's own: output and error files of the same org,
one request-log row per input line, the batch's counts and usage. Safe to run again: file ids are
derived from the batch id and the log rows are replaced in one transaction."""

from __future__ import annotations

from typing import Any, BinaryIO

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session

from batchway import ids
from batchway.blobstore import BlobStore
from batchway.clock import now, now_ns
from batchway.files import blob_key
from batchway.jsonl import dumps_line, iter_objects
from batchway.lifecycle import TIMESTAMP_OF
from batchway.models import BatchRecord, FileRecord, RequestLog

UNEXECUTED = {
    "cancelled": ("batch_cancelled", "This request was cancelled before it could be executed."),
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "completed": ("batch_failed", "The upstream returned no result for this request."),
    "failed": ("batch_failed", "The batch failed before this request could be executed."),
}
LOG_FLUSH_ROWS = 1000


class ResultFile:
    """One batchway-owned result file being written; it only becomes a file row if it has lines."""

    def __init__(self, blobs: BlobStore, batch: BatchRecord, kind: str) -> None:
        self.file_id = ids.derived_file_id(f"{batch.id}/{kind}")
        self.filename = f"{batch.id}_{kind}.jsonl"
        self.key = blob_key(batch.org_id, self.file_id)
        self.lines = 0
        self.bytes = 0
        self._blobs = blobs
        self._context = blobs.open_write(self.key)
        self._out = self._context.__enter__()

    def write(self, obj: dict[str, Any]) -> None:
        data = dumps_line(obj)
        self._out.write(data)
        self.lines += 1
        self.bytes += len(data)

    def close(self, org_id: str) -> FileRecord | None:
        self._context.__exit__(None, None, None)
        if self.lines == 0:
            self._blobs.delete(self.key)
            return None
        created = now()
        return FileRecord(
            id=self.file_id,
            org_id=org_id,
            filename=self.filename,
            purpose="batch_output",
            bytes=self.bytes,
            created_at=created,
            created_ns=now_ns(),
            expires_at=created + 30 * 24 * 3600,
            blob_key=self.key,
        )

    def abort(self) -> None:
        self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)


def _usage_of(body: Any) -> dict[str, int]:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return {}
    prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
    completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    return {
        "prompt_tokens": int(prompt),
        "completion_tokens": int(completion),
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
        "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
        "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0),
    }


class Reconciler:
    def __init__(self, engine: Engine, blobs: BlobStore, batch: BatchRecord, input_file: FileRecord) -> None:
        self.engine = engine
        self.blobs = blobs
        self.batch = batch
        self.input_file = input_file
        self.usage = {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        }
        self._pending_logs: list[dict[str, Any]] = []

    def _line_numbers(self) -> dict[str, int]:
        with self.blobs.open_read(self.input_file.blob_key) as stream:
            return {obj["custom_id"]: number for number, obj in iter_objects(stream)}

    def run(self, outcome: str, upstream_files: list[tuple[str, BinaryIO]]) -> BatchRecord:
        """`upstream_files`: ("output"|"error", readable JSONL) pairs already downloaded."""
        line_of = self._line_numbers()
        seen: set[str] = set()
        output = ResultFile(self.blobs, self.batch, "output")
        errors = ResultFile(self.blobs, self.batch, "error")
        with Session(self.engine) as session:
            try:
                session.execute(delete(RequestLog).where(RequestLog.batch_id == self.batch.id))
                for _, stream in upstream_files:
                    for _, line in iter_objects(stream):
                        custom_id = line.get("custom_id")
                        if custom_id not in line_of or custom_id in seen:
                            continue  # not one of ours, or a duplicate: never count a line twice
                        seen.add(custom_id)
                        self._take(session, outcome, line, line_of[custom_id], output, errors)
                code, message = UNEXECUTED[outcome]
                for custom_id, number in line_of.items():
                    if custom_id not in seen:
                        line = {
                            "id": ids.new_request_line_id(),
                            "custom_id": custom_id,
                            "response": None,
                            "error": {"code": code, "message": message},
                        }
                        self._take(session, outcome, line, number, output, errors)
                self._flush_logs(session)
            except BaseException:
                output.abort()
                errors.abort()
                raise
            output_row = output.close(self.batch.org_id)
            error_row = errors.close(self.batch.org_id)
            for row in (output_row, error_row):
                if row is not None:
                    session.merge(row)
            batch = session.get(BatchRecord, self.batch.id)
            assert batch is not None
            batch.status = outcome
            # A cancel that skipped `cancelling` (signalled before submit) still gets both stamps.
            stamps = ["cancelling_at"] if outcome == "cancelled" else []
            for stamp in [*stamps, TIMESTAMP_OF[outcome]]:
                if getattr(batch, stamp) is None:
                    setattr(batch, stamp, now())
            batch.total = len(line_of)
            batch.completed = output.lines
            batch.failed = errors.lines
            batch.output_file_id = output_row.id if output_row else None
            batch.error_file_id = error_row.id if error_row else None
            batch.usage = {
                "input_tokens": self.usage["prompt_tokens"],
                "input_tokens_details": {"cached_tokens": self.usage["cached_tokens"]},
                "output_tokens": self.usage["completion_tokens"],
                "output_tokens_details": {"reasoning_tokens": self.usage["reasoning_tokens"]},
                "total_tokens": self.usage["total_tokens"],
            }
            session.add(batch)
            session.commit()
            session.refresh(batch)
            return batch

    def _take(
        self,
        session: Session,
        outcome: str,
        line: dict[str, Any],
        number: int,
        output: ResultFile,
        errors: ResultFile,
    ) -> None:
        response = line.get("response") or None
        error = line.get("error") or None
        if outcome == "expired" and error and error.get("code") == "batch_cancelled":
            error = {"code": UNEXECUTED["expired"][0], "message": UNEXECUTED["expired"][1]}
        status_code = response.get("status_code") if isinstance(response, dict) else None
        body = response.get("body") if isinstance(response, dict) else None
        ok = error is None and isinstance(status_code, int) and 200 <= status_code < 300
        # Upstream line ids never leak: every line gets a batchway id.
        rewritten = {
            "id": ids.new_request_line_id(),
            "custom_id": line["custom_id"],
            "response": response,
            "error": error,
        }
        (output if ok else errors).write(rewritten)
        usage = _usage_of(body) if ok else {}
        for key, value in usage.items():
            self.usage[key] += value
        error_code = None
        if error:
            error_code = error.get("code")
        elif isinstance(body, dict) and isinstance(body.get("error"), dict):
            error_code = body["error"].get("code") or body["error"].get("type")
        self._pending_logs.append(
            {
                "org_id": self.batch.org_id,
                "batch_id": self.batch.id,
                "custom_id": line["custom_id"],
                "line": number,
                "provider": self.batch.provider,
                "endpoint": self.batch.endpoint,
                "model": (body.get("model") if isinstance(body, dict) else None) or self.batch.model,
                "status_code": status_code,
                "error_code": error_code,
                "request_id": response.get("request_id") if isinstance(response, dict) else None,
                "created_at": now(),
                **usage,
            }
        )
        if len(self._pending_logs) >= LOG_FLUSH_ROWS:
            self._flush_logs(session)

    def _flush_logs(self, session: Session) -> None:
        if self._pending_logs:
            session.bulk_insert_mappings(RequestLog, self._pending_logs)  # type: ignore[arg-type]
            self._pending_logs = []
