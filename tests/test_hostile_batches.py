"""Whatever the upstream does, every batch ends, and every custom_id appears exactly once across its output
and error files: end to end (official openai SDK -> batchway -> Temporal -> hostile upstream), on SQLite
and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import orjson
import pytest
from openai.types import Batch
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from batchway.schedules import sweeper_schedule_id
from batchway.storage.models import BatchRecord, RequestLog
from tests.batch_helpers import chat_line, content, submit, wait_for
from tests.conftest import Stack
from tests.hostile import ALL_CORRUPTIONS, UNREADABLE_CORRUPTIONS, Faults, HostileUpstream, Timing
from tests.servers import serve_in_thread

SLOW = Timing(run_seconds=30.0)  # a batch that stays in progress long enough to be cancelled


@contextmanager
def hostile(
    faults: Faults | None = None, timing: Timing | None = None
) -> Iterator[tuple[HostileUpstream, str]]:
    upstream = HostileUpstream(faults, timing)
    with serve_in_thread(upstream.app) as url:
        yield upstream, url + "/v1"


def lines_of(prefix: str, n: int) -> list[dict[str, Any]]:
    return [chat_line(f"{prefix}-{i}", f"line {i}") for i in range(n)]


async def every_line_once(client: openai.AsyncOpenAI, batch: Batch, expected: set[str]) -> dict[str, Any]:
    """The batch's result lines by custom_id, checking each expected id is in exactly one file, once."""
    seen: list[str] = []
    merged: dict[str, Any] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            raw = (await client.files.content(file_id)).content
            for line in raw.splitlines():
                obj = orjson.loads(line)
                seen.append(obj["custom_id"])
                merged[obj["custom_id"]] = obj
    assert sorted(seen) == sorted(expected), "every custom_id exactly once across output and error files"
    counts = batch.request_counts
    assert (counts.total, counts.completed + counts.failed) == (len(expected), len(expected))
    return merged


def error_code(line: dict[str, Any]) -> str | None:
    return line["error"]["code"] if line["error"] else None


async def test_unreadable_result_lines_end_as_error_lines(stack: Stack) -> None:
    with hostile(Faults(corruptions=ALL_CORRUPTIONS)) as (upstream, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        lines = lines_of("m", 12)
        batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "completed"
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    victims = next(iter(upstream.stats()["corrupted"].values()))
    for name in [*UNREADABLE_CORRUPTIONS, "error_string", "usage_strings", "missing_status_code"]:
        assert error_code(results[victims[name]]) == "upstream_result_unreadable", name
    assert batch.request_counts.completed == 12 - 7  # seven lines were corrupted or missing


@pytest.mark.parametrize("mode", ["refuse", "ignore"])
async def test_a_cancel_the_upstream_ignores_still_ends(stack: Stack, mode: str) -> None:
    with hostile(Faults(cancel=mode), SLOW) as (upstream, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key, stack.api(cancel_grace_seconds=2))
        lines = lines_of("c", 6)
        created = await submit(client, lines)
        await wait_for(client, created.id, {"in_progress"}, timeout=30)
        started = time.monotonic()
        await client.batches.cancel(created.id)
        batch = await wait_for(client, created.id, timeout=30)
        waited = time.monotonic() - started
    assert batch.status == "cancelled" and batch.cancelled_at
    assert waited < 20, "the cancel grace (2 s) bounds the wait"
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values()} == {"batch_cancelled"}
    assert sum(upstream.stats()["cancels"].values()) >= 1


@pytest.mark.parametrize("fate", ["stay_finalizing", "unknown_status"])
async def test_an_upstream_that_never_ends_expires_at_the_deadline(stack: Stack, fate: str) -> None:
    with hostile(Faults(cancel=fate)) as (upstream, url):
        _, key = stack.org({"openai": url})
        api = stack.api(completion_window_seconds=2, deadline_grace_seconds=1, cancel_grace_seconds=2)
        client = stack.client(key, api)
        lines = lines_of("e", 5)
        batch = await wait_for(client, (await submit(client, lines)).id, timeout=40)
    assert batch.status == "expired" and batch.expired_at
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values()} == {"batch_expired"}
    assert sum(upstream.stats()["cancels"].values()) == 1  # batchway asked it to stop at the deadline


async def test_a_lost_create_behind_150_newer_batches_is_found_not_repeated(stack: Stack) -> None:
    with hostile(Faults(lost_create="503", decoy_batches=150)) as (upstream, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        lines = lines_of("l", 4)
        batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "completed" and batch.request_counts.completed == 4
    stats = upstream.stats()
    assert stats["batches_created"][batch.id] == 1 and stats["lost_creates"][batch.id] == 1
    assert stats["file_uploads"] == 1
    await every_line_once(client, batch, {line["custom_id"] for line in lines})


async def test_a_batch_created_while_submit_gives_up_at_the_deadline_is_cancelled(stack: Stack) -> None:
    """Every create answer is lost and the upstream's list fails: submit retries until the deadline. The
    batch the first create made must still be found and cancelled, not left running."""
    faults = Faults(
        lost_create="503", lost_creates=100, decoy_batches=0, fail_every=1, fail_routes=("batches.list",)
    )
    with hostile(faults, SLOW) as (upstream, url):
        _, key = stack.org({"openai": url})
        api = stack.api(completion_window_seconds=3, deadline_grace_seconds=0, cancel_grace_seconds=2)
        client = stack.client(key, api)
        lines = lines_of("x", 3)
        created = await submit(client, lines)
        while not upstream.stats()["batches_created"].get(created.id):
            await asyncio.sleep(0.1)
        await asyncio.sleep(max(0.0, created.expires_at - time.time()) + 1)
        upstream.reset_faults()  # the list answers again: the deadline's cancel can find the batch
        batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "expired"
    stats = upstream.stats()
    assert stats["batches_created"][created.id] == 1
    assert len(stats["cancels"]) == 1, "the upstream batch the lost create made was cancelled"
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values()} == {"batch_expired"}


async def test_slow_and_failing_answers_only_slow_the_batch(stack: Stack) -> None:
    faults = Faults(fail_every=2, stall_seconds=5, stall_routes=("batches.create", "files.content"))
    with hostile(faults) as (upstream, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        lines = lines_of("s", 5)
        batch = await wait_for(client, (await submit(client, lines)).id, timeout=120)
    assert batch.status == "completed" and batch.request_counts.completed == 5
    assert sum(upstream.stats()["failed_calls"].values()) > 0
    assert upstream.stats()["batches_created"][batch.id] == 1
    await every_line_once(client, batch, {line["custom_id"] for line in lines})


async def test_an_upstream_batch_that_fails_midway_accounts_for_every_line(stack: Stack) -> None:
    with hostile(Faults(fail_midway=True)) as (_, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        lines = lines_of("f", 4)
        batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    assert batch.status == "failed" and batch.failed_at and batch.in_progress_at
    assert batch.errors and batch.errors.data[0].code == "server_error"
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values()} == {"batch_failed"}


async def test_a_cancel_requested_in_temporal_behaves_like_the_cancel_signal(
    stack: Stack, temporal_env
) -> None:
    with hostile(timing=SLOW) as (upstream, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        lines = lines_of("t", 5)
        created = await submit(client, lines)
        await wait_for(client, created.id, {"in_progress"}, timeout=30)
        handle = temporal_env.client.get_workflow_handle(created.id)
        await handle.cancel()  # what "Request Cancellation" in the Temporal UI does
        batch = await wait_for(client, created.id, timeout=30)
    assert batch.status == "cancelled" and batch.cancelling_at and batch.cancelled_at
    assert list(upstream.stats()["cancels"]) != []  # the upstream batch was cancelled too
    await every_line_once(client, batch, {line["custom_id"] for line in lines})
    # The run itself ends a moment after the batch (its follow-up steps run after finalize).
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=30)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_a_terminated_workflow_leaves_a_failed_batch_an_operator_can_see(
    stack: Stack, temporal_env
) -> None:
    with hostile(timing=SLOW) as (upstream, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        lines = lines_of("k", 5)
        created = await submit(client, lines)
        await wait_for(client, created.id, {"in_progress"}, timeout=30)
        await temporal_env.client.get_workflow_handle(created.id).terminate(reason="operator")
        sweeper = temporal_env.client.get_schedule_handle(sweeper_schedule_id(stack.settings))
        deadline = time.monotonic() + 60
        while (batch := await client.batches.retrieve(created.id)).status not in {"failed"}:
            assert time.monotonic() < deadline, batch.status
            await sweeper.trigger()  # as the schedule would, every minute
            await asyncio.sleep(1.0)
        batch = await wait_for(client, created.id, timeout=30)
    assert batch.status == "failed" and batch.failed_at
    assert batch.errors.data[-1].code == "workflow_terminated"
    assert "terminated" in batch.errors.data[-1].message
    assert list(upstream.stats()["cancels"]) != []
    results = await every_line_once(client, batch, {line["custom_id"] for line in lines})
    assert {error_code(line) for line in results.values()} == {"batch_failed"}


async def test_a_batch_whose_row_write_fails_after_its_start_still_runs(
    stack: Stack, start_simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API dies (or its database write fails) right after starting the workflow: the workflow writes
    the row itself, so the batch is never stuck `validating` and never invisible."""
    from batchway import batches

    def broken_insert(*_: object) -> None:
        raise RuntimeError("the API process died here")

    _, key = stack.org({"openai": start_simulator()})
    client = stack.client(key)
    monkeypatch.setattr(batches, "_insert_row", broken_insert)
    created = await submit(client, lines_of("o", 3))
    monkeypatch.undo()
    deadline = time.monotonic() + 10
    while created.id not in [b.id for b in (await client.batches.list()).data]:  # the workflow wrote it
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    batch = await wait_for(client, created.id, timeout=60)
    assert batch.status == "completed" and batch.request_counts.completed == 3


async def test_a_batch_whose_start_fails_is_not_stored(
    stack: Stack, start_simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchway import batches, tenancy

    async def unreachable(*_: object, **__: object) -> None:
        raise ConnectionError("Temporal is down")

    org, key = stack.org({"openai": start_simulator()})
    client = stack.client(key)
    monkeypatch.setattr(batches, "start_batch_workflow", unreachable)
    with pytest.raises(openai.InternalServerError) as refused:
        await submit(client, lines_of("n", 2))
    assert refused.value.status_code == 503
    assert (await client.batches.list()).data == []
    engine = stack.engine()
    with Session(engine) as session:
        org_id = tenancy.get_org_by_name(session, org).id
        assert session.exec(select(BatchRecord).where(BatchRecord.org_id == org_id)).all() == []
    engine.dispose()


async def test_one_upstream_client_per_provider_config(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = openai.AsyncOpenAI.__init__

    def counting_init(self: openai.AsyncOpenAI, *args: Any, **kwargs: Any) -> None:
        built.append(str(kwargs.get("base_url")))
        original(self, *args, **kwargs)

    with hostile() as (_, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        monkeypatch.setattr(openai.AsyncOpenAI, "__init__", counting_init)
        created = [await submit(client, lines_of(f"p{n}", 2)) for n in range(3)]
        for batch in created:
            assert (await wait_for(client, batch.id, timeout=60)).status == "completed"
    assert built.count(url) == 1, "every submit, poll and collect of the three batches shared one client"


async def test_request_log_rows_are_written_once_per_line(stack: Stack) -> None:
    with hostile(Faults(corruptions=("duplicate_line", "unknown_custom_id"))) as (_, url):
        _, key = stack.org({"openai": url})
        client = stack.client(key)
        lines = lines_of("r", 10)
        batch = await wait_for(client, (await submit(client, lines)).id, timeout=60)
    engine = stack.engine()
    with Session(engine) as session:
        rows = session.exec(select(RequestLog).where(RequestLog.batch_id == batch.id)).all()
    engine.dispose()
    assert sorted(row.custom_id for row in rows) == sorted(line["custom_id"] for line in lines)
    assert sum(row.total_tokens for row in rows) == batch.usage.total_tokens > 0
    await content(client, batch.output_file_id)
