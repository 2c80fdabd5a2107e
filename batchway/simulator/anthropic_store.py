"""The simulated Anthropic workspace: message batches in memory, persisted under `data_dir/anthropic`.

Layout under `data_dir/anthropic`:
- `batches/<id>.results.jsonl`: every request's result (succeeded or errored), precomputed at
  creation in input order; results of requests that never ran are added when they are downloaded.
- `batches/<id>.prepared.json`: custom_ids and success counts; written once.
- `state/<id>.json`: the batch record, rewritten atomically on every change the clock cannot
  recompute (create, cancel, status change, config change). A deleted batch leaves a tombstone so
  its id still works as a paging cursor.
"""

import itertools
import logging
import secrets
import string
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from batchway.simulator.anthropic_errors import not_found
from batchway.simulator.anthropic_messages import simulate_request
from batchway.simulator.anthropic_objects import MessageBatch, PreparedRecord, PreparedRequests
from batchway.simulator.config import SimulatorConfig
from batchway.simulator.storage import Tombstone, dump_record, record_model, records, write_atomic

_log = logging.getLogger(__name__)

_BASE62 = string.ascii_letters + string.digits
_RESULTS_CHUNK_BYTES = 64 * 1024
_BatchRecord = record_model(MessageBatch, exclude=("prepared", "scratch_path"))


def _batch_id() -> str:
    return "msgbatch_" + "".join(secrets.choice(_BASE62) for _ in range(24))


class AnthropicStore:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.batches: dict[str, MessageBatch] = {}
        self.seq_by_id: dict[str, int] = {}  # includes deleted batches, so stale cursors still page
        root = config.data_dir / "anthropic"
        self.scratch_dir = root / "batches"
        self.state_dir = root / "state"
        for directory in (self.scratch_dir, self.state_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._load()
        self._seq = itertools.count(max(self.seq_by_id.values(), default=-1) + 1)

    # -- persistence ----------------------------------------------------------------------------

    def scratch_path(self, batch_id: str) -> Path:
        return self.scratch_dir / f"{batch_id}.results.jsonl"

    def prepared_path(self, batch_id: str) -> Path:
        return self.scratch_dir / f"{batch_id}.prepared.json"

    def record_path(self, batch_id: str) -> Path:
        return self.state_dir / f"{batch_id}.json"

    def save(self, batch: MessageBatch) -> None:
        write_atomic(self.record_path(batch.id), dump_record(batch, _BatchRecord))

    def _load(self) -> None:
        """Restore every readable record; anything unreadable is skipped with a warning."""
        for batch_id, path in records(self.state_dir):
            try:
                raw = orjson.loads(path.read_bytes())
                if Tombstone.is_tombstone(raw):
                    tombstone = Tombstone.model_validate(raw)
                    if tombstone.id != batch_id:
                        raise ValueError(f"record is for {tombstone.id!r}")
                    self.seq_by_id[batch_id] = tombstone.seq
                    continue
                fields = _BatchRecord.model_validate(raw).model_dump()
                if fields["id"] != batch_id:  # also keeps a tampered id from pointing outside the data dir
                    raise ValueError(f"record is for {fields['id']!r}")
                prepared = PreparedRecord.model_validate_json(self.prepared_path(batch_id).read_bytes())
                scratch = self.scratch_path(batch_id)
                if not scratch.exists():
                    raise ValueError(f"its results file {scratch} is missing")
            except (OSError, ValueError) as exc:  # JSON and validation errors are ValueErrors
                _log.warning("simulator: skipping unreadable message batch record %s: %s", path, exc)
                continue
            self.batches[batch_id] = MessageBatch(**fields, prepared=prepared.load(), scratch_path=scratch)
            self.seq_by_id[batch_id] = fields["seq"]
        if self.batches:
            _log.info("simulator: restored %d message batches", len(self.batches))

    # -- batches --------------------------------------------------------------------------------

    def create(self, owner: str, requests: list[tuple[str, dict[str, Any]]]) -> MessageBatch:
        """Answer every request into the scratch file; `add` then stores the batch. Blocking: run in a
        thread."""
        now = time.time()
        batch_id = _batch_id()
        scratch = self.scratch_path(batch_id)
        prepared = PreparedRequests(
            custom_ids=[custom_id for custom_id, _ in requests], ok_prefix=array("q", [0])
        )
        try:
            with scratch.open("wb") as out:
                for index, (custom_id, params) in enumerate(requests):
                    line, ok = simulate_request(custom_id, params, f"{batch_id}:{index}")
                    out.write(orjson.dumps(line) + b"\n")
                    prepared.ok_prefix.append(prepared.ok_prefix[-1] + int(ok))
            # Persisted before the batch record, which is what makes the batch exist after a restart.
            write_atomic(self.prepared_path(batch_id), PreparedRecord.dump(prepared))
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise
        return MessageBatch(
            id=batch_id,
            owner=owner,
            seq=-1,  # set by `add`
            created_at=now,
            expires_at=now + self.config.window_seconds,
            prepared=prepared,
            scratch_path=scratch,
            progressed_at=now,
        )

    def add(self, batch: MessageBatch) -> None:
        """Give a created batch its place in the listing order and make it durable (on the event loop,
        so sequence numbers are handed out in order)."""
        batch.seq = next(self._seq)
        self.seq_by_id[batch.id] = batch.seq
        self.save(batch)
        self.batches[batch.id] = batch

    def get(self, batch_id: str, owner: str) -> MessageBatch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.owner != owner:
            raise not_found(batch_id)
        return self.refresh(batch)

    def refresh(self, batch: MessageBatch) -> MessageBatch:
        """Advance to now; persist a status change, so a restart under another config never undoes it."""
        status = batch.processing_status
        batch.advance(self.config, time.time())
        if batch.processing_status != status:
            self.save(batch)
        return batch

    def cancel(self, batch: MessageBatch) -> None:
        batch.cancel(time.time())
        self.save(batch)  # requests done so far are frozen now; a restart must not replay past them

    def delete(self, batch: MessageBatch) -> None:
        write_atomic(self.record_path(batch.id), Tombstone.dump(batch.id, batch.seq))
        del self.batches[batch.id]
        batch.scratch_path.unlink(missing_ok=True)
        self.prepared_path(batch.id).unlink(missing_ok=True)

    def results_jsonl(self, batch: MessageBatch) -> Iterator[bytes]:
        """The results JSONL of an ended batch, in chunks of whole lines: the precomputed results of the
        requests that ran, then one canceled/expired line per request that never did. Input order, no
        blank lines."""
        unfinished = {"type": batch.unfinished_result}
        chunk = bytearray()
        with batch.scratch_path.open("rb") as scratch:
            done = batch.done
            lines = itertools.chain(
                itertools.islice(scratch, done),
                (
                    orjson.dumps({"custom_id": custom_id, "result": unfinished}) + b"\n"
                    for custom_id in batch.prepared.custom_ids[done:]
                ),
            )
            for line in lines:
                chunk += line
                # Whole chunks, not lines: each item a streaming response yields costs a thread hop.
                if len(chunk) >= _RESULTS_CHUNK_BYTES:
                    yield bytes(chunk)
                    chunk.clear()
        if chunk:
            yield bytes(chunk)

    def settle(self, now: float) -> None:
        """Advance every batch to `now` under the current config, before the config changes."""
        for batch in self.batches.values():
            if not batch.ended:
                batch.advance(self.config, now)
                # Progress is piecewise per config; the record must hold the point where speeds change.
                self.save(batch)
