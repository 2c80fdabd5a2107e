"""A batch's stored input file, as the pipeline steps read it (blocking: call from a thread).

A file its org deleted while the batch runs is hidden from the API but kept until the batch ends, so
these look it up regardless of that flag."""

from __future__ import annotations

from typing import BinaryIO

from sqlmodel import Session

from batchway.batch_input import InputIndex, read_index
from batchway.pipeline.deps import Deps
from batchway.storage.models import BatchRecord, FileRecord


def input_file(deps: Deps, batch: BatchRecord) -> FileRecord:
    with Session(deps.engine, expire_on_commit=False) as session:
        row = session.get(FileRecord, batch.input_file_id)
    if row is None or row.org_id != batch.org_id:
        raise FileNotFoundError(f"input file {batch.input_file_id} of {batch.id} is gone")
    return row


def open_input(deps: Deps, batch: BatchRecord) -> BinaryIO:
    return deps.blobs.open_read(input_file(deps, batch).blob_key)


def line_count(deps: Deps, batch: BatchRecord) -> int:
    return input_file(deps, batch).line_count or 0


def input_index(deps: Deps, batch: BatchRecord) -> InputIndex:
    return read_index(open_input(deps, batch))
