"""The same behaviour tests against both blob stores: a local folder and a real S3-compatible server
(moto's standalone server on a loopback port, reached over HTTP exactly like MinIO would be)."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from batchway.storage.blobstore import BlobStore, LocalBlobStore, S3BlobStore, make_blob_store
from tests.conftest import S3_BUCKET as BUCKET

MB = 1024 * 1024
ESCAPING_KEYS = ["../outside", "org/../../outside", "/etc/passwd", "", ".", "org/.."]


StoreFactory = Callable[[str], BlobStore]


@pytest.fixture(params=["local", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds stores of one kind through `make_blob_store`; each name is a separate folder / prefix."""
    if request.param == "local":
        return lambda name: make_blob_store(str(tmp_path / name))
    request.getfixturevalue("s3_env")
    run = uuid.uuid4().hex[:12]  # the bucket is shared by the whole session
    return lambda name: make_blob_store(f"s3://{BUCKET}/{run}/{name}")


@pytest.fixture
def store(make_store: StoreFactory) -> BlobStore:
    return make_store("main")


def put(store: BlobStore, key: str, data: bytes, chunk: int = MB) -> None:
    with store.open_write(key) as out:
        for start in range(0, len(data), chunk):
            out.write(data[start : start + chunk])


def get(store: BlobStore, key: str) -> bytes:
    with store.open_read(key) as stream:
        return stream.read()


def test_multi_megabyte_round_trip_is_byte_exact(store: BlobStore) -> None:
    data = os.urandom(20 * MB + 12345)  # above boto3's 8 MB multipart threshold
    put(store, "org_1/file-big", data)
    assert store.exists("org_1/file-big")
    assert store.size("org_1/file-big") == len(data)
    assert hashlib.sha256(get(store, "org_1/file-big")).digest() == hashlib.sha256(data).digest()


def test_reads_stream_in_chunks(store: BlobStore) -> None:
    data = os.urandom(3 * MB + 7)
    put(store, "org_1/file-chunks", data)
    chunks = []
    with store.open_read("org_1/file-chunks") as stream:
        while chunk := stream.read(64 * 1024):
            assert len(chunk) <= 64 * 1024
            chunks.append(chunk)
        assert stream.read(64 * 1024) == b""
    assert len(chunks) == len(data) // (64 * 1024) + 1
    assert all(len(chunk) == 64 * 1024 for chunk in chunks[:-1])  # read(n) is full-length until EOF
    assert b"".join(chunks) == data


def test_reader_behaves_like_a_file_for_uploads(store: BlobStore) -> None:
    """The OpenAI SDK wants an io.IOBase; httpx learns the length by seeking to the end and rewinds
    to (re)send the body."""
    data = os.urandom(2 * MB + 3)
    put(store, "org_1/file-seek", data)
    with store.open_read("org_1/file-seek") as stream:
        assert isinstance(stream, io.IOBase)
        assert stream.readable() and stream.seekable()
        assert stream.seek(0, io.SEEK_END) == len(data)
        assert stream.seek(0) == 0
        assert stream.read(10) == data[:10]
        assert stream.tell() == 10
        stream.seek(MB + 5)
        assert stream.read(1000) == data[MB + 5 : MB + 1005]
        stream.seek(-3, io.SEEK_END)
        assert stream.read() == data[-3:]
        stream.seek(0)
        assert stream.read() == data  # a retried upload re-reads everything
    assert stream.closed


def test_empty_blob(store: BlobStore) -> None:
    put(store, "org_1/empty", b"")
    assert store.exists("org_1/empty")
    assert store.size("org_1/empty") == 0
    assert get(store, "org_1/empty") == b""


def test_size_exists_delete(store: BlobStore) -> None:
    assert not store.exists("org_1/file-x")
    with pytest.raises(FileNotFoundError):
        store.size("org_1/file-x")
    with pytest.raises(FileNotFoundError):
        store.open_read("org_1/file-x")
    store.delete("org_1/file-x")  # deleting a missing blob is fine

    put(store, "org_1/file-x", b"hello\n")
    assert store.exists("org_1/file-x")
    assert store.size("org_1/file-x") == 6
    assert not store.exists("org_1")  # a "folder" of blobs is not a blob

    put(store, "org_1/file-x", b"replaced")
    assert get(store, "org_1/file-x") == b"replaced"

    store.delete("org_1/file-x")
    assert not store.exists("org_1/file-x")
    store.delete("org_1/file-x")


def test_nothing_is_stored_when_the_write_block_raises(store: BlobStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.open_write("org_1/file-fail") as out:
        out.write(os.urandom(MB))
        raise RuntimeError("boom")
    assert not store.exists("org_1/file-fail")

    put(store, "org_1/file-keep", b"original")
    with pytest.raises(RuntimeError), store.open_write("org_1/file-keep") as out:
        out.write(b"half of a replacement")
        raise RuntimeError("boom")
    assert get(store, "org_1/file-keep") == b"original"

    # The way ResultFile drives it: entered and exited by hand, aborted with an exception.
    context = store.open_write("org_1/file-aborted")
    context.__enter__().write(b"partial")
    assert context.__exit__(RuntimeError, RuntimeError("aborted"), None) is False
    assert not store.exists("org_1/file-aborted")


def test_copy_from(store: BlobStore) -> None:
    data = os.urandom(MB + 1)
    store.copy_from("org_1/file-copy", io.BytesIO(data))
    assert get(store, "org_1/file-copy") == data

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise OSError("source went away")

    with pytest.raises(OSError, match="source went away"):
        store.copy_from("org_1/file-copy-broken", Broken())  # type: ignore[arg-type]
    assert not store.exists("org_1/file-copy-broken")


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_keys_cannot_escape_the_store(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="escapes"), store.open_write(key) as out:
        out.write(b"x")
    for operation in (store.open_read, store.size, store.delete, store.exists):
        with pytest.raises(ValueError, match="escapes"):
            operation(key)


def test_keys_are_normalised_the_same_way(store: BlobStore) -> None:
    put(store, "org_1//a/./b/../file", b"data")
    assert get(store, "org_1/a/file") == b"data"


def test_stores_are_isolated_from_each_other(make_store: StoreFactory) -> None:
    first, second = make_store("tenant-a"), make_store("tenant-a-b")
    put(first, "org_1/file", b"first")
    assert not second.exists("org_1/file")
    put(second, "org_1/file", b"second")
    assert get(first, "org_1/file") == b"first"
    assert get(second, "org_1/file") == b"second"
    first.delete("org_1/file")
    assert not first.exists("org_1/file")
    assert get(second, "org_1/file") == b"second"


def test_one_store_is_safe_to_share_between_threads(store: BlobStore) -> None:
    payloads = {f"org_{n}/file-{n}": os.urandom(256 * 1024 + n) for n in range(12)}

    def round_trip(key: str) -> bool:
        put(store, key, payloads[key], chunk=64 * 1024)
        return get(store, key) == payloads[key] and store.size(key) == len(payloads[key])

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(round_trip, payloads))


def test_memory_stays_bounded(store: BlobStore) -> None:
    size = 64 * MB
    block = os.urandom(MB)
    tracemalloc.start()
    try:
        with store.open_write("org_1/file-huge") as out:
            for _ in range(size // MB):
                out.write(block)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        with store.open_read("org_1/file-huge") as stream:
            while chunk := stream.read(MB):
                total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert write_peak < 24 * MB, write_peak  # s3transfer keeps a few parts in flight
    assert read_peak < 8 * MB, read_peak


# -- S3 specifics ------------------------------------------------------------------------------------


def test_s3_keys_live_under_the_url_prefix(s3_env: str, s3_client: object) -> None:
    run = uuid.uuid4().hex[:12]
    store = make_blob_store(f"s3://{BUCKET}/{run}/blobs/")
    put(store, "org_1/file-abc", b"payload")
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=f"{run}/")  # type: ignore[attr-defined]
    assert [item["Key"] for item in listed["Contents"]] == [f"{run}/blobs/org_1/file-abc"]
    whole_bucket = make_blob_store(f"s3://{BUCKET}")
    assert get(whole_bucket, f"{run}/blobs/org_1/file-abc") == b"payload"


def test_s3_reader_refuses_to_splice_a_replaced_blob(s3_env: str) -> None:
    store = make_blob_store(f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}")
    put(store, "org_1/file", b"a" * (3 * MB))
    with store.open_read("org_1/file") as stream:
        assert stream.read(10) == b"a" * 10
        put(store, "org_1/file", b"b" * (3 * MB))
        stream.seek(2 * MB)  # forces a ranged GET, pinned to the version first opened
        with pytest.raises(OSError, match="replaced"):
            stream.read(10)


def test_s3_client_is_created_once_per_store(s3_env: str) -> None:
    store = make_blob_store(f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}")
    assert isinstance(store, S3BlobStore)
    client = store.client
    put(store, "org_1/file", b"x")
    get(store, "org_1/file")
    assert store.client is client
    assert client.meta.endpoint_url == s3_env


# -- URL parsing ---------------------------------------------------------------------------------------


def test_make_blob_store_local_urls(tmp_path: Path) -> None:
    store = make_blob_store(str(tmp_path / "plain"))
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "plain"
    store = make_blob_store(f"file://{tmp_path / 'from-url'}")
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "from-url"
    assert (tmp_path / "from-url").is_dir()


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://my-bucket", "my-bucket", ""),
        ("s3://my-bucket/", "my-bucket", ""),
        ("s3://my-bucket/batchway", "my-bucket", "batchway/"),
        ("s3://my-bucket/env/prod/blobs/", "my-bucket", "env/prod/blobs/"),
        ("s3://my.bucket.name//double//slash", "my.bucket.name", "double/slash/"),
    ],
)
def test_make_blob_store_s3_urls(s3_env: str, url: str, bucket: str, prefix: str) -> None:
    store = make_blob_store(url)
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///just-a-prefix",
        "s3://user:secret@bucket/prefix",
        "s3://bucket:9000/prefix",
        "s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000",
        "s3://bucket/../escape",
        "gs://bucket/prefix",
        "http://example.com/blobs",
    ],
)
def test_make_blob_store_rejects_bad_urls(s3_env: str, url: str) -> None:
    with pytest.raises(ValueError):
        make_blob_store(url)
