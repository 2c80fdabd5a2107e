"""Where file bodies live. `BlobStore` is the seam; `LocalBlobStore` (a folder) is the default.

Callers stream through file objects, so a 200 MB input never sits in memory. An S3-compatible
store slots in behind the same protocol.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol


class BlobStore(Protocol):
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A writable binary file; the blob appears under `key` only when the block exits cleanly."""
        ...

    def open_read(self, key: str) -> BinaryIO: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            with open(tmp, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def copy_from(self, key: str, source: BinaryIO) -> None:
        with self.open_write(key) as out:
            shutil.copyfileobj(source, out, 1024 * 1024)


def make_blob_store(url: str) -> LocalBlobStore:
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    if "://" in url:
        raise ValueError(f"unsupported blob store URL {url!r} (a local folder path is supported)")
    return LocalBlobStore(Path(url))
