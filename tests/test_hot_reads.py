"""The API's hot reads in plain SQL answer exactly what the ORM path answers, on SQLite and PostgreSQL:
the same wire objects (JSON columns included), the same pages, the same 404s and 400s, and the latest
committed state on every read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlmodel import Session

from batchway import batches, files, lifecycle
from batchway.errors import APIError
from batchway.storage.hot_reads import (
    READS_APPLICATION_NAME,
    HotReads,
    PostgresHotReads,
    open_hot_reads,
)
from batchway.storage.models import BatchRecord
from batchway.wire import batch_object, file_object
from tests.batch_helpers import chat_line
from tests.test_storage import new_batch, put, store  # noqa: F401  (the `store` fixture)


@pytest.fixture
async def reads(store) -> AsyncIterator[HotReads]:  # noqa: F811
    engine = store[0]
    hot = await open_hot_reads(engine, pool_size=2)
    yield hot
    await hot.close()


def orm_batch(session: Session, org_id: str, batch_id: str) -> BatchRecord:
    session.expire_all()  # the row as the database has it now
    return batches.get_batch(session, org_id, batch_id)


async def test_a_batch_renders_as_the_orm_row_does(store, reads: HotReads) -> None:  # noqa: F811
    _, session, blobs, org, provider = store
    input_file = put(session, blobs, org, [chat_line("a", "hi"), chat_line("b", "yo")])
    batch = new_batch(session, org, provider, input_file, metadata={"team": "ünïcode", "k": "v"})
    # Every JSON column filled, and timestamps set: the rendering of each must match.
    row = session.get(BatchRecord, batch.id)
    row.errors = [{"code": "x", "message": "m", "param": None, "line": 3}]
    row.usage = {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 1}, "total_tokens": 7}
    row.in_progress_at, row.completed = 1_700_000_001, 1
    session.add(row)
    session.commit()

    read = await reads.batch(org.id, batch.id)
    assert batch_object(read) == batch_object(orm_batch(session, org.id, batch.id))
    assert batch_object(read)["metadata"] == {"team": "ünïcode", "k": "v"}
    assert batch_object(read)["errors"]["data"][0]["line"] == 3

    # The next read sees a change committed by another connection (no snapshot held between reads).
    lifecycle.request_cancel(session, batch.id)
    assert (await reads.batch(org.id, batch.id)).status == "cancelling"

    assert file_object(await reads.file(org.id, input_file.id)) == file_object(
        files.get_file(session, org.id, input_file.id)
    )


@pytest.mark.parametrize("missing", ["batch_doesnotexist", "not-an-id", "batch_\x00", "x" * 600])
async def test_unknown_and_malformed_ids_are_404(store, reads: HotReads, missing: str) -> None:  # noqa: F811
    org = store[3]
    for read, name in ((reads.batch, "Batch"), (reads.file, "File")):
        with pytest.raises(APIError) as exc:
            await read(org.id, missing)
        assert exc.value.status_code == 404 and exc.value.message == f"No such {name} object: {missing}"


async def test_another_orgs_objects_and_deleted_files_are_404(store, reads: HotReads) -> None:  # noqa: F811
    _, session, blobs, org, provider = store
    input_file = put(session, blobs, org, [chat_line("a", "hi")])
    batch = new_batch(session, org, provider, input_file)
    for read, object_id in ((reads.batch, batch.id), (reads.file, input_file.id)):
        with pytest.raises(APIError) as exc:
            await read("org_someoneelse", object_id)
        assert exc.value.status_code == 404
    spare = put(session, blobs, org, [chat_line("a", "hi")])
    files.delete_file(session, blobs, org.id, spare.id)
    with pytest.raises(APIError) as exc:
        await reads.file(org.id, spare.id)
    assert exc.value.status_code == 404


async def test_pages_match_the_orm_pages(store, reads: HotReads) -> None:  # noqa: F811
    _, session, blobs, org, provider = store
    input_file = put(session, blobs, org, [chat_line("a", "hi")])
    made = [new_batch(session, org, provider, input_file) for _ in range(7)]
    # Ties on created_ns are ordered by id, as the ORM pages order them.
    tied = made[2].created_ns
    for row in made[2:5]:
        row.created_ns = tied
        session.add(row)
    session.commit()

    for limit in (1, 2, 3, 7, 20):
        after, seen = None, []
        while True:
            page, more = await reads.batch_page(org.id, limit, after)
            rows, orm_more = batches.list_batches(session, org.id, limit, after)
            assert [batch_object(r) for r in page] == [batch_object(r) for r in rows] and more == orm_more
            seen += [r.id for r in page]
            if not more:
                break
            after = page[-1].id
        assert sorted(seen) == sorted(b.id for b in made) and len(seen) == len(set(seen))

    assert await reads.batch_page("org_someoneelse", 20, None) == ([], False)
    for bad_after in ("batch_nope", made[0].id + "x", "\x00"):
        with pytest.raises(APIError) as exc:
            await reads.batch_page(org.id, 20, bad_after)
        assert exc.value.status_code == 400 and exc.value.param == "after"
    with pytest.raises(APIError):  # another org's batch is no anchor either
        await reads.batch_page("org_someoneelse", 20, made[0].id)


async def test_postgres_reads_survive_their_connections_being_killed(store, reads: HotReads) -> None:  # noqa: F811
    if not isinstance(reads, PostgresHotReads):
        pytest.skip("PostgreSQL's pool only")
    engine, session, blobs, org, provider = store
    batch = new_batch(session, org, provider, put(session, blobs, org, [chat_line("a", "hi")]))
    assert (await reads.batch(org.id, batch.id)).id == batch.id
    # What a database restart does to the pooled connections: every one of them is dropped.
    with psycopg.connect(engine.url.set(drivername="postgresql").render_as_string(False)) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (READS_APPLICATION_NAME,),
        ).fetchone()
    assert killed and killed[0] >= 1
    for _ in range(3):
        assert (await reads.batch(org.id, batch.id)).id == batch.id
