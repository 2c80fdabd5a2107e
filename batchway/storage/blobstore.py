"""Where file bodies live. `BlobStore` is the seam; `LocalBlobStore` (a folder) is the default and
`S3BlobStore` keeps them in an S3-compatible bucket.

Callers stream through file objects, so a 200 MB input never sits in memory.

`BATCHWAY_BLOB_URL` picks the store (`make_blob_store`):

- a folder path, or `file:///path/to/folder`: `LocalBlobStore`;
- `s3://bucket` or `s3://bucket/some/prefix`: `S3BlobStore`; every key is stored under `some/prefix/`.

The S3 store is configured the way boto3 always is, from the standard AWS environment (or
`~/.aws/config` / an instance role): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_DEFAULT_REGION`, `AWS_PROFILE`... For MinIO or another S3-compatible server, set
`AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`, which only applies to S3), e.g.
`AWS_ENDPOINT_URL=http://minio:9000`; boto3 reads both natively and uses path-style addressing for such
endpoints. The URL itself carries no endpoint or credentials (a query string is rejected). Stores that
reject the default request checksums of recent boto3 (some older S3-compatible servers) work with
`AWS_REQUEST_CHECKSUM_CALCULATION=when_required` and `AWS_RESPONSE_CHECKSUM_VALIDATION=when_required`.

An S3 write spools to a temporary file (in `TMPDIR`) and is uploaded, multipart above 8 MB, only
when the block exits cleanly, so that folder needs room for the largest blob. A read streams the GET
body; the returned file object is seekable (a seek resumes with a ranged GET of the same object
version), so an HTTP client can learn its length and rewind it to retry an upload.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

COPY_CHUNK = 1024 * 1024
S3_READ_BUFFER = 1024 * 1024
S3_MAX_POOL_CONNECTIONS = 32  # shared by every thread using the store, s3transfer's upload threads too
S3_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class BlobStore(Protocol):
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A writable binary file; the blob appears under `key` only when the block exits cleanly."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """A readable binary file (also a context manager); FileNotFoundError if there is no blob."""
        ...

    def size(self, key: str) -> int:
        """The blob's length in bytes; FileNotFoundError if there is no blob."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def copy_from(self, key: str, source: BinaryIO) -> None:
        """Stream `source` into a new blob under `key` (nothing is stored if reading `source` fails)."""
        ...


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
            shutil.copyfileobj(source, out, COPY_CHUNK)


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in S3_MISSING_CODES


class _S3ObjectReader(io.RawIOBase):
    """Read-only, seekable raw file over one version of one S3 object.

    Bytes come straight from a GET body, `read(n)` at a time. After a seek, the next read resumes with
    a ranged GET pinned to the first response's ETag, so a blob replaced meanwhile fails loudly
    instead of splicing two versions together."""

    def __init__(self, client: Any, bucket: str, key: str, response: dict[str, Any]) -> None:
        super().__init__()
        self.name = key
        self.mode = "rb"
        self._client = client
        self._bucket = bucket
        self._key = key
        self._size: int = response["ContentLength"]
        self._etag: str | None = response.get("ETag")
        self._body: Any = response["Body"]
        self._body_pos = 0  # where the open body's next byte sits in the object
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence!r})")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._pos = target  # the body is only dropped if a read actually needs another offset
        return target

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        if not len(view) or self._pos >= self._size:
            return 0
        if self._body is not None and self._body_pos != self._pos:
            self._drop_body()
        if self._body is None:
            self._body = self._get_range(self._pos)
            self._body_pos = self._pos
        data = self._body.read(min(len(view), self._size - self._pos))
        if not data:
            raise OSError(f"s3://{self._bucket}/{self._key} ended early at byte {self._pos} of {self._size}")
        view[: len(data)] = data
        self._pos += len(data)
        self._body_pos = self._pos
        return len(data)

    def close(self) -> None:
        self._drop_body()
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def _get_range(self, start: int) -> Any:
        extra = {"IfMatch": self._etag} if self._etag else {}
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-", **extra
            )
        except ClientError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"blob was deleted while being read: {self._key!r}") from exc
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                raise OSError(f"blob was replaced while being read: {self._key!r}") from exc
            raise
        return response["Body"]


class S3BlobStore:
    """Blobs as objects in one S3-compatible bucket, under an optional key prefix.

    One boto3 client per store, shared by every thread (boto3 clients are thread-safe)."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        if not bucket:
            raise ValueError("an S3 blob store needs a bucket")
        segments = [part for part in prefix.split("/") if part]
        if any(part in (".", "..") for part in segments):
            raise ValueError(f"invalid S3 key prefix {prefix!r}")
        self.bucket = bucket
        self.prefix = "".join(f"{part}/" for part in segments)
        self.client = client if client is not None else self._make_client()

    @staticmethod
    def _make_client() -> Any:
        import boto3  # deferred: only S3 deployments pay for importing it
        from botocore.config import Config

        # A session of its own: boto3's default session is not safe to create clients from in threads.
        session = boto3.session.Session()
        return session.client("s3", config=Config(max_pool_connections=S3_MAX_POOL_CONNECTIONS))

    def __repr__(self) -> str:
        return f"S3BlobStore('s3://{self.bucket}/{self.prefix}')"

    def _object_key(self, key: str) -> str:
        normal = posixpath.normpath(key) if key else ""
        if not normal or key.startswith("/") or normal in (".", "..") or normal.startswith("../"):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return self.prefix + normal

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        object_key = self._object_key(key)
        fd, tmp = tempfile.mkstemp(prefix="batchway-blob-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
            # Only reached when the block exited cleanly. A single PUT or a completed multipart
            # upload is atomic; s3transfer aborts a multipart upload that fails halfway.
            self.client.upload_file(tmp, self.bucket, object_key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def open_read(self, key: str) -> BinaryIO:
        object_key = self._object_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"no blob {key!r}") from exc
            raise
        raw = _S3ObjectReader(self.client, self.bucket, object_key, response)
        return io.BufferedReader(raw, buffer_size=S3_READ_BUFFER)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"no blob {key!r}")
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        # S3 answers 204 whether or not the object existed.
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def copy_from(self, key: str, source: BinaryIO) -> None:
        with self.open_write(key) as out:
            shutil.copyfileobj(source, out, COPY_CHUNK)


def _s3_store_from_url(url: str) -> S3BlobStore:
    parts = urlsplit(url)
    if not parts.netloc or "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError(f"invalid S3 blob store URL {url!r} (expected s3://bucket/optional/prefix)")
    if parts.query or parts.fragment:
        raise ValueError(
            f"invalid S3 blob store URL {url!r}: set the endpoint and credentials with the AWS_* "
            "environment variables (e.g. AWS_ENDPOINT_URL), not in the URL"
        )
    return S3BlobStore(parts.netloc, parts.path)


def make_blob_store(url: str) -> BlobStore:
    if url.startswith("s3://"):
        return _s3_store_from_url(url)
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    if "://" in url:
        raise ValueError(
            f"unsupported blob store URL {url!r} (a local folder path or s3://bucket/prefix is supported)"
        )
    return LocalBlobStore(Path(url))
