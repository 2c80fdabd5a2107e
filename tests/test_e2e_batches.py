"""End to end: the official openai SDK -> batchway API (real HTTP) -> Temporal dev server -> worker ->
simulated OpenAI Batch upstream (real HTTP) and back."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import openai
import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: F401

from batchway import batches
from batchway.contracts import SA_ORG, SA_PROVIDER, SA_STATUS
from batchway.servers import free_port
from batchway.storage.db import make_engine
from batchway.storage.models import BatchRecord, FileRecord, RequestLog
from tests.batch_helpers import chat_line, content, record_history, submit, upload, wait_for
from tests.conftest import S3_BUCKET
from worker import running_worker

pytestmark = pytest.mark.usefixtures("worker")


def request_logs(settings, batch_id: str) -> list[RequestLog]:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        rows = list(session.exec(select(RequestLog).where(RequestLog.batch_id == batch_id)).all())
    engine.dispose()
    return rows


async def test_happy_path_with_partial_failures(
    start_simulator, new_org, client_for, base_settings, temporal_env
) -> None:
    sim = start_simulator()
    org, key = new_org({"openai": sim})
    client = client_for(key)
    lines = [chat_line(f"req-{i}", f"hello number {i}") for i in range(5)]
    lines[1] = chat_line("req-1", "please SIMULATE_ERROR_400")
    lines[3] = chat_line("req-3", "and SIMULATE_ERROR_500 here")

    created = await submit(client, lines, metadata={"job": "nightly"})
    assert created.status == "validating"
    assert created.request_counts.total == 0
    assert created.metadata == {"job": "nightly"}

    batch = await wait_for(client, created.id)
    assert batch.status == "completed" and batch.metadata == {"job": "nightly"}
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        5,
        3,
        2,
    )
    assert batch.model == "gpt-4o-mini"
    for stamp in ("in_progress_at", "finalizing_at", "completed_at", "expires_at"):
        assert getattr(batch, stamp), stamp
    assert batch.failed_at is None and batch.cancelled_at is None

    output = await content(client, batch.output_file_id)
    errors = await content(client, batch.error_file_id)
    assert set(output) == {"req-0", "req-2", "req-4"}
    assert set(errors) == {"req-1", "req-3"}
    assert output["req-2"]["response"]["status_code"] == 200
    assert "hello number 2" in output["req-2"]["response"]["body"]["choices"][0]["message"]["content"]
    assert errors["req-1"]["response"]["status_code"] == 400
    assert errors["req-3"]["response"]["status_code"] == 500
    assert all(line["id"].startswith("batch_req_") for line in [*output.values(), *errors.values()])

    prompt_tokens = sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in output.values())
    assert batch.usage.input_tokens == prompt_tokens > 0
    assert batch.usage.total_tokens == batch.usage.input_tokens + batch.usage.output_tokens

    out_file = await client.files.retrieve(batch.output_file_id)
    assert out_file.purpose == "batch_output"
    assert out_file.bytes == len((await client.files.content(batch.output_file_id)).content)

    # One request-log row per line, tagged with the batch, never counted twice.
    logs = request_logs(base_settings, batch.id)
    assert sorted(row.custom_id for row in logs) == [f"req-{i}" for i in range(5)]
    assert {row.custom_id: row.status_code for row in logs}["req-1"] == 400
    assert sum(row.prompt_tokens for row in logs) == prompt_tokens

    # Operators find it in Temporal by org, provider and status; no prompt text in history.
    handle = temporal_env.client.get_workflow_handle(batch.id)
    # The row ends first; the workflow closes once the follow-ups (cleanup, webhook, scoring) are done.
    assert await asyncio.wait_for(handle.result(), timeout=30) == "completed"
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    attrs = description.typed_search_attributes
    assert attrs.get(SA_ORG) == org and attrs.get(SA_PROVIDER) == "openai"
    assert attrs.get(SA_STATUS) == "completed"
    history = (await handle.fetch_history()).to_json()
    assert "hello number" not in history and "SIMULATE_ERROR" not in history
    await record_history(temporal_env, batch.id, "happy_path")


async def test_all_lines_failed_has_no_output_file(start_simulator, new_org, client_for) -> None:
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    lines = [chat_line(f"bad-{i}", "SIMULATE_ERROR_400") for i in range(3)]
    batch = await wait_for(client, (await submit(client, lines)).id)
    assert batch.status == "completed"
    assert batch.output_file_id is None
    assert batch.request_counts.failed == 3 and batch.request_counts.completed == 0
    assert set(await content(client, batch.error_file_id)) == {"bad-0", "bad-1", "bad-2"}


async def test_cancel_mid_flight(start_simulator, new_org, client_for, base_settings, temporal_env) -> None:
    _, key = new_org({"openai": start_simulator(lines_per_second=4, cancel_seconds=0.5)})
    client = client_for(key)
    lines = [chat_line(f"c-{i}", f"line {i}") for i in range(40)]
    created = await submit(client, lines)
    running = await wait_for(client, created.id, {"in_progress"})
    assert running.in_progress_at

    cancelling = await client.batches.cancel(created.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    again = await client.batches.cancel(created.id)  # cancelling twice is fine
    assert again.status == "cancelling"

    batch = await wait_for(client, created.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    counts = batch.request_counts
    assert counts.total == 40 and counts.completed + counts.failed == 40 and counts.failed > 0
    errors = await content(client, batch.error_file_id)
    assert any(line["error"] and line["error"]["code"] == "batch_cancelled" for line in errors.values())
    assert len(request_logs(base_settings, batch.id)) == 40
    await record_history(temporal_env, batch.id, "cancel_mid_flight")

    with pytest.raises(Exception) as refused:
        await client.batches.cancel(created.id)
    assert getattr(refused.value, "status_code", None) == 400


async def test_upstream_expiry(start_simulator, new_org, client_for) -> None:
    _, key = new_org({"openai": start_simulator(lines_per_second=5, window_seconds=1.5)})
    client = client_for(key)
    lines = [chat_line(f"e-{i}", f"line {i}") for i in range(30)]
    batch = await wait_for(client, (await submit(client, lines)).id)
    assert batch.status == "expired" and batch.expired_at
    counts = batch.request_counts
    assert counts.completed + counts.failed == 30 and counts.failed > 0
    errors = await content(client, batch.error_file_id)
    assert {line["error"]["code"] for line in errors.values() if line["error"]} == {"batch_expired"}


async def test_batchway_deadline_cancels_an_overrunning_upstream(
    start_simulator, start_api, new_org, client_for, temporal_env
) -> None:
    _, key = new_org({"openai": start_simulator(stall=True)})
    short_api = start_api(completion_window_seconds=2, deadline_grace_seconds=1)
    client = client_for(key, url=short_api)
    lines = [chat_line(f"d-{i}", f"line {i}") for i in range(4)]
    created = await submit(client, lines)
    assert created.expires_at - created.created_at == 2
    batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "expired"
    assert batch.output_file_id is None
    errors = await content(client, batch.error_file_id)
    assert set(errors) == {f"d-{i}" for i in range(4)}
    assert {line["error"]["code"] for line in errors.values()} == {"batch_expired"}
    await record_history(temporal_env, batch.id, "deadline_expired")


async def test_worker_restarted_mid_batch(
    start_simulator, start_api, new_org, client_for, temporal_env, base_settings
) -> None:
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    api = start_api(task_queue=queue)
    _, key = new_org({"openai": start_simulator(lines_per_second=10)})
    client = client_for(key, url=api)
    lines = [chat_line(f"w-{i}", f"line {i}") for i in range(30)]
    settings = base_settings.model_copy(update={"task_queue": queue})

    async with running_worker(temporal_env.client, settings):
        created = await submit(client, lines)
        await wait_for(client, created.id, {"in_progress"})
    # No worker now: the batch stays readable and does not move.
    await asyncio.sleep(1.0)
    paused = await client.batches.retrieve(created.id)
    assert paused.status == "in_progress"

    async with running_worker(temporal_env.client, settings):
        batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "completed"
    assert batch.request_counts.completed == 30
    assert len(await content(client, batch.output_file_id)) == 30


async def test_list_batches_pages_newest_first(start_simulator, new_org, client_for) -> None:
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    ids = [(await submit(client, [chat_line("only", f"batch {i}")])).id for i in range(5)]

    first = await client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more is True
    every = [b.id async for b in client.batches.list(limit=2)]
    assert every == ids[::-1]

    last = await client.batches.list(limit=2, after=ids[1])
    assert [b.id for b in last.data] == [ids[0]] and last.has_more is False
    for batch_id in ids:
        await wait_for(client, batch_id)


async def test_happy_path_on_postgres(
    start_simulator, start_api, new_org, client_for, temporal_env, base_settings, postgres_url
) -> None:
    settings = base_settings.model_copy(
        update={"database_url": postgres_url, "task_queue": f"pg-{uuid.uuid4().hex[:8]}"}
    )
    api = start_api(database_url=settings.database_url, task_queue=settings.task_queue)
    _, key = new_org({"openai": start_simulator()}, database_url=postgres_url)
    client = client_for(key, url=api)
    lines = [chat_line(f"p-{i}", f"postgres {i}") for i in range(4)] + [
        chat_line("p-x", "SIMULATE_ERROR_429")
    ]
    async with running_worker(temporal_env.client, settings):
        batch = await wait_for(client, (await submit(client, lines)).id)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (4, 1)
    assert len(request_logs(settings, batch.id)) == 5


async def test_upstream_refusal_fails_the_batch(start_simulator, new_org, client_for) -> None:
    _, key = new_org({"openai": start_simulator()}, upstream_key="revoked-key")
    client = client_for(key)
    batch = await wait_for(client, (await submit(client, [chat_line("a", "hi")])).id)
    assert batch.status == "failed" and batch.failed_at
    assert batch.errors.data[0].code == "upstream_error"
    assert "401" in batch.errors.data[0].message
    assert "Incorrect API key" not in batch.errors.data[0].message  # the upstream's words: logs only
    assert batch.output_file_id is None and batch.error_file_id is None


async def test_workflow_revalidates_the_stored_input(
    start_simulator, new_org, client_for, base_settings
) -> None:
    """The workflow checks the stored bytes again: a blob corrupted after upload fails with the line."""
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    file_id = await upload(client, [chat_line("a", "1"), chat_line("b", "2")])
    engine = make_engine(base_settings.resolved_database_url)
    with Session(engine) as session:
        blob_key = session.get(FileRecord, file_id).blob_key
    engine.dispose()
    blob = Path(base_settings.resolved_blob_url) / blob_key
    blob.write_bytes(blob.read_bytes() + b"{broken\n")
    created = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = await wait_for(client, created.id)
    assert batch.status == "failed" and batch.failed_at and batch.in_progress_at is None
    error = batch.errors.data[0]
    assert (error.code, error.line) == ("invalid_json_line", 3)


async def test_continue_as_new_carries_the_batch_over(
    start_simulator, start_api, new_org, client_for, temporal_env
):
    """Runs that continue-as-new every 2 polls still finish, and a cancel reaches the newest run."""
    _, key = new_org({"openai": start_simulator(lines_per_second=6)})
    client = client_for(key, url=start_api(polls_per_run=2))
    done = await submit(client, [chat_line(f"n-{i}", "hi") for i in range(15)])
    stopped = await submit(client, [chat_line(f"s-{i}", "hi") for i in range(60)])

    async def runs(batch_id: str) -> int:
        return len([w async for w in temporal_env.client.list_workflows(f"WorkflowId = '{batch_id}'")])

    await wait_for(client, stopped.id, {"in_progress"})
    while await runs(stopped.id) < 2:
        await asyncio.sleep(0.2)
    await client.batches.cancel(stopped.id)

    finished = await wait_for(client, done.id)
    assert finished.status == "completed" and finished.request_counts.completed == 15
    assert await runs(done.id) >= 2
    await record_history(temporal_env, done.id, "continued_run")
    cancelled = await wait_for(client, stopped.id)
    assert cancelled.status == "cancelled"
    assert cancelled.request_counts.completed + cancelled.request_counts.failed == 60


async def test_cancel_interrupts_a_submit_stuck_in_retries(new_org, client_for, temporal_env) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every upload attempt fails
    _, key = new_org({"openai": unreachable})
    client = client_for(key)
    created = await submit(client, [chat_line(f"q-{i}", "hi") for i in range(3)])
    await asyncio.sleep(2.0)  # validated, now retrying the upload
    assert (await client.batches.retrieve(created.id)).status == "validating"
    await client.batches.cancel(created.id)
    batch = await wait_for(client, created.id, timeout=30)
    assert batch.status == "cancelled" and batch.cancelling_at and batch.cancelled_at
    errors = await content(client, batch.error_file_id)
    assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}
    assert batch.request_counts.failed == 3
    await record_history(temporal_env, batch.id, "cancel_during_submit")


async def test_cancel_recorded_without_a_signal_is_picked_up(
    start_simulator, new_org, client_for, base_settings
):
    """If the API's signal is lost, the flag on the batch row still cancels it at the next poll."""
    _, key = new_org({"openai": start_simulator(lines_per_second=3)})
    client = client_for(key)
    created = await submit(client, [chat_line(f"f-{i}", "hi") for i in range(30)])
    await wait_for(client, created.id, {"in_progress"})
    engine = make_engine(base_settings.resolved_database_url)
    with Session(engine, expire_on_commit=False) as session:
        batches.mark_cancelling(session, session.get(BatchRecord, created.id).org_id, created.id)
    engine.dispose()
    batch = await wait_for(client, created.id)
    assert batch.status == "cancelled"
    assert batch.request_counts.completed + batch.request_counts.failed == 30


async def test_input_deleted_mid_batch_still_completes(
    start_simulator, new_org, client_for, base_settings
) -> None:
    _, key = new_org({"openai": start_simulator(lines_per_second=10)})
    client = client_for(key)
    created = await submit(client, [chat_line(f"x-{i}", "hi") for i in range(20)])
    await wait_for(client, created.id, {"in_progress"})
    assert (await client.files.delete(created.input_file_id)).deleted
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(created.input_file_id)
    assert created.input_file_id not in [f.id for f in (await client.files.list()).data]
    batch = await wait_for(client, created.id)
    assert batch.status == "completed" and batch.request_counts.completed == 20
    engine = make_engine(base_settings.resolved_database_url)
    with Session(engine) as session:
        assert session.get(FileRecord, created.input_file_id) is None  # purged once the batch ended
    engine.dispose()


async def test_batch_on_s3_blob_storage(
    start_simulator, start_api, new_org, client_for, temporal_env, base_settings, s3_env, s3_client
) -> None:
    """The same batch with every file body in an S3-compatible store (a real moto_server)."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    settings = base_settings.model_copy(
        update={"blob_url": f"s3://{S3_BUCKET}/{prefix}", "task_queue": f"s3-{uuid.uuid4().hex[:8]}"}
    )
    api = start_api(blob_url=settings.blob_url, task_queue=settings.task_queue)
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key, url=api)
    lines = [chat_line(f"s3-{i}", f"stored remotely {i}") for i in range(6)]
    async with running_worker(temporal_env.client, settings):
        created = await submit(client, lines)
        batch = await wait_for(client, created.id)
    assert batch.status == "completed" and batch.request_counts.completed == 6
    output = await content(client, batch.output_file_id)
    assert "stored remotely 3" in output["s3-3"]["response"]["body"]["choices"][0]["message"]["content"]
    stored = [o["Key"] for o in s3_client.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"{prefix}/")["Contents"]]
    chunks = [key for key in stored if f"/results/{batch.id}/" in key]
    assert len(stored) - len(chunks) == 2  # the input file and the output file
    assert chunks  # and the stored results they were assembled from
    assert not (Path(base_settings.data_dir) / "blobs" / prefix).exists()
