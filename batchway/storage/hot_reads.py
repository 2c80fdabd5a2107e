"""The API's hot reads (one batch, a page of batches, one file) as plain SQL on the database driver.

A polling client sends these more than anything else. Through the ORM each paid for a Session, an
identity map and SQLAlchemy's statement execution: 40% of a `GET /v1/batches/{id}` (py-spy under
bench/read_path.py). Here a read is one statement the driver keeps prepared, and its row becomes a
`BatchRow` or `FileRow` that `batchway.wire` renders exactly as it renders the ORM row. The SQL is
built from the SQLModel tables, so it follows their column names.

- SQLite: one connection of the API process's own, used inline on the event loop (WAL: a reader never
  waits for the writer; autocommit: every SELECT sees the latest commit, so nothing is ever stale).
- PostgreSQL: a small asyncpg pool (outside any transaction, so every read sees the latest commit),
  statements prepared on each connection.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import asyncpg
from sqlalchemy import JSON, inspect
from sqlalchemy.engine import Engine

from batchway.errors import not_found
from batchway.ids import looks_like_id
from batchway.paging import no_such_anchor
from batchway.storage.db import load_json
from batchway.storage.models import BatchRecord, FileRecord

Shape = TypeVar("Shape", "BatchRow", "FileRow")
READS_APPLICATION_NAME = "batchway-api-reads"  # how the pool's connections show in pg_stat_activity


class BatchRow(NamedTuple):
    """What the wire shows of a batch row (the attribute names of `BatchRecord`)."""

    id: str
    endpoint: str
    model: str | None
    errors: list[dict[str, Any]] | None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    total: int
    completed: int
    failed: int
    usage: dict[str, Any] | None
    batch_metadata: dict[str, str] | None


class FileRow(NamedTuple):
    """What the wire shows of a file row (the attribute names of `FileRecord`)."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    expires_at: int | None


def _columns(model: type, shape: type[NamedTuple]) -> tuple[str, list[int]]:
    """The SELECT list for `shape` from `model`'s table, and the positions of its JSON columns."""
    mapper = inspect(model)
    columns = [mapper.get_property(name).columns[0] for name in shape._fields]
    json_at = [i for i, column in enumerate(columns) if isinstance(column.type, JSON)]
    return ", ".join(f'"{column.name}"' for column in columns), json_at


def _numbered(sql: str) -> str:
    """`?` placeholders as `$1`, `$2`... (no statement here has a `?` anywhere else)."""
    counter = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class _Statements:
    """The SQL of every hot read, with `?` placeholders or, for asyncpg, `$1`, `$2`..."""

    def __init__(self, numbered: bool) -> None:
        batches, files = BatchRecord.__tablename__, FileRecord.__tablename__
        batch_columns, self.batch_json = _columns(BatchRecord, BatchRow)
        file_columns, self.file_json = _columns(FileRecord, FileRow)
        self.batch = f"SELECT {batch_columns} FROM {batches} WHERE id = ? AND org_id = ?"
        self.file = f"SELECT {file_columns} FROM {files} WHERE id = ? AND org_id = ? AND NOT deleted"
        self.anchor = f"SELECT created_ns FROM {batches} WHERE id = ? AND org_id = ?"
        order = "ORDER BY created_ns DESC, id DESC LIMIT"
        self.first_page = f"SELECT {batch_columns} FROM {batches} WHERE org_id = ? {order} ?"
        # A row-value comparison, so both databases seek the org page index to the anchor.
        self.next_page = (
            f"SELECT {batch_columns} FROM {batches} WHERE org_id = ? AND (created_ns, id) < (?, ?) {order} ?"
        )
        if numbered:
            for name in ("batch", "file", "anchor", "first_page", "next_page"):
                setattr(self, name, _numbered(getattr(self, name)))


class HotReads:
    """The reads; a subclass runs the statements on its driver."""

    def __init__(self, numbered: bool) -> None:
        self.sql = _Statements(numbered)

    async def batch(self, org_id: str, batch_id: str) -> BatchRow:
        row = await self._one(self.sql.batch, (batch_id, org_id)) if looks_like_id(batch_id) else None
        if row is None:
            raise not_found("Batch", batch_id)
        return self._shaped(BatchRow, self.sql.batch_json, row)

    async def batch_page(self, org_id: str, limit: int, after: str | None) -> tuple[list[BatchRow], bool]:
        """The org's batches, newest first, `limit` after the batch `after`; and whether more follow."""
        if after is None:
            rows = await self._all(self.sql.first_page, (org_id, limit + 1))
        else:
            anchor = await self._one(self.sql.anchor, (after, org_id)) if looks_like_id(after) else None
            if anchor is None:
                raise no_such_anchor(after)
            rows = await self._all(self.sql.next_page, (org_id, anchor[0], after, limit + 1))
        shaped = [self._shaped(BatchRow, self.sql.batch_json, row) for row in rows[:limit]]
        return shaped, len(rows) > limit

    async def file(self, org_id: str, file_id: str) -> FileRow:
        row = await self._one(self.sql.file, (file_id, org_id)) if looks_like_id(file_id) else None
        if row is None:
            raise not_found("File", file_id)
        return self._shaped(FileRow, self.sql.file_json, row)

    def _shaped(self, shape: type[Shape], json_at: list[int], row: Sequence[Any]) -> Shape:
        values = list(row)
        for i in json_at:  # both drivers hand JSON columns back as text
            if values[i] is not None:
                values[i] = load_json(values[i])
        return shape._make(values)

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Sequence[Any] | None:
        raise NotImplementedError

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[Sequence[Any]]:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class SqliteHotReads(HotReads):
    """Inline on the event loop: a prepared read of a local file costs less than any hand-off."""

    def __init__(self, path: str) -> None:
        super().__init__(numbered=False)
        # Autocommit (no implicit transaction holds a snapshot); shared with no other thread at once, as
        # nothing awaits between a statement and its fetch.
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA query_only = ON")
        # Short: a reader waits only for WAL recovery, and it waits on the event loop.
        self.connection.execute("PRAGMA busy_timeout = 2000")

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self.connection.execute(sql, params).fetchone()
        return row

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[Sequence[Any]]:
        return self.connection.execute(sql, params).fetchall()

    async def close(self) -> None:
        self.connection.close()


_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,  # the server closed it (ConnectionDoesNotExistError)
    asyncpg.exceptions.OperatorInterventionError,  # it is shutting down or terminated this backend
    asyncpg.InterfaceError,
    ConnectionError,
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset between reads (each is one SELECT outside a transaction): asyncpg's default
    reset would cost a round trip on every release."""


class PostgresHotReads(HotReads):
    """An asyncpg pool: its protocol is compiled and it keeps each statement prepared, which halved the
    CPU of a read against psycopg's async driver (72 against 150 us, in-process, 32 concurrent)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(numbered=True)
        self.pool = pool
        # Turns in arrival order: asyncpg's pool lets a newcomer take a connection just released to a
        # waiter, which with 32 concurrent reads on 8 connections made p99 five times the median.
        self.turns = asyncio.Semaphore(pool.get_max_size())

    @classmethod
    async def connect(cls, dsn: str, size: int) -> PostgresHotReads:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=size,
            max_size=size,
            reset=_keep_session,
            server_settings={"application_name": READS_APPLICATION_NAME},
        )
        return cls(pool)

    async def _fetch(self, sql: str, params: tuple[Any, ...], many: bool) -> Any:
        # Connections the server dropped while they sat idle (a database restart) fail their next
        # statement: then every pooled connection is replaced and the read runs once more.
        for attempt in (1, 2):
            try:
                async with self.turns, self.pool.acquire() as connection:
                    if many:
                        return await connection.fetch(sql, *params)
                    return await connection.fetchrow(sql, *params)
            except _CONNECTION_LOST:
                if attempt == 2:
                    raise
                await self.pool.expire_connections()
        raise AssertionError("unreachable")

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await self._fetch(sql, params, many=False)
        return row

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = await self._fetch(sql, params, many=True)
        return rows

    async def close(self) -> None:
        await self.pool.close()


async def open_hot_reads(engine: Engine, pool_size: int) -> HotReads:
    """The hot reads on `engine`'s database (its URL names which driver)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return SqliteHotReads(str(url.database))
    return await PostgresHotReads.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False), pool_size
    )
