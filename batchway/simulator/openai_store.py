"""The simulated OpenAI account: files and batches in memory, persisted under `data_dir`.

Layout under `data_dir`:
- `files/<file_id>`: file contents.
- `batches/<batch_id>.results.jsonl`: every line's precomputed result, until the result files exist.
- `batches/<batch_id>.prepared.json`: what validation learned (counts, custom_ids); written once.
- `state/files/<file_id>.json`, `state/batches/<batch_id>.json`: small metadata records, rewritten
  atomically on every change that replay cannot recompute (create, cancel, status change, config
  change, result files written). A deleted file leaves a tombstone so it still works as a cursor.
- `tmp/`: uploads and result files while they are being written.
"""

import asyncio
import itertools
import logging
import os
import secrets
import string
import time
from pathlib import Path

import orjson

from batchway.simulator.config import SimulatorConfig
from batchway.simulator.errors import not_found
from batchway.simulator.openai_objects import TERMINAL_STATUSES, Batch, StoredFile
from batchway.simulator.openai_prepare import CANCELLED_ERROR, EXPIRED_ERROR, PreparedRecord, write_results
from batchway.simulator.storage import Tombstone, dump_record, record_model, records, write_atomic

_log = logging.getLogger(__name__)

_BASE62 = string.ascii_letters + string.digits
_FileRecord = record_model(StoredFile, exclude=("path",))  # the path is derived from the id
_BatchRecord = record_model(Batch, exclude=("prepared", "scratch_path", "lock"))


def _file_id() -> str:
    return "file-" + "".join(secrets.choice(_BASE62) for _ in range(24))


class OpenAIStore:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}
        self.seq_by_id: dict[str, int] = {}  # includes deleted files, so stale cursors still page
        self.files_dir = config.data_dir / "files"
        self.tmp_dir = config.data_dir / "tmp"
        self.scratch_dir = config.data_dir / "batches"
        self.file_state_dir = config.data_dir / "state" / "files"
        self.batch_state_dir = config.data_dir / "state" / "batches"
        for directory in (
            self.files_dir,
            self.tmp_dir,
            self.scratch_dir,
            self.file_state_dir,
            self.batch_state_dir,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self._load()
        # New objects sort after everything restored.
        self._seq = itertools.count(max(self.seq_by_id.values(), default=-1) + 1)

    def next_seq(self, object_id: str) -> int:
        seq = next(self._seq)
        self.seq_by_id[object_id] = seq
        return seq

    # -- persistence ----------------------------------------------------------------------------

    def scratch_path(self, batch_id: str) -> Path:
        return self.scratch_dir / f"{batch_id}.results.jsonl"

    def prepared_path(self, batch_id: str) -> Path:
        return self.scratch_dir / f"{batch_id}.prepared.json"

    def save_file(self, stored: StoredFile) -> None:
        write_atomic(self.file_state_dir / f"{stored.id}.json", dump_record(stored, _FileRecord))

    def save_batch(self, batch: Batch) -> None:
        write_atomic(self.batch_state_dir / f"{batch.id}.json", dump_record(batch, _BatchRecord))

    def _load(self) -> None:
        """Restore every readable record. Anything unreadable is skipped with a warning: one bad file
        must not take the whole simulator (and every other object in it) down."""
        for file_id, path in records(self.file_state_dir):
            try:
                raw = orjson.loads(path.read_bytes())
                if Tombstone.is_tombstone(raw):
                    tombstone = Tombstone.model_validate(raw)
                    if tombstone.id != file_id:
                        raise ValueError(f"record is for {tombstone.id!r}")
                    self.seq_by_id[file_id] = tombstone.seq
                    continue
                fields = _FileRecord.model_validate(raw).model_dump()
                if fields["id"] != file_id:  # also keeps a tampered id from pointing outside files_dir
                    raise ValueError(f"record is for {fields['id']!r}")
            except (OSError, ValueError) as exc:  # JSON and validation errors are ValueErrors
                _log.warning("simulator: skipping unreadable file record %s: %s", path, exc)
                continue
            self.files[file_id] = StoredFile(**fields, path=self.files_dir / file_id)
            self.seq_by_id[file_id] = fields["seq"]
        for batch_id, path in records(self.batch_state_dir):
            try:
                fields = _BatchRecord.model_validate_json(path.read_bytes()).model_dump()
                if fields["id"] != batch_id:
                    raise ValueError(f"record is for {fields['id']!r}")
                prepared = PreparedRecord.model_validate_json(self.prepared_path(batch_id).read_bytes())
                scratch = self.scratch_path(batch_id)
                if not fields["materialized"] and not scratch.exists():
                    raise ValueError(f"its results file {scratch} is missing")
            except (OSError, ValueError) as exc:
                _log.warning("simulator: skipping unreadable batch record %s: %s", path, exc)
                continue
            self.batches[batch_id] = Batch(**fields, prepared=prepared.load(), scratch_path=scratch)
            self.seq_by_id[batch_id] = fields["seq"]
        if self.files or self.batches:
            _log.info("simulator: restored %d files and %d batches", len(self.files), len(self.batches))

    # -- files ----------------------------------------------------------------------------------

    def get_file(self, file_id: str, owner: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None or stored.owner != owner:
            raise not_found("File", file_id)
        return stored

    def add_file(
        self, owner: str, tmp_path: Path, filename: str, purpose: str, size: int, ttl: float | None
    ) -> StoredFile:
        file_id = _file_id()
        path = self.files_dir / file_id
        os.replace(tmp_path, path)
        now = time.time()
        stored = StoredFile(
            id=file_id,
            owner=owner,
            seq=self.next_seq(file_id),
            filename=filename,
            purpose=purpose,
            bytes=size,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            path=path,
        )
        self.save_file(stored)  # contents are in place first, so a record never points at nothing
        self.files[file_id] = stored
        return stored

    def delete_file(self, stored: StoredFile) -> None:
        write_atomic(self.file_state_dir / f"{stored.id}.json", Tombstone.dump(stored.id, stored.seq))
        del self.files[stored.id]
        stored.path.unlink(missing_ok=True)

    # -- batches --------------------------------------------------------------------------------

    def add_batch(self, batch: Batch) -> None:
        self.save_batch(batch)
        self.batches[batch.id] = batch

    def get_batch(self, batch_id: str, owner: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.owner != owner:
            raise not_found("Batch", batch_id)
        return batch

    async def refresh(self, batch: Batch) -> Batch:
        """Advance to now; on the first read after reaching a terminal state, write the result files."""
        status = batch.status
        batch.advance(self.config, time.time())
        if batch.status != status:
            # Replay from the previous record would mostly agree, but not if a restart brings another
            # config: a completed batch must never come back as in_progress.
            self.save_batch(batch)
        if batch.status in TERMINAL_STATUSES and not batch.materialized:
            async with batch.lock:  # concurrent readers must not write the files twice
                if not batch.materialized:
                    await self._materialize(batch)
        return batch

    async def _materialize(self, batch: Batch) -> None:
        if batch.status != "failed":
            error = EXPIRED_ERROR if batch.status == "expired" else CANCELLED_ERROR
            token = secrets.token_hex(8)
            out_tmp = self.tmp_dir / f"{batch.id}.{token}.output"
            err_tmp = self.tmp_dir / f"{batch.id}.{token}.error"
            n_out, n_err = await asyncio.to_thread(write_results, batch, out_tmp, err_tmp, error)
            for count, tmp, kind in ((n_out, out_tmp, "output"), (n_err, err_tmp, "error")):
                if count == 0:
                    tmp.unlink(missing_ok=True)
                    continue
                stored = self.add_file(
                    batch.owner,
                    tmp,
                    f"{batch.id}_{kind}.jsonl",
                    "batch_output",
                    tmp.stat().st_size,
                    batch.output_ttl_seconds,
                )
                if kind == "output":
                    batch.output_file_id = stored.id
                else:
                    batch.error_file_id = stored.id
        batch.materialized = True
        self.save_batch(batch)
        # Only now: until the record says "materialized", a restart needs the scratch file to redo this.
        batch.scratch_path.unlink(missing_ok=True)

    def settle(self, now: float) -> None:
        """Advance every batch to `now` under the current config, before the config changes, so new
        speeds apply from now on."""
        for batch in self.batches.values():
            batch.advance(self.config, now)
            if not batch.materialized:
                # Progress is piecewise per config; the record must hold the point where speeds change.
                self.save_batch(batch)
