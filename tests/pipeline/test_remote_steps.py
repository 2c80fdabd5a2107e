"""The steps of a batch on a remote upstream, against the in-process fake upstream (no HTTP, no Temporal),
on SQLite and PostgreSQL: what is stored, what is skipped, and that every step is safe to repeat."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from batchway import batches, files, lifecycle, tenancy
from batchway.contracts import FinalizeInput
from batchway.pipeline import finalize, remote
from batchway.pipeline.deps import Deps
from batchway.pipeline.opening import insert_batch_row
from batchway.secret_box import SecretBox
from batchway.settings import Settings
from batchway.storage.blobstore import LocalBlobStore
from batchway.storage.db import make_engine, migrate
from batchway.storage.models import BatchRecord, RequestLog, ResultChunk
from batchway.upstreams.base import PermanentUpstreamError, RemoteStatus
from batchway.upstreams.fakes import FakeRemoteUpstream
from batchway.upstreams.pool import UpstreamPool
from batchway.upstreams.registry import UpstreamConfig
from batchway.upstreams.result_line import ResultLine, UnreadableResult
from tests.batch_helpers import chat_line, jsonl

SETTINGS = Settings(max_lines=100)


class FakePool(UpstreamPool):
    def __init__(self, upstream: FakeRemoteUpstream) -> None:
        super().__init__(SETTINGS)
        self.upstream = upstream

    def get(self, config: UpstreamConfig) -> FakeRemoteUpstream:  # type: ignore[override]
        return self.upstream


@dataclass
class World:
    deps: Deps
    fake: FakeRemoteUpstream
    batch_id: str

    def row(self) -> BatchRecord:
        return lifecycle.load(self.deps.engine, self.batch_id)

    def logs(self) -> list[RequestLog]:
        with Session(self.deps.engine) as session:
            return list(session.exec(select(RequestLog).where(RequestLog.batch_id == self.batch_id)).all())

    def file_lines(self, file_id: str | None) -> dict[str, dict]:
        if file_id is None:
            return {}
        with Session(self.deps.engine) as session:
            row = files.get_file(session, self.row().org_id, file_id)
        with self.deps.blobs.open_read(row.blob_key) as stream:
            return {obj["custom_id"]: obj for obj in map(orjson.loads, stream.read().splitlines())}


@pytest.fixture
async def world(database_url: str, tmp_path: Path):
    engine = make_engine(database_url)
    migrate(engine)
    fake = FakeRemoteUpstream()
    box = SecretBox([Fernet.generate_key().decode()])
    deps = Deps(engine, LocalBlobStore(tmp_path / "blobs"), SETTINGS, FakePool(fake), box)
    with Session(engine, expire_on_commit=False) as session:
        org = tenancy.create_org(session, f"org-{tmp_path.name}")
        provider = tenancy.set_provider(
            session, org, "up", kind="openai", api_key="k", base_url=None, box=box
        )
        upload = files.upload(
            session,
            deps.blobs,
            SETTINGS,
            org_id=org.id,
            filename="in.jsonl",
            purpose="batch",
            source=io.BytesIO(jsonl([chat_line(f"c{i}", f"line {i}") for i in range(6)])),
        )
        spec, _, _ = batches.plan_batch(
            session,
            SETTINGS,
            org_id=org.id,
            provider=provider,
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata=None,
        )
        insert_batch_row(session, spec)
    yield World(deps, fake, spec.id)
    deps.executor.shutdown()
    engine.dispose()


def ok(custom_id: str, tokens: int = 3) -> ResultLine:
    body = {
        "model": "m",
        "usage": {"prompt_tokens": tokens, "completion_tokens": 1, "total_tokens": tokens + 1},
    }
    return ResultLine.answered(custom_id, 200, body)


async def test_submit_records_the_attempt_then_the_upstream_batch(world: World) -> None:
    assert (await remote.submit(world.deps, world.batch_id)).ok
    row = world.row()
    assert row.status == "in_progress" and row.total == 6 and row.submit_started_at
    assert row.upstream["ref"] == {"batch_id": f"fake-{world.batch_id}", "lines": 6}
    assert (await remote.submit(world.deps, world.batch_id)).ok  # a retry does nothing more
    assert world.fake.created == [world.batch_id]


async def test_a_permanent_refusal_fails_the_submit_with_the_reason(world: World) -> None:
    world.fake.fail_next["submit"] = PermanentUpstreamError("upstream answered 401: bad key", status_code=401)
    assert not (await remote.submit(world.deps, world.batch_id)).ok
    row = world.row()
    assert row.status == "validating" and row.errors[0]["code"] == "upstream_error"
    result = finalize.finalize(
        world.deps, FinalizeInput(batch_id=world.batch_id, outcome="failed"), lambda: None
    )
    assert (result.status, result.completed, result.failed) == ("failed", 0, 0)  # it never ran: no lines
    assert world.row().error_file_id is None


async def test_collect_keeps_each_of_our_custom_ids_once_readable_first(world: World) -> None:
    await remote.submit(world.deps, world.batch_id)
    world.fake.result_items = [
        ok("c0"),
        ok("c0", tokens=99),  # a duplicate: never counted twice
        ok("someone-else"),  # not in the input
        UnreadableResult("usage is garbage", "c1"),
        ok("c1"),  # a readable line for the same id wins over the unreadable one
        UnreadableResult("error is a string", "c2"),  # only unreadable: ends as an error line
        UnreadableResult("not JSON"),  # names nothing
        ResultLine.answered(
            "c3", 400, {"error": {"message": "no", "type": "invalid_request_error", "code": "x"}}
        ),
    ]
    collected = await remote.collect(world.deps, world.batch_id, "completed")
    assert (collected.fetched, collected.stored, collected.unreadable) == (True, 4, 1)
    logs = {row.custom_id: row for row in world.logs()}
    assert set(logs) == {"c0", "c1", "c2", "c3"}
    assert logs["c0"].prompt_tokens == 3 and logs["c0"].ok
    assert logs["c2"].error_code == "upstream_result_unreadable" and not logs["c2"].ok
    assert (logs["c3"].status_code, logs["c3"].error_code) == (400, "x")
    again = await remote.collect(world.deps, world.batch_id, "completed")  # a retried collect
    assert again.stored == 0 and len(world.logs()) == 4

    result = finalize.finalize(
        world.deps, FinalizeInput(batch_id=world.batch_id, outcome="completed", unreadable=1), lambda: None
    )
    assert (result.status, result.completed, result.failed) == ("completed", 2, 4)
    row = world.row()
    output, errors = world.file_lines(row.output_file_id), world.file_lines(row.error_file_id)
    assert set(output) == {"c0", "c1"} and set(errors) == {"c2", "c3", "c4", "c5"}
    assert errors["c4"]["error"]["code"] == "upstream_result_unreadable"  # no line at all, and some were
    assert row.usage["input_tokens"] == 6 and row.usage["total_tokens"] == 8


async def test_finalize_is_idempotent_and_drops_chunks_nobody_points_at(world: World) -> None:
    await remote.submit(world.deps, world.batch_id)
    world.fake.result_items = [ok("c0"), ok("c1")]
    await remote.collect(world.deps, world.batch_id, "cancelled")
    with Session(world.deps.engine) as session:  # a write cut short by a crash leaves a chunk record
        session.add(
            ResultChunk(key=f"o/results/{world.batch_id}/lost.jsonl", batch_id=world.batch_id, created_at=1)
        )
        session.commit()
    request = FinalizeInput(batch_id=world.batch_id, outcome="cancelled")
    first = finalize.finalize(world.deps, request, lambda: None)
    files_first = (world.row().output_file_id, world.row().error_file_id)
    second = finalize.finalize(world.deps, request, lambda: None)
    assert first == second and (first.status, first.completed, first.failed) == ("cancelled", 2, 4)
    assert (world.row().output_file_id, world.row().error_file_id) == files_first
    errors = world.file_lines(world.row().error_file_id)
    assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}
    with Session(world.deps.engine) as session:
        chunks = session.exec(select(ResultChunk.key).where(ResultChunk.batch_id == world.batch_id)).all()
    assert chunks and all(not key.endswith("lost.jsonl") for key in chunks)


async def test_expired_lines_the_upstream_calls_cancelled_are_expired(world: World) -> None:
    await remote.submit(world.deps, world.batch_id)
    world.fake.result_items = [ok("c0"), ResultLine.unexecuted("c1", "batch_cancelled")]
    await remote.collect(world.deps, world.batch_id, "expired")
    finalize.finalize(world.deps, FinalizeInput(batch_id=world.batch_id, outcome="expired"), lambda: None)
    errors = world.file_lines(world.row().error_file_id)
    assert {line["error"]["code"] for line in errors.values()} == {"batch_expired"}
    assert world.row().status == "expired" and world.row().finalizing_at


async def test_cancel_finds_a_batch_a_cut_short_submit_created(world: World) -> None:
    assert await remote.cancel(world.deps, world.batch_id, requested=True) is False  # nothing sent yet
    assert world.row().status == "cancelling" and world.row().cancel_requested
    world.fake.created.append(world.batch_id)  # created upstream, but its reference never recorded
    lifecycle.transition(world.deps.engine, world.batch_id, submit_started_at=1)
    assert await remote.cancel(world.deps, world.batch_id, requested=True) is True
    assert world.fake.cancelled == [{"batch_id": f"fake-{world.batch_id}"}]
    assert world.row().upstream["ref"] == {"batch_id": f"fake-{world.batch_id}"}


async def test_a_refused_cancel_is_not_an_error(world: World) -> None:
    await remote.submit(world.deps, world.batch_id)
    world.fake.refuse_cancel = True
    assert await remote.cancel(world.deps, world.batch_id, requested=False) is True


async def test_poll_mirrors_progress_and_a_lost_batch_fails(world: World) -> None:
    await remote.submit(world.deps, world.batch_id)
    world.fake.status_value = RemoteStatus(state="in_progress", total=6, completed=2, failed=1)
    polled = await remote.poll(world.deps, world.batch_id)
    assert (polled.state, polled.ended, polled.completed) == ("in_progress", False, 2)
    assert (world.row().completed, world.row().failed) == (2, 1)
    world.fake.fail_next["status"] = PermanentUpstreamError("upstream answered 404: gone", status_code=404)
    lost = await remote.poll(world.deps, world.batch_id)
    assert lost.lost and lost.ended and world.row().errors[0]["code"] == "upstream_error"
