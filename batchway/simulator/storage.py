"""Small on-disk records shared by every simulated API.

Each object has a JSON record that is rewritten atomically whenever it changes in a way the clock
cannot recompute; bulky per-request data lives in separate files written once. A new simulator on
the same data directory loads the records and carries on by wall clock. Unreadable records are
skipped with a warning by the loaders, so one bad file never takes the simulator down.
"""

import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
import pydantic


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file, then rename: a crash leaves the old or the new version, never half.

    No fsync: this guards against the process dying, which is what a dev restart looks like.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # dot-prefixed: never loaded
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def records(directory: Path) -> Iterator[tuple[str, Path]]:
    """(object id, path) of every record in a state directory, skipping leftover temp files."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                yield entry.name.removesuffix(".json"), Path(entry.path)


def record_model(cls: type, exclude: tuple[str, ...]) -> type[pydantic.BaseModel]:
    """A pydantic model of a dataclass's persisted fields, so records are type-checked on load.

    Derived from the dataclass so the two never drift; defaults keep older records loadable.
    """
    definitions: dict[str, Any] = {
        f.name: (f.type, ... if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
        if f.name not in exclude
    }
    return pydantic.create_model(f"{cls.__name__}Record", **definitions)


def dump_record(obj: Any, model: type[pydantic.BaseModel]) -> bytes:
    return orjson.dumps({name: getattr(obj, name) for name in model.model_fields})


class Tombstone(pydantic.BaseModel):
    """What a deleted object leaves behind: its id still works as a paging cursor after a restart."""

    id: str
    seq: int
    deleted: Literal[True]

    @staticmethod
    def dump(object_id: str, seq: int) -> bytes:
        return orjson.dumps({"id": object_id, "seq": seq, "deleted": True})

    @staticmethod
    def is_tombstone(raw: Any) -> bool:
        return isinstance(raw, dict) and raw.get("deleted") is True
