"""The storage layer (files, batches, transitions, request log, tenancy) on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session

from batchway import batches, files, lifecycle, tenancy
from batchway.errors import APIError
from batchway.pipeline.opening import insert_batch_row
from batchway.secret_box import SecretBox
from batchway.settings import Settings
from batchway.storage.blobstore import LocalBlobStore
from batchway.storage.db import make_engine, migrate
from batchway.storage.models import BatchRecord, FileRecord
from tests.batch_helpers import chat_line, jsonl


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    engine = make_engine(database_url)
    migrate(engine)
    session = Session(engine, expire_on_commit=False)
    org = tenancy.create_org(session, f"org-{tmp_path.name}")
    box = SecretBox([Fernet.generate_key().decode()])
    provider = tenancy.set_provider(
        session, org, "openai", kind="openai", api_key="k", base_url=None, box=box
    )
    yield engine, session, LocalBlobStore(tmp_path / "blobs"), org, provider
    session.close()
    engine.dispose()


SETTINGS = Settings(max_lines=10, max_input_bytes=10_000)


def put(session, blobs, org, lines, purpose="batch", name="in.jsonl"):
    return files.upload(
        session,
        blobs,
        SETTINGS,
        org_id=org.id,
        filename=name,
        purpose=purpose,
        source=io.BytesIO(jsonl(lines)),
    )


def new_batch(session, org, provider, input_file, metadata=None) -> BatchRecord:
    """A batch row as create writes it (without starting a workflow)."""
    spec, _, _ = batches.plan_batch(
        session,
        SETTINGS,
        org_id=org.id,
        provider=provider,
        input_file_id=input_file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=metadata,
    )
    insert_batch_row(session, spec)
    return session.get(BatchRecord, spec.id)


def test_keys_are_stored_hashed(store) -> None:
    engine, session, _, org, _ = store
    key = tenancy.create_api_key(session, org)
    assert tenancy.org_for_key(session, key).id == org.id
    with engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM apikey").all())
    assert key not in dump and tenancy.hash_key(key) in dump
    with pytest.raises(APIError) as exc:
        tenancy.org_for_key(session, key + "x")
    assert exc.value.status_code == 401


def test_file_upload_scan_list_and_delete(store) -> None:
    _, session, blobs, org, _ = store
    row = put(session, blobs, org, [chat_line("a", "1"), chat_line("b", "2")])
    assert row.line_count == 2 and row.bytes == len(jsonl([chat_line("a", "1"), chat_line("b", "2")]))
    with blobs.open_read(row.blob_key) as stream:
        assert stream.read() == jsonl([chat_line("a", "1"), chat_line("b", "2")])
    second = put(session, blobs, org, [chat_line("c", "3")])
    rows, more = files.list_files(session, org.id, purpose="batch", limit=1, order="desc", after=None)
    assert [r.id for r in rows] == [second.id] and more
    rows, more = files.list_files(session, org.id, purpose="batch", limit=1, order="desc", after=second.id)
    assert [r.id for r in rows] == [row.id] and not more
    files.delete_file(session, blobs, org.id, row.id)
    assert not blobs.exists(row.blob_key)
    with pytest.raises(APIError):
        files.get_file(session, org.id, row.id)


def test_rejected_upload_leaves_nothing(store, tmp_path: Path) -> None:
    _, session, blobs, org, _ = store
    with pytest.raises(APIError) as exc:
        put(session, blobs, org, [chat_line(str(i), "x") for i in range(11)])
    assert exc.value.code == "too_many_tasks"
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
    assert files.list_files(session, org.id, purpose=None, limit=10, order="desc", after=None)[0] == []


def test_batch_create_list_and_cancel_guard(store) -> None:
    engine, session, blobs, org, provider = store
    input_file = put(session, blobs, org, [chat_line("a", "1")])
    made = [new_batch(session, org, provider, input_file, {"n": str(i)}) for i in range(3)]
    rows, more = batches.list_batches(session, org.id, limit=2, after=None)
    assert [r.id for r in rows] == [made[2].id, made[1].id] and more
    cancelled = batches.mark_cancelling(session, org.id, made[0].id)
    assert cancelled.status == "cancelling" and cancelled.cancelling_at
    # Progress never overwrites a requested cancel; a terminal status is never left.
    assert lifecycle.transition(engine, made[0].id, "in_progress", completed=1).status == "cancelling"
    lifecycle.transition(engine, made[1].id, "completed")
    assert lifecycle.transition(engine, made[1].id, "in_progress").status == "completed"
    with pytest.raises(APIError) as exc:
        batches.mark_cancelling(session, org.id, made[1].id)
    assert exc.value.status_code == 400
    assert lifecycle.transition(engine, made[2].id, "finalizing").status == "validating"  # not allowed
    lifecycle.transition(engine, made[2].id, "in_progress")
    lifecycle.transition(engine, made[2].id, "finalizing")  # too late to cancel: results are being written
    with pytest.raises(APIError):
        batches.mark_cancelling(session, org.id, made[2].id)


def test_migrations_match_the_models(database_url: str) -> None:
    """`migrate` builds exactly the schema the models declare, and running it again changes nothing."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from batchway.storage.db import migrate

    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    engine.dispose()


def test_input_deleted_while_two_batches_read_it_is_purged_after_both(store) -> None:
    engine, session, blobs, org, provider = store
    shared = put(session, blobs, org, [chat_line("a", "1")])
    first, second = new_batch(session, org, provider, shared), new_batch(session, org, provider, shared)
    files.delete_file(session, blobs, org.id, shared.id)
    with pytest.raises(APIError):
        files.get_file(session, org.id, shared.id)  # hidden from the org at once
    lifecycle.transition(engine, first.id, "completed")
    files.purge_if_deleted(session, blobs, shared.id)
    assert blobs.exists(shared.blob_key)  # the second batch still reads it
    lifecycle.transition(engine, second.id, "cancelled")
    files.purge_if_deleted(session, blobs, shared.id)
    assert not blobs.exists(shared.blob_key)
    session.expire_all()
    assert session.get(FileRecord, shared.id) is None


def test_listing_files_never_loads_what_the_scan_learned(store) -> None:
    _, session, blobs, org, _ = store
    put(session, blobs, org, [chat_line("a", "1")])
    session.expunge_all()
    rows, _ = files.list_files(session, org.id, purpose="batch", limit=10, order="desc", after=None)
    assert rows and all("scan" not in row.__dict__ for row in rows)  # deferred: never read from the database


def test_json_columns_read_fast_and_still_read_what_the_json_module_wrote(tmp_path: Path) -> None:
    """Reads decode JSON columns with orjson; text only the standard module accepts (NaN) still reads."""
    engine = make_engine(f"sqlite:///{tmp_path / 'json.db'}")
    migrate(engine)
    with Session(engine, expire_on_commit=False) as session:
        org = tenancy.create_org(session, "json-org")
        box = SecretBox([Fernet.generate_key().decode()])
        provider = tenancy.set_provider(
            session, org, "openai", kind="openai", api_key="k", base_url=None, box=box
        )
        input_file = put(session, LocalBlobStore(tmp_path / "blobs"), org, [chat_line("a", "1")])
        batch = new_batch(session, org, provider, input_file, {"team": "ünïcode"})
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE batchrecord SET usage = ? WHERE id = ?", ('{"input_tokens": 3, "ratio": NaN}', batch.id)
        )
    with Session(engine) as session:
        row = batches.get_batch(session, org.id, batch.id)
        assert row.batch_metadata == {"team": "ünïcode"}
        assert row.usage["input_tokens"] == 3 and row.usage["ratio"] != row.usage["ratio"]  # NaN
    engine.dispose()
