"""Files that really expire (inputs, results and what batchway copied upstream), nothing orphaned by a
failed upload or a delete, and downloads that never hold a database connection."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from batchway import files
from batchway.schedules import sweeper_schedule_id
from batchway.settings import Settings
from batchway.storage.blobstore import LocalBlobStore
from batchway.storage.db import make_engine
from batchway.storage.models import FileRecord, ResultChunk
from tests.batch_helpers import chat_line, jsonl, submit, upload, wait_for

pytestmark = pytest.mark.usefixtures("worker")


def expire_now(settings: Settings, *file_ids: str) -> None:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        session.execute(update(FileRecord).where(FileRecord.id.in_(file_ids)).values(expires_at=1))
        session.commit()
    engine.dispose()


def file_row(settings: Settings, file_id: str) -> FileRecord | None:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        row = session.get(FileRecord, file_id)
    engine.dispose()
    return row


async def sweep(temporal_env, settings: Settings, until) -> None:  # noqa: ANN001
    handle = temporal_env.client.get_schedule_handle(sweeper_schedule_id(settings))
    deadline = time.monotonic() + 60
    while not until():
        assert time.monotonic() < deadline, "the sweeper did not get there"
        await handle.trigger()
        await asyncio.sleep(1.0)


async def test_expired_files_go_and_a_running_batch_keeps_its_input(
    start_simulator, new_org, client_for, base_settings, temporal_env
) -> None:
    _, key = new_org({"openai": start_simulator(lines_per_second=2)})
    client = client_for(key)
    idle = await upload(client, [chat_line("a", "unused")])
    busy = await submit(client, [chat_line(f"b-{i}", "slow") for i in range(20)])
    await wait_for(client, busy.id, {"in_progress"})
    expire_now(base_settings, idle, busy.input_file_id)
    blobs = Path(base_settings.resolved_blob_url)
    idle_blob = blobs / file_row(base_settings, idle).blob_key
    await sweep(temporal_env, base_settings, lambda: file_row(base_settings, idle) is None)
    assert not idle_blob.exists()
    kept = file_row(base_settings, busy.input_file_id)
    assert kept is not None and (blobs / kept.blob_key).exists(), "a running batch still reads it"
    with pytest.raises(openai.NotFoundError):  # hidden from its org already
        await client.files.retrieve(busy.input_file_id)
    await client.batches.cancel(busy.id)
    batch = await wait_for(client, busy.id)
    await sweep(temporal_env, base_settings, lambda: file_row(base_settings, busy.input_file_id) is None)
    assert batch.status == "cancelled"


async def test_result_files_honour_output_expires_after_and_take_their_results_along(
    start_simulator, new_org, client_for, base_settings, temporal_env
) -> None:
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    created = await submit(
        client,
        [chat_line("r-1", "hi"), chat_line("r-2", "SIMULATE_ERROR_400")],
        extra_body={"output_expires_after": {"anchor": "created_at", "seconds": 7200}},
    )
    batch = await wait_for(client, created.id)
    output = await client.files.retrieve(batch.output_file_id)
    assert output.expires_at == output.created_at + 7200
    expire_now(base_settings, batch.output_file_id, batch.error_file_id)
    engine = make_engine(base_settings.resolved_database_url)

    def chunks() -> list[str]:
        with Session(engine) as session:
            return list(session.exec(select(ResultChunk.key).where(ResultChunk.batch_id == batch.id)).all())

    assert chunks()
    await sweep(
        temporal_env,
        base_settings,
        lambda: not chunks() and file_row(base_settings, batch.output_file_id) is None,
    )
    engine.dispose()
    rows = httpx.get(
        f"{client.base_url}requests",
        params={"batch_id": batch.id},
        headers={"authorization": f"Bearer {key}"},
    ).json()["data"]
    assert len(rows) == 2  # the request log keeps its rows (usage stays counted), without the bodies


async def test_upstream_copies_are_deleted_once_the_results_are_stored(
    start_simulator, new_org, client_for
) -> None:
    sim = start_simulator()
    _, key = new_org({"openai": sim})
    client = client_for(key)
    batch = await wait_for(client, (await submit(client, [chat_line("c", "hi")])).id)
    assert batch.status == "completed"
    upstream = httpx.get(f"{sim}/files", headers={"authorization": "Bearer sim-test-key"}).json()["data"]
    deadline = time.monotonic() + 30
    while upstream and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        upstream = httpx.get(f"{sim}/files", headers={"authorization": "Bearer sim-test-key"}).json()["data"]
    assert upstream == [], "the upstream copy of the input and the upstream's result files are deleted"


def test_a_failed_upload_or_delete_leaves_no_orphan(database_url: str, tmp_path: Path) -> None:
    from batchway import tenancy

    engine = make_engine(database_url)
    from batchway.storage.db import migrate

    migrate(engine)
    blobs = LocalBlobStore(tmp_path / "blobs")
    settings = Settings(max_lines=10)
    with Session(engine, expire_on_commit=False) as session:
        org = tenancy.create_org(session, f"orphans-{tmp_path.name}")

        class Exploding(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:  # the connection drops halfway
                if self.tell() > 10:
                    raise ConnectionError("client went away")
                return super().read(5)

        with pytest.raises(ConnectionError):
            files.upload(
                session,
                blobs,
                settings,
                org_id=org.id,
                filename="x.jsonl",
                purpose="batch",
                source=Exploding(jsonl([chat_line("a", "1"), chat_line("b", "2")])),
            )
        assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
        assert session.exec(select(FileRecord).where(FileRecord.org_id == org.id)).all() == []

        row = files.upload(
            session,
            blobs,
            settings,
            org_id=org.id,
            filename="y.jsonl",
            purpose="batch",
            source=io.BytesIO(jsonl([chat_line("a", "1")])),
        )
        original_delete = blobs.delete
        blobs.delete = lambda key: (_ for _ in ()).throw(OSError("disk went away"))  # type: ignore[method-assign]
        with pytest.raises(OSError):
            files.delete_file(session, blobs, org.id, row.id)
        blobs.delete = original_delete  # type: ignore[method-assign]
        session.expire_all()
        hidden = session.get(FileRecord, row.id)
        assert hidden is not None and hidden.deleted, "hidden first: the sweeper finishes the job"
        files.purge_if_deleted(session, blobs, row.id)
        assert session.get(FileRecord, row.id) is None and not blobs.exists(row.blob_key)
    engine.dispose()


async def test_slow_downloads_do_not_hold_database_connections(
    start_api, new_org, client_for, start_simulator
) -> None:
    api = start_api()
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key, url=api)
    big = jsonl([chat_line(f"d-{i}", "x" * 2000) for i in range(2000)])  # a few MB: more than socket buffers
    file_id = (await client.files.create(file=("big.jsonl", big), purpose="batch")).id
    headers = {"authorization": f"Bearer {key}"}
    readers = [httpx.AsyncClient(headers=headers, timeout=60) for _ in range(45)]  # above the pool (20 + 20)
    streams = []
    try:
        for reader in readers:
            stream = reader.stream("GET", f"{api}/files/{file_id}/content")
            response = await stream.__aenter__()
            await response.aiter_raw(1024).__anext__()  # read a little, then stall
            streams.append(stream)
        started = time.monotonic()
        async with httpx.AsyncClient(headers=headers, timeout=10) as other:
            assert (await other.get(f"{api}/batches")).status_code == 200
            assert (await other.get(f"{api}/files/{file_id}")).status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for stream in streams:
            await stream.__aexit__(None, None, None)
        for reader in readers:
            await reader.aclose()
